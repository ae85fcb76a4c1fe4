//! The site features a stand-alone or slave shows (read-only pages for
//! now): the network audit, the network groups, deployments, the e-mail
//! settings (never the password) and the license. A master has none of
//! them; its answers are in [`super::site`].

use axum::{extract::State, routing::get, Extension, Router};
use maud::html;

use super::{layout, page::PageResult, session::Session};
use crate::{
    deployments,
    email_settings::{self, EmailSettingsView},
    fleet::{audit, groups},
    licensing,
    state::SharedState,
};

/// The site features' pages.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/audit", get(audit_page))
        .route("/groups", get(groups_page))
        .route("/deployments", get(deployments_page))
        .route("/settings/email", get(email_page))
        .route("/license", get(license_page))
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
                    td { (c.hostname) } td { (c.ip) } td { (c.mac) }
                    td { (if c.managed { "yes" } else { "no" }) } td { (c.deployment) }
                    td { (layout::time(Some(c.last_seen))) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Network audit", body).await
}

/// `GET /console/groups`: the network groups as built.
async fn groups_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let groups = groups::list(&state).await?;
    let name_of =
        |id: Option<i64>| groups.iter().find(|g| Some(g.id) == id).map(|g| g.name.clone()).unwrap_or_default();
    let body = html! {
        table {
            thead { tr { th { "Group" } th { "Parent" } th { "Subnet" } th { "Computers" } } }
            tbody { @for g in &groups { tr {
                td { a href={"/console/computers?group=" (g.id)} { (g.name) } }
                td { (name_of(g.parent_id)) }
                td { (g.subnet.as_deref().unwrap_or_default()) }
                td { (g.endpoint_count) }
            } } }
        }
        p { "Build groups with " code { "rampartctl groups" } "." }
    };
    layout::page(&state, &session, "Network groups", body).await
}

/// `GET /console/deployments`: agent installations and their state.
async fn deployments_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let list = deployments::list(&state).await?;
    let body = html! {
        @if list.is_empty() { p.empty { "No deployment yet." } } @else {
            table {
                thead { tr { th { "Computer" } th { "State" } th { "Automatic" } th { "Requested" } th { "Finished" } th { "Message" } } }
                tbody { @for d in &list { tr {
                    td { (d.hostname.as_deref().unwrap_or(&d.computer_id)) } td { (d.state) }
                    td { (if d.automatic { "yes" } else { "no" }) }
                    td { (layout::time(Some(d.requested_at))) } td { (layout::time(d.finished_at)) }
                    td { (d.message.as_deref().unwrap_or_default()) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Deployments", body).await
}

/// `GET /console/settings/email`: the relay and recipients of report mail.
async fn email_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let settings = email_settings::show(&state).await?;
    let body = match &settings {
        EmailSettingsView::NotConfigured { .. } => html! {
            p.empty { "No e-mail settings yet: set them with " code { "rampartctl settings email" } "." }
        },
        EmailSettingsView::Configured(e) => html! {
            table { tbody {
                tr { th scope="row" { "SMTP relay" } td { (e.smtp_host) ":" (e.smtp_port) } }
                tr { th scope="row" { "User" } td { (e.username.as_deref().unwrap_or("none")) } }
                tr { th scope="row" { "Password" } td { (if e.password_set { "set" } else { "none" }) } }
                tr { th scope="row" { "From" } td { (e.from) } }
                tr { th scope="row" { "To" } td { (e.to.join(", ")) } }
            } }
        },
    };
    layout::page(&state, &session, "E-mail settings", body).await
}

/// `GET /console/license`: seats and their use.
async fn license_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let l = licensing::current(&state).await?;
    let body = html! {
        table { tbody {
            tr { th scope="row" { "State" } td id="license-state" { (l.state) } }
            tr { th scope="row" { "Customer" } td { (l.customer.as_deref().unwrap_or_default()) } }
            tr { th scope="row" { "Seats" } td { (l.seats) } }
            tr { th scope="row" { "Used" } td { (l.used) } }
            tr { th scope="row" { "Unlicensed computers" } td { (l.unlicensed) } }
            tr { th scope="row" { "Expires on" } td { (l.expires_on.map(|d| d.to_string()).unwrap_or_default()) } }
        } }
    };
    layout::page(&state, &session, "License", body).await
}
