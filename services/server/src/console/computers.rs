//! Computers: the list (filters, search and paging done by the database;
//! on a site, ticked computers move into a group for who may build groups)
//! and one computer's page. On a master both read the consolidated copy of
//! every slave's computers. Every value shown came from an agent or a
//! slave, so it is only ever given to `maud` as text (escaped).

use axum::{
    extract::{Path, Query, State},
    Extension,
};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    format::{computer_link, given, number, thousands, urlencode},
    layout,
    page::{ConsoleError, PageResult},
    session::{may, Session},
};
use crate::{
    fleet::{
        consolidated,
        endpoints::{self, DetectionView},
        filter::{After, EndpointFilter, FilterError, Page},
        groups,
    },
    role::Role,
    state::{AppState, SharedState},
};

/// Rows on one page of the list.
const PAGE_ROWS: i64 = 50;

/// The list's filters as a form sends them (empty fields mean "any").
#[derive(Default, Deserialize)]
pub struct ListQuery {
    search: Option<String>,
    status: Option<String>,
    group: Option<String>,
    slave: Option<String>,
    offset: Option<String>,
    /// On a master: the page starts after this computer (`<slave>/<id>`).
    after: Option<String>,
}

/// One computer as the list shows it, from a site's table or a master's copy.
struct Line {
    slave: Option<String>,
    id: String,
    hostname: String,
    ip: String,
    group: String,
    status: String,
    online: bool,
    last_seen: Option<DateTime<Utc>>,
    policy: String,
}

/// A page of the list: its computers, how many match, and (on a master)
/// the computer the next page starts after.
struct Found {
    lines: Vec<Line>,
    total: i64,
    /// `false`: more matched than the master counts, `total` is an estimate.
    exact: bool,
    next: Option<String>,
}

async fn lines(
    state: &AppState,
    filter: &EndpointFilter,
    page: Page,
    after: Option<&After>,
) -> Result<Found, ConsoleError> {
    let text = |v: Option<String>| v.unwrap_or_default();
    if state.role() == Role::Master {
        let found = consolidated::list(state, filter, page, after).await?;
        let lines = found.endpoints.into_iter().map(|e| Line {
            slave: Some(e.slave),
            id: text(e.id),
            hostname: text(e.hostname),
            ip: text(e.ip),
            group: text(e.group),
            status: text(e.status),
            online: e.online,
            last_seen: e.last_seen,
            policy: text(e.policy.name),
        });
        return Ok(Found { lines: lines.collect(), total: found.total, exact: found.total_exact, next: found.next });
    }
    if after.is_some() {
        return Err(FilterError::AfterOnSite.into());
    }
    let found = endpoints::list(state, filter, page).await?;
    let lines = found.endpoints.into_iter().map(|e| Line {
        slave: None,
        id: e.id,
        hostname: e.hostname,
        ip: e.ip,
        group: e.group,
        status: e.status,
        online: e.online,
        last_seen: Some(e.last_seen),
        policy: text(e.policy.name),
    });
    Ok(Found { lines: lines.collect(), total: found.total, exact: true, next: None })
}

/// `GET /console/computers`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let master = state.role() == Role::Master;
    let status = EndpointFilter::status(given(&query.status))?;
    let filter = EndpointFilter {
        slave: given(&query.slave).map(str::to_owned),
        group: number(&query.group, "group")?,
        status,
        licensed: None,
        search: given(&query.search).map(str::to_owned),
    };
    let offset = number(&query.offset, "offset")?;
    let after = given(&query.after).map(After::parse).transpose()?;
    if offset.is_some() && after.is_some() {
        return Err(FilterError::OffsetWithAfter.into());
    }
    let page = Page::new(Some(PAGE_ROWS), offset, PAGE_ROWS)?;
    let Found { lines, total, exact, next } = lines(&state, &filter, page, after.as_ref()).await?;
    let cap = state.settings.exact_total_up_to;
    // On a site, who may build groups ticks computers and moves them.
    let groups =
        if !master && may(&session, "POST", "/groups/move") { groups::list(&state).await? } else { Vec::new() };
    let moves = !groups.is_empty();
    // `start`: `offset=N`, or `after=<slave>/<id>` (deep pages of a master).
    let link = |start: &str| {
        let mut q = format!("?{start}");
        for (name, value) in
            [("search", &query.search), ("status", &query.status), ("group", &query.group), ("slave", &query.slave)]
        {
            if let Some(v) = given(value) {
                q.push_str(&format!("&{name}={}", urlencode(v)));
            }
        }
        q
    };
    let body = html! {
        form.filters method="get" action="/console/computers" role="search" {
            label { "Search hostname or IP" input type="search" name="search" value=[given(&query.search)]; }
            label { "Status"
                select name="status" {
                    option value="" { "any" }
                    @for s in ["protected", "at_risk", "infected", "unprotected"] {
                        option value=(s) selected[given(&query.status) == Some(s)] { (s) }
                    }
                }
            }
            @if master { label { "Slave" input name="slave" value=[given(&query.slave)]; } }
            @if given(&query.group).is_some() { input type="hidden" name="group" value=[given(&query.group)]; }
            button type="submit" { "Filter" }
        }
        p {
            @if exact { (thousands(total)) " computer(s)" } @else {
                "More than " (thousands(cap)) " computers"
                // cap + 1: more than the cap, and no estimate beyond it.
                @if total > cap + 1 { " (about " (thousands(rounded(total))) ")" }
            }
            @if !lines.is_empty() {
                @if let Some(after) = &after { ", showing " (lines.len()) " after " (after) }
                @else { ", showing " (page.offset + 1) "–" (page.offset + lines.len() as i64) }
            }
        }
        @if lines.is_empty() {
            p.empty { "No computers match. " @if master { "Computers appear here once slaves replicate them." } @else { "Computers appear here when their agents first report." } }
        } @else {
            table {
                thead { tr {
                    @if moves { th { span.visually-hidden { "Selected" } } }
                    @if master { th { "Slave" } }
                    th { "Hostname" } th { "IP" } th { "Group" } th { "Status" } th { "Online" } th { "Last seen" } th { "Policy" }
                } }
                tbody {
                    @for l in &lines {
                        tr {
                            @if moves { td { label {
                                span.visually-hidden { "Select " (l.hostname) }
                                input type="checkbox" name="computers" value=(l.id) form="move-selected";
                            } } }
                            @if master { td { (l.slave.as_deref().unwrap_or_default()) } }
                            td { a href=(computer_link(&l.id, l.slave.as_deref())) { (l.hostname) } }
                            td { (l.ip) } td { (l.group) }
                            td { span class={"badge " (l.status)} { (l.status) } }
                            td { @if l.online { "online" } @else { "offline" } }
                            td { (layout::time(l.last_seen)) }
                            td { (l.policy) }
                        }
                    }
                }
            }
        }
        @if moves && !lines.is_empty() {
            form.filters method="post" action="/console/groups/move" id="move-selected" {
                (layout::csrf_field(&session))
                label { "Move the ticked computers into group"
                    select name="group_id" { @for g in &groups { option value=(g.id) { (g.name) } } }
                }
                button type="submit" { "Move" }
            }
        }
        nav.pager aria-label="Pages of computers" {
            @if after.is_some() { a href=(link("offset=0")) { "First page" } }
            @else if page.offset > 0 { a href=(link(&format!("offset={}", (page.offset - PAGE_ROWS).max(0)))) { "Previous page" } }
            @if let Some(next) = &next { a href=(link(&format!("after={}", urlencode(next)))) { "Next page" } }
            @else if !master && page.offset + PAGE_ROWS < total {
                a href=(link(&format!("offset={}", page.offset + PAGE_ROWS))) { "Next page" }
            }
        }
    };
    layout::page(&state, &session, "Computers", body).await
}

/// An estimated total to three significant digits: its own precision.
fn rounded(estimate: i64) -> i64 {
    let mut step = 1;
    while estimate / step >= 1000 {
        step *= 10;
    }
    (estimate + step / 2) / step * step
}

#[derive(Deserialize)]
pub struct ShowQuery {
    slave: Option<String>,
}

/// `GET /console/computers/{id}`.
pub async fn show(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> PageResult {
    let (facts, detections): (Vec<(&str, Markup)>, Vec<DetectionView>) = if state.role() == Role::Master {
        let e = consolidated::show(&state, &id, given(&query.slave)).await?;
        let text = |v: Option<String>| html! { (v.unwrap_or_default()) };
        let facts = vec![
            ("Slave", html! { (e.slave) }),
            ("Hostname", text(e.hostname)),
            ("IP", text(e.ip)),
            ("Operating system", text(e.os)),
            ("Group", text(e.group)),
            ("Status", text(e.status)),
            ("Last seen", layout::time(e.last_seen)),
            ("Policy assigned", text(e.policy.name)),
            (
                "Policy applied",
                html! { (e.applied_policy.version.map(|v| format!("version {v}")).unwrap_or_else(|| "not reported".into())) },
            ),
        ];
        (facts, e.detections.unwrap_or_default())
    } else {
        let e = endpoints::show(&state, &id).await?;
        let assigned =
            format!("{} (version {})", e.policy.name.unwrap_or_default(), e.policy.version.unwrap_or_default());
        let applied = match &e.applied_policy {
            Some(a) => format!("version {}", a.version.map(|v| v.to_string()).unwrap_or_else(|| "?".into())),
            None => "not reported yet".into(),
        };
        let facts = vec![
            ("Hostname", html! { (e.hostname) }),
            ("IP", html! { (e.ip) }),
            ("Operating system", html! { (e.os) }),
            ("Group", html! { (e.group) }),
            ("Status", html! { (e.status) }),
            ("Online", html! { (if e.online { "yes" } else { "no" }) }),
            ("Real-time protection", html! { (if e.realtime_protection { "on" } else { "off" }) }),
            ("Signatures", html! { (e.signatures_version) " (" (e.signatures_date) ")" }),
            ("Agent", html! { (e.agent_version) }),
            ("Last seen", layout::time(Some(e.last_seen))),
            ("Policy assigned", html! { (assigned) }),
            ("Policy applied", html! { (applied) }),
        ];
        (facts, e.detections.unwrap_or_default())
    };
    let body = html! {
        table.facts { tbody { @for (name, value) in &facts { tr { th scope="row" { (name) } td { (value) } } } } }
        h2 { "Latest detections" }
        @if detections.is_empty() { p.empty { "No detections." } } @else {
            table {
                thead { tr { th { "When" } th { "Malware" } th { "Path" } th { "Action" } } }
                tbody { @for d in &detections { tr {
                    td { (layout::time(d.detected_at)) }
                    td.name { (d.malware.as_deref().unwrap_or_default()) }
                    td.name { (d.path.as_deref().unwrap_or_default()) }
                    td { (d.action.as_deref().unwrap_or_default()) }
                } } }
            }
        }
        p { a href="/console/computers" { "All computers" } }
    };
    layout::page(&state, &session, &format!("Computer {id}"), body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_what_agents_named() {
        assert_eq!(urlencode("pc-1"), "pc-1");
        assert_eq!(urlencode("<a b>&\"'"), "%3Ca%20b%3E%26%22%27");
        assert_eq!(computer_link("x/y", Some("paris")), "/console/computers/x%2Fy?slave=paris");
    }

    #[test]
    fn estimates_keep_three_digits() {
        assert_eq!(rounded(9_998_312), 10_000_000);
        assert_eq!(rounded(1_666_523), 1_670_000);
        assert_eq!(rounded(10_001), 10_000);
        assert_eq!(rounded(987), 987);
        assert_eq!(thousands(9_998_000), "9,998,000");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn empty_filters_mean_any() {
        assert_eq!(given(&Some("  ".into())), None);
        assert_eq!(given(&Some(" pc ".into())), Some("pc"));
        assert!(number(&Some("x".into()), "offset").is_err());
        assert_eq!(number(&None, "offset").unwrap(), None);
    }
}
