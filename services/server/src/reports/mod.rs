//! Reports on every role.
//!
//! * A master publishes [`events`] for its report service (`rampart-report`),
//!   summarizing each slave some time after its batches ([`due`]), and
//!   forwards report requests to it ([`proxy`]).
//! * A stand-alone or slave makes its own reports ([`local`]) on request
//!   and on a schedule ([`schedules`]), writing files and sending e-mail.
//! * [`summary`] reads one site's numbers, from a site's own tables or from
//!   a master's copy of a slave, with the same queries.

pub mod due;
pub mod events;
pub mod local;
pub mod proxy;
pub mod schedules;
pub mod summary;
