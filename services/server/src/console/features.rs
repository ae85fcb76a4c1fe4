//! The site features a stand-alone or slave has besides its dashboard:
//! the network audit (read-only: the API has no action on it), and the
//! pages with forms of their own: the network builder ([`super::groups`]),
//! deployments ([`super::deployments`]), the e-mail settings
//! ([`super::email`]) and the license ([`super::license`]). A master has
//! none of them; its answers are in [`super::site`].

use axum::{extract::State, routing::get, Extension, Router};
use maud::html;

use super::{layout, page::PageResult, session::Session};
use crate::{fleet::audit, state::SharedState};

/// The site features' pages and forms.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/audit", get(audit_page))
        .merge(super::groups::routes())
        .merge(super::deployments::routes())
        .merge(super::email::routes())
        .merge(super::license::routes())
}

/// `GET /console/audit`: the computers discovered on the network.
async fn audit_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let a = audit::audit(&state).await?;
    let s = &a.summary;
    let body = html! {
        p { (s.discovered) " discovered: " (s.managed) " managed, " (s.unmanaged) " unmanaged, " (s.unprotected) " unprotected." }
        @if a.computers.is_empty() { p.empty { "No computer discovered yet: agents report what they see on the network." } } @else {
            table {
                thead { tr { th { "Hostname" } th { "IP" } th { "MAC" } th { "Managed" } th { "Deployment" } th { "Last seen" } } }
                tbody { @for c in &a.computers { tr {
                    td.name { (c.hostname) } td { (c.ip) } td { (c.mac) }
                    td { (if c.managed { "yes" } else { "no" }) } td { (c.deployment) }
                    td { (layout::time(Some(c.last_seen))) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Network audit", body).await
}
