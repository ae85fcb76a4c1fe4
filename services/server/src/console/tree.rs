//! The tree on the left of every page: the instance at the root with its
//! role and its menu (switch view; register or unregister), then in the
//! network view a site's network groups, or a master's slaves with their
//! state and lag; in the virtual view a site's virtual groups, or a
//! master's slaves opening to their virtual groups (replicated with the
//! rest of each slave's data).
//!
//! Children load when a node is opened ([`children`], a fragment the script
//! puts in place): a slave's groups, a group's computers 50 at a time with
//! a link to the next 50. So a master of a million computers renders its
//! tree as fast as a small site. Without the script, each node links to the
//! computers list filtered to it.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    response::Html,
    Extension,
};
use maud::{html, Markup};
use rampart_http::ApiError;
use serde::Deserialize;

use super::{
    csrf::csrf_field,
    format::{computer_link, given, number, urlencode},
    page::ConsoleError,
    session::may,
    session::Session,
};
use crate::{
    fleet::{
        consolidated, endpoints,
        filter::{After, EndpointFilter, FilterError, Page},
        groups,
        tree::{self as fleet_tree, TreeView},
        virtual_groups,
    },
    hierarchy::slaves,
    role::Role,
    state::{AppState, SharedState},
};

/// Computers one opening of a group loads.
const CHILDREN_PAGE: i64 = 50;

/// A group to show: id, name, parent, computers.
struct GroupLine {
    id: i64,
    name: String,
    parent: Option<i64>,
    count: i64,
}

/// The tree in `view`, with the instance and its menu at the root.
pub async fn tree(state: &AppState, session: &Session, role: Role, view: TreeView) -> Result<Markup, ConsoleError> {
    let instance = state.site.instance.as_str();
    let (other, other_label) = match view {
        TreeView::Network => ("virtual", "Switch to virtual view"),
        TreeView::Virtual => ("network", "Switch to network view"),
    };
    let registers = may(session, "POST", "/hierarchy/register");
    let children = match (role, view) {
        (Role::Master, view) => master_children(state, view).await?,
        (_, TreeView::Network) => {
            let groups = groups::list(state).await?;
            let lines = groups
                .into_iter()
                .map(|g| GroupLine { id: g.id, name: g.name, parent: g.parent_id, count: g.endpoint_count })
                .collect();
            nested_groups(lines, None)
        }
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

/// A master's slaves, with their state and lag; each opens to its network
/// groups, or in the virtual view to its virtual groups.
async fn master_children(state: &AppState, view: TreeView) -> Result<Markup, ConsoleError> {
    let slaves = slaves::list_at_a_glance(&state.pool.get().await?).await?;
    let view_query = match view {
        TreeView::Network => "",
        TreeView::Virtual => "&view=virtual",
    };
    Ok(html! {
        @if slaves.is_empty() { li.empty { "No slaves yet: give a site a registration token." } }
        @for s in &slaves {
            li role="treeitem" tabindex="0" aria-expanded="false" data-node={"slave:" (s.id)} {
                details data-children={"/console/tree/children?slave=" (urlencode(&s.id)) (view_query)} {
                    summary {
                        a href={"/console/computers?slave=" (urlencode(&s.id))} { (s.id) }
                        " " span class={"badge " (s.state)} { (s.state) }
                        @if let Some(lag) = s.replication.lag_seconds { " lag " (lag) " s" }
                    }
                    ul role="group" data-slot { li.empty { "Loading…" } }
                }
            }
        }
    })
}

/// Network groups nested as built; each opens to its subgroups and its
/// computers (of `slave`, on a master).
fn nested_groups(groups: Vec<GroupLine>, slave: Option<&str>) -> Markup {
    let mut by_parent: BTreeMap<Option<i64>, Vec<&GroupLine>> = BTreeMap::new();
    for g in &groups {
        by_parent.entry(g.parent).or_default().push(g);
    }
    let slave_query = slave.map(|s| format!("slave={}&", urlencode(s))).unwrap_or_default();
    fn render(g: &GroupLine, slave_query: &str, by_parent: &BTreeMap<Option<i64>, Vec<&GroupLine>>) -> Markup {
        html! {
            li role="treeitem" tabindex="0" aria-expanded="false" data-node={"group:" (g.id)} {
                details data-children={"/console/tree/children?" (slave_query) "group=" (g.id)} {
                    summary {
                        a href={"/console/computers?" (slave_query) "group=" (g.id)} { (g.name) }
                        " " span.badge { (g.count) }
                    }
                    @if let Some(subgroups) = by_parent.get(&Some(g.id)) {
                        ul role="group" { @for child in subgroups { (render(child, slave_query, by_parent)) } }
                    }
                    ul role="group" data-slot { li.empty { "Loading…" } }
                }
            }
        }
    }
    html! {
        @if groups.is_empty() { li.empty { "No groups." } }
        @for g in by_parent.get(&None).into_iter().flatten() { (render(g, &slave_query, &by_parent)) }
    }
}

/// A site's virtual groups.
async fn virtual_children(state: &AppState) -> Result<Markup, ConsoleError> {
    let groups = virtual_groups::list(state).await?;
    let lines = groups.into_iter().map(|g| (g.id, g.name, g.member_count)).collect();
    Ok(virtual_group_items(lines, None))
}

/// Virtual groups (id, name, members), each opening to its computers (of
/// `slave`, on a master).
fn virtual_group_items(groups: Vec<(i64, String, i64)>, slave: Option<&str>) -> Markup {
    let slave_query = slave.map(|s| format!("slave={}&", urlencode(s))).unwrap_or_default();
    html! {
        @if groups.is_empty() { li.empty { "No virtual groups yet." } }
        @for (id, name, count) in &groups {
            li role="treeitem" tabindex="0" aria-expanded="false" data-node={"virtual-group:" (id)} {
                details data-children={"/console/tree/children?" (slave_query) "virtual_group=" (id)} {
                    summary { (name) " " span.badge { (count) } }
                    ul role="group" data-slot { li.empty { "Loading…" } }
                }
            }
        }
    }
}

/// What a node being opened asks for.
#[derive(Deserialize)]
pub struct ChildrenQuery {
    slave: Option<String>,
    group: Option<String>,
    virtual_group: Option<String>,
    /// `virtual`: a slave opens to its virtual groups (master).
    view: Option<String>,
    offset: Option<String>,
    /// A master's group: the page starts after this computer (`<slave>/<id>`).
    after: Option<String>,
}

/// `GET /console/tree/children`: a slave's network or virtual groups
/// (master), or a page of the computers of a group or a virtual group (of a
/// slave, on a master), as a `ul data-fragment` for the script to put in place.
pub async fn children(
    State(state): State<SharedState>,
    Extension(_session): Extension<Session>,
    Query(q): Query<ChildrenQuery>,
) -> Result<Html<String>, ConsoleError> {
    let slave = given(&q.slave).map(str::to_owned);
    let group = number(&q.group, "group")?;
    let page = Page::new(Some(CHILDREN_PAGE), number(&q.offset, "offset")?, CHILDREN_PAGE)?;
    let after = given(&q.after).map(After::parse).transpose()?;
    let master = state.role() == Role::Master;
    let view = TreeView::parse(given(&q.view)).map_err(|e| ConsoleError(ApiError::Invalid(e.to_string())))?;
    match (number(&q.virtual_group, "virtual_group")?, slave.as_deref()) {
        (Some(virtual_group), None) if !master => {
            let found = virtual_groups::members_page(&state, virtual_group, page).await?;
            let leaves = found.endpoints.into_iter().map(|e| (e.id, e.hostname, e.status)).collect();
            let more = format!("virtual_group={virtual_group}");
            let rest = Rest::after_offset(found.total, page);
            return Ok(fragment(leaves_markup(leaves, page, rest, None, &more, None)));
        }
        (Some(virtual_group), Some(slave)) if master => {
            let found = consolidated::virtual_group_members(&state, slave, virtual_group, page).await?;
            let text = |v: Option<String>| v.unwrap_or_default();
            let leaves = found.endpoints.into_iter().map(|e| (text(e.id), text(e.hostname), text(e.status))).collect();
            let more = format!("slave={}&virtual_group={virtual_group}", urlencode(slave));
            let rest = Rest::after_offset(found.total, page);
            return Ok(fragment(leaves_markup(leaves, page, rest, Some(slave), &more, None)));
        }
        (None, Some(slave)) if master && view == TreeView::Virtual && group.is_none() => {
            let groups = fleet_tree::slave_virtual_groups(&state, slave).await?;
            let lines = groups
                .into_iter()
                .map(|g| (g.id, g.name.unwrap_or_else(|| format!("virtual group {}", g.id)), g.member_count))
                .collect();
            return Ok(fragment(virtual_group_items(lines, Some(slave))));
        }
        _ => {}
    }
    let items = match (slave.as_deref(), group) {
        (Some(slave), None) if master => {
            let groups = fleet_tree::slave_groups(&state, slave).await?;
            let lines = groups
                .into_iter()
                .map(|g| GroupLine {
                    id: g.id,
                    name: g.name.unwrap_or_else(|| format!("group {}", g.id)),
                    parent: g.parent_id,
                    count: g.endpoint_count,
                })
                .collect();
            nested_groups(lines, Some(slave))
        }
        (_, Some(group)) if master == slave.is_some() => {
            let filter = EndpointFilter { slave: slave.clone(), group: Some(group), ..Default::default() };
            let (leaves, rest): (Vec<(String, String, String)>, Option<Rest>) = if master {
                // A master's group pages by cursor: its next page is read
                // from the order index however deep it is.
                let found = consolidated::list(&state, &filter, page, after.as_ref()).await?;
                let text = |v: Option<String>| v.unwrap_or_default();
                let cap = state.settings.exact_total_up_to;
                let rest = found.next.as_ref().map(|next| Rest {
                    label: match (found.total_exact, found.total) {
                        (true, total) => format!("Next {CHILDREN_PAGE} of {total} in the group"),
                        (false, total) if total > cap + 1 => {
                            format!("Next {CHILDREN_PAGE} of about {total} in the group")
                        }
                        (false, _) => format!("Next {CHILDREN_PAGE} of more than {cap} in the group"),
                    },
                    start: format!("after={}", urlencode(next)),
                });
                let leaves = found.endpoints.into_iter().map(|e| (text(e.id), text(e.hostname), text(e.status)));
                (leaves.collect(), rest)
            } else {
                if after.is_some() {
                    return Err(FilterError::AfterOnSite.into());
                }
                let found = endpoints::list(&state, &filter, page).await?;
                let rest = Rest::after_offset(found.total, page);
                (found.endpoints.into_iter().map(|e| (e.id, e.hostname, e.status)).collect(), rest)
            };
            let slave_query = slave.as_deref().map(|s| format!("slave={}&", urlencode(s))).unwrap_or_default();
            let more = format!("{slave_query}group={group}");
            let list = format!("/console/computers?{slave_query}group={group}");
            leaves_markup(leaves, page, rest, slave.as_deref(), &more, Some(&list))
        }
        _ => {
            let wanted = if master {
                "a slave, or a slave and one of its groups or virtual groups"
            } else {
                "a group or a virtual group"
            };
            return Err(ConsoleError(ApiError::Invalid(format!("the tree's children need {wanted}"))));
        }
    };
    Ok(fragment(items))
}

/// The `ul data-fragment` the script puts in place.
fn fragment(items: Markup) -> Html<String> {
    Html(html! { ul role="group" data-fragment { (items) } }.into_string())
}

/// What follows a page of computers in the tree: the link's words and the
/// query part (`offset=N` or `after=<slave>/<id>`) that loads it.
struct Rest {
    label: String,
    start: String,
}

impl Rest {
    /// The computers past an offset page of `total`, if any.
    fn after_offset(total: i64, page: Page) -> Option<Self> {
        let next = page.offset + CHILDREN_PAGE;
        (next < total).then(|| Self {
            label: format!("Next {} of {} more", CHILDREN_PAGE.min(total - next), total - next),
            start: format!("offset={next}"),
        })
    }
}

/// A page of computers (id, hostname, status), and a link to the next page
/// (`more`: the query of the children asked for; `list`: the computers list
/// the link opens without the script).
fn leaves_markup(
    leaves: Vec<(String, String, String)>,
    page: Page,
    rest: Option<Rest>,
    slave: Option<&str>,
    more: &str,
    list: Option<&str>,
) -> Markup {
    let fallback =
        |start: &str| list.map(|l| format!("{l}&{start}")).unwrap_or_else(|| "/console/computers".to_owned());
    html! {
        @if leaves.is_empty() && page.offset == 0 { li.empty { "No computers." } }
        @for (id, hostname, status) in &leaves {
            li role="treeitem" tabindex="0" data-node={"computer:" (id)} {
                a href=(computer_link(id, slave)) { (hostname) }
                " " span class={"badge " (status)} { (status) }
            }
        }
        @if let Some(rest) = &rest {
            li role="treeitem" tabindex="0" {
                a href=(fallback(&rest.start)) data-more={"/console/tree/children?" (more) "&" (rest.start)} {
                    (rest.label)
                }
            }
        }
    }
}
