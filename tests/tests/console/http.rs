//! A console session outside the browser (plain HTTP, no redirects
//! followed), to read what a browser does not show: statuses, headers,
//! cookies.

use rampart_tests::TestServer;
use reqwest::{header, redirect, StatusCode};

use super::{operator, password};

/// A console session outside the browser, to read statuses and headers.
pub struct HttpSession {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
}

impl HttpSession {
    pub async fn sign_in(server: &TestServer, name: &str) -> Self {
        let mut builder = reqwest::Client::builder().redirect(redirect::Policy::none());
        if let Some(fingerprint) = server.state.api_fingerprint {
            let tls = rampart_shared::tls::PinnedVerifier::pinned(fingerprint).client_config();
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder.build().unwrap();
        let response = http
            .post(format!("{}/console/sign-in", server.base))
            .form(&[("name", name.to_owned()), ("password", password(name))])
            .send()
            .await
            .expect("the console answers");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "a sign-in leads to the console");
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(flag), "the session cookie is {flag}: {set}");
        }
        let secure = server.state.api_fingerprint.is_some();
        assert_eq!(set.contains("; Secure"), secure, "the session cookie is Secure exactly under TLS: {set}");
        let cookie = set.split(';').next().unwrap().to_owned();
        Self { http, base: server.base.clone(), cookie }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let request = self.http.get(format!("{}{path}", self.base)).header(header::COOKIE, &self.cookie);
        request.send().await.expect("the console answers")
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let request = self.http.post(format!("{}{path}", self.base)).header(header::COOKIE, &self.cookie);
        request.form(form).send().await.expect("the console answers")
    }
}

/// The security status report as CSV, downloaded from the console by an
/// operator of its own.
pub async fn download_report(server: &TestServer) -> String {
    operator(server, "reporter", "auditor").await;
    let session = HttpSession::sign_in(server, "reporter").await;
    let response = session.get("/console/reports/security-status?format=csv").await;
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    assert_eq!(disposition, "attachment; filename=\"site-a-security-status.csv\"");
    response.text().await.unwrap()
}

/// The CSRF token a console page carries in its forms.
pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}
