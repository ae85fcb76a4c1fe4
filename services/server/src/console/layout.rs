//! The page around every view: the top bar (the pages this server has, the
//! operator, sign-out), and on the left the tree ([`super::tree`]).

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::{page::bare_page, page::ConsoleError, session::Session, tree};
use crate::{operators::sessions, role::Role, state::AppState};

pub use super::csrf::csrf_field;

/// A time, rewritten to the browser's zone by the script; `never` when absent.
pub fn time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } },
        None => html! { span class="empty" { "never" } },
    }
}

/// A whole console page: top bar, tree, and `body` as its main part.
pub async fn page(
    state: &AppState,
    session: &Session,
    title: &str,
    body: Markup,
) -> Result<Html<String>, ConsoleError> {
    let role = state.role();
    let view = sessions::tree_view(state, &session.principal.operator).await?;
    let tree = tree::tree(state, session, role, view).await?;
    let has_fleet = role.has_fleet();
    let markup = html! {
        header.top {
            strong { "Rampart" }
            nav aria-label="Pages" {
                a href="/console" { "Home" }
                @if has_fleet { a href="/console/dashboard" { "Dashboard" } }
                @if has_fleet { a href="/console/audit" { "Audit" } }
                @if has_fleet { a href="/console/groups" { "Groups" } }
                @if has_fleet { a href="/console/deployments" { "Deployments" } }
                a href="/console/computers" { "Computers" }
                a href="/console/policies" { "Policies" }
                a href="/console/tasks" { "Tasks" }
                @if role == Role::Master { a href="/console/slaves" { "Slaves" } }
                a href="/console/hierarchy" { "Hierarchy" }
                a href="/console/reports" { "Reports" }
                a href="/console/refused-messages" { "Refused messages" }
                a href="/console/activity" { "Activity" }
                @if has_fleet { a href="/console/license" { "License" } }
                @if has_fleet { a href="/console/settings/email" { "E-mail" } }
            }
            span.who { (session.principal.operator) " (" (session.principal.role) ")" }
            form.inline method="post" action="/console/sign-out" {
                (csrf_field(session))
                button type="submit" { "Sign out" }
            }
        }
        div.shell {
            aside.tree aria-label="Tree" { (tree) }
            main id="main" { h1 { (title) } (body) }
        }
    };
    Ok(bare_page(title, markup))
}
