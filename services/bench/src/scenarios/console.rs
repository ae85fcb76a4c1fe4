//! The console's page load on the master that holds every slave's
//! computers (1M in the full run).
//!
//! It goes as a browser does: an operator made through the API with the
//! bootstrap token signs in through the console's form (the session cookie
//! it sets goes with every request after), posts a form with the CSRF token
//! the page carries (the tree's view), then asks for the pages an operator
//! opens, each many times: the consolidated computers list (the first page,
//! a later page, a status filter, one slave's computers, a hostname
//! search), the tree opening a slave and then its group, and the slaves
//! page. Each time is the server's: from sending the request until the
//! whole body is read, on loopback. Every answer is checked for what the
//! page must show.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use reqwest::{header, redirect, Method, StatusCode};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    master::Api,
    stats::Percentiles,
    table::{figure, ms, thousands, Figure},
};

/// The console's target for a page, p99.
pub const TARGET_P99_MS: f64 = 200.0;
/// Requests to the pages shown beside the others (the middle of the list
/// walks half of it; the first page before statistics counts it all).
const FEW: usize = 5;
const OPERATOR: &str = "bench-auditor";
const PASSWORD: &str = "bench-auditor-password-0123";

/// One page's times.
#[derive(Clone, Debug, Serialize)]
pub struct PageLoad {
    pub page: String,
    pub path: String,
    pub latency: Percentiles,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConsoleLoad {
    pub computers: u64,
    pub slaves: usize,
    /// The pages held to the target.
    pub pages: Vec<PageLoad>,
    /// The middle of the list, shown.
    pub deep: PageLoad,
    /// The first page as the load left the master, shown.
    pub before_statistics: PageLoad,
    /// How long `VACUUM (ANALYZE) replica_rows` took.
    pub vacuum_seconds: f64,
}

/// Signs in on `master`'s console and times its pages, `requests` each
/// (after one untimed request). `slave` is a slave whose computers the
/// master holds (`per_slave` each, of `slaves`); `master_db` is the
/// master's database.
///
/// The first page is timed a few times first as the load left the master
/// (no planner statistics for the copy yet), then `replica_rows` is
/// vacuumed and analyzed, which PostgreSQL's autovacuum does by itself
/// within a minute or so of a bulk load; this machine's cluster runs
/// without autovacuum, so the benchmark does it.
pub async fn run(
    master: &Api,
    master_db: &tokio_postgres::Client,
    slave: &str,
    slaves: usize,
    per_slave: u64,
    requests: usize,
) -> anyhow::Result<ConsoleLoad> {
    let computers = slaves as u64 * per_slave;
    let browser = Browser::sign_in(master).await?;
    let home = browser.get("/console").await?;
    let csrf = field_value(&home, "csrf").context("the console's home page carries no CSRF token")?;
    browser.post_form("/console/tree-view", &[("view", "network"), ("csrf", &csrf)]).await?;

    let first = ("computers, first page", "/console/computers".to_owned(), "-000000".to_owned());
    let before_statistics = browser.time("computers, first page, before statistics", &first.1, &first.2, FEW).await?;
    let started = Instant::now();
    master_db.batch_execute("VACUUM (ANALYZE) replica_rows").await.context("vacuuming the master's replica_rows")?;
    let vacuum_seconds = started.elapsed().as_secs_f64();
    tracing::info!(vacuum_seconds, "The master's replica_rows vacuumed and analyzed.");

    let groups = browser.get(&format!("/console/tree/children?slave={slave}")).await?;
    let group = between(&groups, "group=", "\"").context("the slave's tree node shows no group")?.to_owned();
    // Pages of 50: page 21 (or the middle one of a smaller list), and the
    // middle of the list, which an operator reaches only by typing its
    // offset (shown, not held to the target: OFFSET walks every row before
    // it, a cost that grows with the offset; paging by the last key shown
    // would not).
    let later = (computers / 2 / 50 * 50).min(1_000);
    let middle = computers / 2 / 50 * 50;
    // Computer n of a slave is `<slave>-<n, 6 digits>`, named `pc-<n>`;
    // every sixth from n = 4 is infected.
    let searched = per_slave / 2 + 1;
    let pages = [
        first,
        ("computers, a later page", format!("/console/computers?offset={later}"), "pc-".to_owned()),
        ("computers, status filter", "/console/computers?status=infected".to_owned(), "-000004".to_owned()),
        ("computers, one slave's", format!("/console/computers?slave={slave}"), format!("{slave}-000000")),
        ("computers, hostname search", format!("/console/computers?search=pc-{searched}"), format!("-{searched:06}")),
        ("tree: a slave opened to its groups", format!("/console/tree/children?slave={slave}"), "group=".to_owned()),
        (
            "tree: a slave's group opened to its computers",
            format!("/console/tree/children?slave={slave}&group={group}"),
            "pc-".to_owned(),
        ),
        ("slaves", "/console/slaves".to_owned(), slave.to_owned()),
    ];
    let mut loads = Vec::with_capacity(pages.len());
    for (page, path, shows) in pages {
        // One untimed request first.
        browser.get(&path).await?;
        loads.push(browser.time(page, &path, &shows, requests).await?);
    }
    let deep = browser
        .time("computers, the middle of the list", &format!("/console/computers?offset={middle}"), "pc-", FEW)
        .await?;
    Ok(ConsoleLoad { computers, slaves, pages: loads, deep, before_statistics, vacuum_seconds })
}

/// A signed-in browser: the session cookie, no redirects followed.
struct Browser {
    base: String,
    cookie: String,
    http: reqwest::Client,
}

impl Browser {
    /// Makes the operator with the bootstrap token, then signs in through
    /// the form.
    async fn sign_in(master: &Api) -> anyhow::Result<Self> {
        let (status, body) = master
            .call(
                Method::POST,
                "/api/operators",
                Some(json!({"name": OPERATOR, "role": "auditor", "password": PASSWORD})),
            )
            .await?;
        ensure!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "creating the operator: {status} {body}"
        );
        let http =
            reqwest::Client::builder().redirect(redirect::Policy::none()).timeout(Duration::from_secs(30)).build()?;
        let base = master.base.clone();
        let form = http.get(format!("{base}/console/sign-in")).send().await?;
        ensure!(form.status().is_success(), "the sign-in page answered {}", form.status());
        let answer = http
            .post(format!("{base}/console/sign-in"))
            .header(header::ORIGIN, &base)
            .form(&[("name", OPERATOR), ("password", PASSWORD)])
            .send()
            .await
            .context("posting the sign-in form")?;
        if !answer.status().is_redirection() {
            bail!("signing in answered {}: {}", answer.status(), answer.text().await.unwrap_or_default());
        }
        let cookie = answer
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("rampart_session="))
            .and_then(|v| v.split(';').next())
            .context("signing in set no session cookie")?
            .to_owned();
        Ok(Self { base, cookie, http })
    }

    /// A page's body; anything but 200 is an error.
    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let response =
            self.http.get(format!("{}{path}", self.base)).header(header::COOKIE, &self.cookie).send().await?;
        let status = response.status();
        let body = response.text().await?;
        ensure!(status == StatusCode::OK, "the console answered {status} to {path}: {body}");
        Ok(body)
    }

    /// Times `requests` requests to `path`, each of whose pages must show
    /// `shows`.
    async fn time(&self, page: &str, path: &str, shows: &str, requests: usize) -> anyhow::Result<PageLoad> {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let body = self.get(path).await?;
            times.push(started.elapsed());
            ensure!(body.contains(shows), "the console's {path} does not show '{shows}'");
        }
        let latency = Percentiles::of(&times).context("no requests")?;
        tracing::info!(page, path, ?latency, "Console page timed.");
        Ok(PageLoad { page: page.to_owned(), path: path.to_owned(), latency })
    }

    /// Posts a form; the console answers a form with a redirect.
    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .header(header::ORIGIN, &self.base)
            .form(fields)
            .send()
            .await?;
        ensure!(response.status().is_redirection(), "the console answered {} to the form {path}", response.status());
        Ok(())
    }
}

/// The `value` of the first input named `name` in a page.
fn field_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\""))?;
    let tag_start = page[..at].rfind('<')?;
    let tag_end = at + page[at..].find('>')?;
    between(&page[tag_start..tag_end], "value=\"", "\"").map(str::to_owned)
}

/// The text between the first `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

impl ConsoleLoad {
    /// The table's lines: one per page.
    pub fn figures(&self) -> Vec<Figure> {
        let name = |p: &PageLoad| {
            format!(
                "console, master with {} computers / {} slaves: {} (`{}`), {} requests",
                thousands(self.computers),
                self.slaves,
                p.page,
                p.path,
                p.latency.count
            )
        };
        let mut rows: Vec<Figure> = self
            .pages
            .iter()
            .map(|p| {
                let met = Some(p.latency.p99_ms <= TARGET_P99_MS);
                figure(name(p), ms(&p.latency), "-", None, "p99 <= 200 ms", met)
            })
            .collect();
        rows.push(figure(name(&self.deep), ms(&self.deep.latency), "-", None, "(shown)", None));
        rows.push(figure(
            name(&self.before_statistics),
            ms(&self.before_statistics.latency),
            format!("then VACUUM (ANALYZE) replica_rows: {:.1} s", self.vacuum_seconds),
            None,
            "(shown)",
            None,
        ));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_its_field() {
        let page = r#"<form><input type="hidden" name="csrf" value="abc123"><button>x</button></form>"#;
        assert_eq!(field_value(page, "csrf").as_deref(), Some("abc123"));
        assert_eq!(field_value(page, "other"), None);
        assert_eq!(between("a?group=17\">", "group=", "\""), Some("17"));
    }
}
