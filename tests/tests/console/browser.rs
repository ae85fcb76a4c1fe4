//! A headless Chromium (Debian's `chromium`) driven over WebDriver by its
//! own `chromedriver`, started on a spare port for one test and killed at
//! its end (or when the test fails: the child is killed on drop). Every
//! WebDriver command is bounded by the session's timeouts and by [`WAIT`].

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rampart_tests::{wait_for, TestServer, WAIT};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    pub client: Client,
    /// The console's base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    driver: Child,
}

/// A port nobody listens on right now.
fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a spare port").port()
}

/// Where screenshots go: `target/console-shots/` of the build.
pub fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-shots")
}

async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future).await.unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

impl Browser {
    /// A browser 1280 px wide (`width` otherwise) for `server`'s console.
    pub async fn start(server: &TestServer) -> Self {
        Self::start_sized(server, 1280).await
    }

    pub async fn start_sized(server: &TestServer, width: u32) -> Self {
        let port = spare_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts (Debian's chromium-driver; ops/services installs it)");
        wait_for("chromedriver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        let capabilities = json!({
            "browserName": "chrome",
            "timeouts": {"pageLoad": 30_000, "script": 30_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},900")],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let client = bounded(
            "a Chromium session",
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("chromedriver opens a Chromium session");
        Self { client, base: server.base.clone(), driver }
    }

    /// Opens console `path` (e.g. `/console/policies`).
    pub async fn open(&self, path: &str) {
        bounded(path, self.client.goto(&format!("{}{path}", self.base))).await.expect("the page loads");
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        let url = bounded("the current URL", self.client.current_url()).await.expect("a current URL");
        url.path().to_owned()
    }

    /// The element `css` finds, waiting up to 20 s for it; failing, the
    /// panic shows the page's path and text.
    pub async fn find(&self, css: &str) -> Element {
        let found =
            bounded(css, self.client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css))).await;
        match found {
            Ok(element) => element,
            Err(e) => {
                let shown = match self.client.find(Locator::Css("body")).await {
                    Ok(body) => body.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("no element '{css}' on {}: {e}\n--- the page shows:\n{shown}", self.path().await)
            }
        }
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        bounded(css, self.client.find_all(Locator::Css(css))).await.expect("a search").len()
    }

    pub async fn text(&self, css: &str) -> String {
        bounded(css, self.find(css).await.text()).await.expect("an element's text")
    }

    /// The text of `css` now, if it is there (for polling a part of the page
    /// that replaces itself: an element may go stale between two calls).
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let element = bounded(css, self.client.find(Locator::Css(css))).await.ok()?;
        bounded(css, element.text()).await.ok()
    }

    /// The whole page's visible text.
    pub async fn page_text(&self) -> String {
        self.text("body").await
    }

    /// Types `value` into field `name` of the page.
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("[name='{name}']")).await;
        bounded(name, field.clear()).await.expect("a field is cleared");
        bounded(name, field.send_keys(value)).await.expect("a field takes keys");
    }

    /// Types `value` into field `name` of the form `form` (a CSS selector).
    pub async fn fill_in(&self, form: &str, name: &str, value: &str) {
        let field = self.find(&format!("{form} [name='{name}']")).await;
        bounded(name, field.clear()).await.expect("a field is cleared");
        bounded(name, field.send_keys(value)).await.expect("a field takes keys");
    }

    /// Chooses the option of value `value` of the select `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        let select = self.find(css).await;
        bounded(css, select.select_by_value(value))
            .await
            .unwrap_or_else(|e| panic!("'{css}' has no option {value}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        bounded(css, self.find(css).await.click()).await.unwrap_or_else(|e| panic!("'{css}' cannot be clicked: {e}"));
    }

    /// Runs `script` in the page; its value (a promise is awaited).
    pub async fn run(&self, script: &str) -> Value {
        bounded(script, self.client.execute(script, vec![])).await.expect("the script runs")
    }

    /// Waits until the page's text holds `text`; that text.
    pub async fn wait_for_text(&self, text: &str) -> String {
        wait_for(&format!("the page to show '{text}'"), || async {
            let body = self.client.find(Locator::Css("body")).await.ok()?;
            body.text().await.ok().filter(|shown| shown.contains(text))
        })
        .await
    }

    /// Submits the sign-in form with `name` and `password`.
    async fn submit_sign_in(&self, name: &str, password: &str) {
        self.open("/console/sign-in").await;
        self.fill("name", name).await;
        self.fill("password", password).await;
        self.click("main.sign-in button[type=submit]").await;
    }

    /// Signs in and waits for the console.
    pub async fn sign_in(&self, name: &str, password: &str) {
        self.submit_sign_in(name, password).await;
        self.find("header.top").await;
    }

    /// Signs in with a wrong password; the message shown next to the form.
    pub async fn sign_in_refused(&self, name: &str, password: &str) -> String {
        self.submit_sign_in(name, password).await;
        self.text("#sign-in-error").await
    }

    /// Writes a screenshot of the page to `target/console-shots/<name>.png`.
    pub async fn shot(&self, name: &str) {
        let png = bounded(name, self.client.screenshot()).await.expect("a screenshot");
        let dir = shots_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is written");
    }

    /// Ends the session and kills chromedriver.
    pub async fn stop(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(20), self.client.close()).await;
        let _ = self.driver.kill().await;
    }
}
