//! The page around every view: the top bar (the pages this server has, the
//! operator, sign-out), and on the left the tree with the instance at its
//! root and the instance's menu (switch view, register, unregister).
//!
//! The tree lists groups, not computers: a group opens the computers list
//! filtered to it, paged on the server, so a site with a million computers
//! renders as fast as one with ten.

use std::collections::BTreeMap;

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::{bare_page, csrf, session::may, ConsoleError, Session};
use crate::{
    fleet::{
        groups::{self, GroupView},
        tree::TreeView,
        virtual_groups,
    },
    hierarchy::slaves,
    operators::sessions,
    role::Role,
    state::AppState,
};

/// The hidden field every form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(session.csrf); }
}

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
    let tree = tree(state, session, role, view).await?;
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

/// The tree in `view`, with the instance and its menu at the root.
async fn tree(state: &AppState, session: &Session, role: Role, view: TreeView) -> Result<Markup, ConsoleError> {
    let instance = state.site.instance.as_str();
    let (other, other_label) = match view {
        TreeView::Network => ("virtual", "Switch to virtual view"),
        TreeView::Virtual => ("network", "Switch to network view"),
    };
    let registers = may(session, "POST", "/hierarchy/register");
    let children = match (role, view) {
        (Role::Master, _) => master_children(state).await?,
        (_, TreeView::Network) => network_children(groups::list(state).await?),
        (_, TreeView::Virtual) => virtual_children(state).await?,
    };
    let view_name = match view {
        TreeView::Network => "Network view",
        TreeView::Virtual => "Virtual view",
    };
    Ok(html! {
        div.instance {
            strong { (instance) }
            span class={"badge " (role.as_str())} { (role.as_str()) }
            button type="button" data-menu aria-haspopup="true" aria-expanded="false" aria-controls="instance-menu" {
                "Menu" span class="visually-hidden" { " of " (instance) }
            }
        }
        ul.menu id="instance-menu" role="menu" aria-label={"Menu of " (instance)} {
            li role="none" {
                form.inline method="post" action="/console/tree-view" {
                    (csrf_field(session))
                    input type="hidden" name="view" value=(other);
                    button type="submit" role="menuitem" { (other_label) }
                }
            }
            @if registers && role == Role::Standalone {
                li role="none" { a role="menuitem" href="/console/hierarchy#register" { "Register to master server" } }
            }
            @if registers && role == Role::Slave {
                li role="none" { a role="menuitem" href="/console/hierarchy#unregister" { "Unregister from master server" } }
            }
        }
        p.empty { (view_name) }
        ul role="tree" aria-label={(view_name) " of " (instance)} {
            (children)
        }
    })
}

/// A master's slaves, with their state and lag, each opening its computers.
async fn master_children(state: &AppState) -> Result<Markup, ConsoleError> {
    let slaves = slaves::list(&state.pool.get().await?).await?;
    Ok(html! {
        @if slaves.is_empty() { li.empty { "No slaves yet: give a site a registration token." } }
        @for s in &slaves {
            li role="treeitem" tabindex="0" {
                a href={"/console/computers?slave=" (s.id)} { (s.id) }
                " " span class={"badge " (s.state)} { (s.state) }
                @if let Some(lag) = s.replication.lag_seconds { " lag " (lag) " s" }
            }
        }
    })
}

/// A site's network groups, nested as built.
fn network_children(groups: Vec<GroupView>) -> Markup {
    let mut by_parent: BTreeMap<Option<i64>, Vec<&GroupView>> = BTreeMap::new();
    for g in &groups {
        by_parent.entry(g.parent_id).or_default().push(g);
    }
    fn level(by_parent: &BTreeMap<Option<i64>, Vec<&GroupView>>, parent: Option<i64>) -> Markup {
        html! {
            @for g in by_parent.get(&parent).into_iter().flatten() {
                @let children = by_parent.contains_key(&Some(g.id));
                li role="treeitem" tabindex="0" aria-expanded=[children.then_some("true")] {
                    a href={"/console/computers?group=" (g.id)} { (g.name) }
                    " " span.badge { (g.endpoint_count) }
                    @if children {
                        details open {
                            summary { "Subgroups of " (g.name) }
                            ul role="group" { (level(by_parent, Some(g.id))) }
                        }
                    }
                }
            }
        }
    }
    html! {
        @if groups.is_empty() { li.empty { "No groups." } }
        (level(&by_parent, None))
    }
}

/// A site's virtual groups.
async fn virtual_children(state: &AppState) -> Result<Markup, ConsoleError> {
    let groups = virtual_groups::list(state).await?;
    Ok(html! {
        @if groups.is_empty() { li.empty { "No virtual groups yet." } }
        @for g in &groups {
            li role="treeitem" tabindex="0" {
                (g.name) " " span.badge { (g.member_count) }
            }
        }
    })
}
