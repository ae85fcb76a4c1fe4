//! The tree, in its network view (groups nested as built, computers in
//! them) and its virtual view (virtual groups and their members).
//!
//! A site's tree: site -> groups -> computers. A master's, from the
//! replicated copy: master -> slaves -> groups -> computers; group and
//! endpoint ids there are the slave's own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ReadError;
use crate::state::AppState;

/// The two views of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeView {
    Network,
    Virtual,
}

impl TreeView {
    /// The view a request names; the network view when it names none.
    pub fn parse(named: Option<&str>) -> Result<Self, UnknownView> {
        match named {
            None | Some("network") => Ok(Self::Network),
            Some("virtual") => Ok(Self::Virtual),
            Some(other) => Err(UnknownView(other.to_owned())),
        }
    }
}

/// A view the tree does not have.
#[derive(Debug, thiserror::Error)]
#[error("view '{0}' is not one of network, virtual")]
pub struct UnknownView(pub String);

/// What a node of the tree is.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Site,
    Master,
    Slave,
    Group,
    VirtualGroup,
}

/// A tree in one view.
#[derive(Debug, Serialize)]
pub struct Tree<Root> {
    pub root: Root,
    pub view: TreeView,
}

/// The root of a site's tree.
#[derive(Debug, Serialize)]
pub struct SiteRoot {
    pub children: Vec<GroupNode<Leaf>>,
    /// Always empty: every computer is in a group.
    pub endpoints: Vec<Leaf>,
    pub kind: NodeKind,
    pub name: String,
}

/// The root of a master's tree.
#[derive(Debug, Serialize)]
pub struct MasterRoot {
    pub children: Vec<SlaveNode>,
    pub kind: NodeKind,
    pub name: String,
}

/// A slave in a master's tree, with its groups.
#[derive(Debug, Serialize)]
pub struct SlaveNode {
    pub children: Vec<GroupNode<ReplicaLeaf>>,
    pub kind: NodeKind,
    pub name: String,
    pub state: String,
    pub synced_as_of: Option<DateTime<Utc>>,
}

/// A network or virtual group, with its subgroups and computers.
#[derive(Debug, Serialize)]
pub struct GroupNode<L> {
    pub children: Vec<GroupNode<L>>,
    pub endpoints: Vec<L>,
    pub id: i64,
    pub kind: NodeKind,
    pub name: String,
}

/// A computer of a site's tree.
#[derive(Debug, Serialize)]
pub struct Leaf {
    pub hostname: String,
    pub id: String,
    pub status: String,
}

/// A computer of a master's tree (replicated columns may be missing).
#[derive(Debug, Serialize)]
pub struct ReplicaLeaf {
    pub hostname: Option<String>,
    pub id: Option<String>,
    pub status: Option<String>,
}

/// This site's tree.
pub async fn site(state: &AppState, view: TreeView) -> Result<Tree<SiteRoot>, ReadError> {
    let client = state.pool.get().await?;
    let leaf = |r: &tokio_postgres::Row| Leaf { id: r.get(1), hostname: r.get(2), status: r.get(3) };
    let children = match view {
        TreeView::Network => {
            let groups = client.query("SELECT id, name, parent_id FROM network_groups ORDER BY id", &[]).await?;
            let members = client.query("SELECT group_id, id, hostname, status FROM endpoints ORDER BY id", &[]).await?;
            network(
                groups.iter().map(|g| (g.get(0), g.get(1), g.get(2))).collect(),
                members.iter().map(|m| (m.get::<_, Option<i64>>(0), leaf(m))).collect(),
            )
        }
        TreeView::Virtual => {
            let groups = client.query("SELECT id, name FROM virtual_groups ORDER BY id", &[]).await?;
            let members = client
                .query(
                    "SELECT m.virtual_group_id, e.id, e.hostname, e.status FROM virtual_group_members m
                       JOIN endpoints e ON e.id = m.endpoint_id ORDER BY e.id",
                    &[],
                )
                .await?;
            virtual_groups(
                groups.iter().map(|g| (g.get(0), g.get(1))).collect(),
                members.iter().map(|m| (m.get(0), leaf(m))).collect(),
            )
        }
    };
    let root = SiteRoot { kind: NodeKind::Site, name: state.site.instance.clone(), children, endpoints: Vec::new() };
    Ok(Tree { view, root })
}

/// A master's tree: every slave that is not removed, or whose replicated
/// data is still kept.
pub async fn master(state: &AppState, view: TreeView) -> Result<Tree<MasterRoot>, ReadError> {
    let client = state.pool.get().await?;
    let slaves = client
        .query(
            "SELECT id, state, synced_as_of FROM slaves WHERE state <> 'removed' OR EXISTS
                  (SELECT 1 FROM replica_rows r WHERE r.slave_id = slaves.id) ORDER BY id",
            &[],
        )
        .await?;
    let leaf = |r: &tokio_postgres::Row| ReplicaLeaf { hostname: r.get(1), id: r.get(2), status: r.get(3) };
    let mut children = Vec::new();
    for s in &slaves {
        let slave: String = s.get(0);
        let groups = match view {
            TreeView::Network => {
                let groups = client
                    .query(
                        "SELECT id, name, parent_id FROM replica_network_groups WHERE slave_id = $1 ORDER BY id",
                        &[&slave],
                    )
                    .await?;
                let members = client
                    .query(
                        "SELECT group_id, hostname, id, status FROM replica_endpoints WHERE slave_id = $1 ORDER BY id",
                        &[&slave],
                    )
                    .await?;
                network(
                    groups.iter().map(|g| (g.get(0), g.get(1), g.get(2))).collect(),
                    members.iter().map(|m| (m.get(0), leaf(m))).collect(),
                )
            }
            TreeView::Virtual => {
                let groups = client
                    .query("SELECT id, name FROM replica_virtual_groups WHERE slave_id = $1 ORDER BY id", &[&slave])
                    .await?;
                let members = client
                    .query(
                        "SELECT m.virtual_group_id, e.hostname, e.id, e.status FROM replica_virtual_group_members m
                           JOIN replica_endpoints e ON e.slave_id = m.slave_id AND e.id = m.endpoint_id
                          WHERE m.slave_id = $1 ORDER BY e.id",
                        &[&slave],
                    )
                    .await?;
                virtual_groups(
                    groups.iter().map(|g| (g.get(0), g.get(1))).collect(),
                    members.iter().map(|m| (m.get(0), leaf(m))).collect(),
                )
            }
        };
        children.push(SlaveNode {
            kind: NodeKind::Slave,
            name: slave,
            state: s.get(1),
            synced_as_of: s.get(2),
            children: groups,
        });
    }
    let root = MasterRoot { kind: NodeKind::Master, name: state.site.instance.clone(), children };
    Ok(Tree { view, root })
}

/// A network group of a slave in a master's copy, with its parent and how
/// many computers it holds (one level of the tree, loaded when a slave is
/// expanded).
#[derive(Debug, Serialize)]
pub struct ReplicaGroup {
    pub endpoint_count: i64,
    pub id: i64,
    pub name: Option<String>,
    pub parent_id: Option<i64>,
}

/// The network groups of `slave` in this master's copy, by id.
pub async fn slave_groups(state: &AppState, slave: &str) -> Result<Vec<ReplicaGroup>, ReadError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT g.id, g.name, g.parent_id, coalesce(c.n, 0) FROM replica_network_groups g
               LEFT JOIN (SELECT group_id, count(*) AS n FROM replica_endpoints WHERE slave_id = $1 GROUP BY group_id) c
                 ON c.group_id = g.id
              WHERE g.slave_id = $1 ORDER BY g.id",
            &[&slave],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ReplicaGroup { id: r.get(0), name: r.get(1), parent_id: r.get(2), endpoint_count: r.get(3) })
        .collect())
}

/// A virtual group of a slave in a master's copy, with how many computers
/// it holds (loaded when a slave is expanded in the virtual view).
#[derive(Debug, Serialize)]
pub struct ReplicaVirtualGroup {
    pub id: i64,
    pub member_count: i64,
    pub name: Option<String>,
}

/// The virtual groups of `slave` in this master's copy, by id.
pub async fn slave_virtual_groups(state: &AppState, slave: &str) -> Result<Vec<ReplicaVirtualGroup>, ReadError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT v.id, v.name, coalesce(c.n, 0) FROM replica_virtual_groups v
               LEFT JOIN (SELECT virtual_group_id, count(*) AS n FROM replica_virtual_group_members
                           WHERE slave_id = $1 GROUP BY virtual_group_id) c ON c.virtual_group_id = v.id
              WHERE v.slave_id = $1 ORDER BY v.id",
            &[&slave],
        )
        .await?;
    Ok(rows.iter().map(|r| ReplicaVirtualGroup { id: r.get(0), name: r.get(1), member_count: r.get(2) }).collect())
}

/// Nests `groups` (id, name, parent) under their parents, from the groups
/// without one, each with its computers (`leaves` by group, in order).
fn network<L>(groups: Vec<(i64, String, Option<i64>)>, leaves: Vec<(Option<i64>, L)>) -> Vec<GroupNode<L>> {
    let mut by_group: BTreeMap<Option<i64>, Vec<L>> = BTreeMap::new();
    for (group, leaf) in leaves {
        by_group.entry(group).or_default().push(leaf);
    }
    let mut children_of: BTreeMap<Option<i64>, Vec<(i64, String)>> = BTreeMap::new();
    for (id, name, parent) in groups {
        children_of.entry(parent).or_default().push((id, name));
    }
    fn build<L>(
        id: i64,
        name: String,
        children_of: &mut BTreeMap<Option<i64>, Vec<(i64, String)>>,
        by_group: &mut BTreeMap<Option<i64>, Vec<L>>,
    ) -> GroupNode<L> {
        let children = children_of.remove(&Some(id)).unwrap_or_default();
        GroupNode {
            children: children.into_iter().map(|(cid, cname)| build(cid, cname, children_of, by_group)).collect(),
            endpoints: by_group.remove(&Some(id)).unwrap_or_default(),
            id,
            kind: NodeKind::Group,
            name,
        }
    }
    let roots = children_of.remove(&None).unwrap_or_default();
    roots.into_iter().map(|(id, name)| build(id, name, &mut children_of, &mut by_group)).collect()
}

/// Each virtual group (id, name) with its computers (`leaves` by group, in order).
fn virtual_groups<L>(groups: Vec<(i64, String)>, leaves: Vec<(i64, L)>) -> Vec<GroupNode<L>> {
    let mut by_group: BTreeMap<i64, Vec<L>> = BTreeMap::new();
    for (group, leaf) in leaves {
        by_group.entry(group).or_default().push(leaf);
    }
    groups
        .into_iter()
        .map(|(id, name)| GroupNode {
            children: Vec::new(),
            endpoints: by_group.remove(&id).unwrap_or_default(),
            id,
            kind: NodeKind::VirtualGroup,
            name,
        })
        .collect()
}
