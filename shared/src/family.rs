//! One table per message family: [`message_family!`].
//!
//! A family is the set of kinds one queue carries, decoded into one enum
//! (agents -> site [`AgentMessage`], site -> agents [`EndpointCommand`],
//! master -> slave [`MasterCommand`], slave -> master [`SlaveReport`]). Each
//! is declared once, one line per kind: the variant, its body type, its wire
//! name (a `kind::*` constant) and, as its `///` line, who produces it and
//! who consumes it. The macro derives the rest from that line, so the enum,
//! the kind of a message, its encoding and its decoding cannot disagree:
//!
//! * the enum itself (`Clone, Debug, PartialEq`);
//! * `KINDS`: every wire name of the family, in declaration order;
//! * `kind()`: the wire name of a message;
//! * `encode(from, seq)`: the message in an envelope of its kind (private;
//!   each family's `to_envelope` says who `from` is);
//! * `decode(envelope)`: the body parsed into the type its kind promises, or
//!   [`Rejection::UnknownKind`] for a kind not in the family (private; each
//!   family's `from_envelope` adds its own checks).
//!
//! [`AgentMessage`]: crate::messages::AgentMessage
//! [`EndpointCommand`]: crate::messages::EndpointCommand
//! [`MasterCommand`]: crate::hierarchy::MasterCommand
//! [`SlaveReport`]: crate::hierarchy::SlaveReport
//! [`Rejection::UnknownKind`]: crate::envelope::Rejection::UnknownKind

/// Declares a message family; see the module documentation.
///
/// ```ignore
/// message_family! {
///     /// Any command from the master, decoded by kind.
///     pub enum MasterCommand {
///         /// master -> slave: a master policy, new or in a new version.
///         Policy(MasterPolicy) = kind::POLICY,
///     }
/// }
/// ```
macro_rules! message_family {
    (
        $(#[$family_meta:meta])*
        $vis:vis enum $family:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident($body:ty) = $kind:path
            ),+ $(,)?
        }
    ) => {
        $(#[$family_meta])*
        #[derive(Clone, Debug, PartialEq)]
        $vis enum $family {
            $(
                $(#[$variant_meta])*
                $variant($body),
            )+
        }

        impl $family {
            /// Wire names of every kind of this family, in declaration order.
            pub const KINDS: &'static [&'static str] = &[$($kind),+];

            /// The wire name of this message's kind.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)+
                }
            }

            /// The message in an envelope of its kind, from `from`.
            fn encode(&self, from: &str, seq: u64) -> $crate::envelope::Envelope {
                match self {
                    $(Self::$variant(body) => $crate::envelope::Envelope::new($kind, from, seq, body),)+
                }
            }

            /// The envelope's body parsed into the type its kind promises; a
            /// kind outside this family is refused.
            fn decode(envelope: &$crate::envelope::Envelope) -> Result<Self, $crate::envelope::Rejection> {
                match envelope.kind.as_str() {
                    $($kind => Ok(Self::$variant(envelope.body()?)),)+
                    other => Err($crate::envelope::Rejection::UnknownKind(other.to_owned())),
                }
            }
        }
    };
}

pub(crate) use message_family;

#[cfg(test)]
pub(crate) mod tests {
    //! Checks every family runs on its samples, and checks across families.

    use std::collections::BTreeSet;

    use crate::{
        envelope::{Envelope, Rejection},
        hierarchy::{MasterCommand, SlaveReport},
        messages::{AgentMessage, EndpointCommand},
        replication,
    };

    /// Checks a family against its samples: one message of every kind in
    /// `kinds`, in order (so a kind added without a sample fails its test);
    /// each comes back equal from its envelope's bytes; and the envelope of a
    /// kind the family does not have is refused as unknown.
    pub(crate) fn assert_family<M: PartialEq + std::fmt::Debug>(
        kinds: &[&str],
        samples: &[M],
        kind: impl Fn(&M) -> &'static str,
        to_envelope: impl Fn(&M) -> Envelope,
        from_envelope: impl Fn(&Envelope) -> Result<M, Rejection>,
    ) {
        let sampled: Vec<&str> = samples.iter().map(&kind).collect();
        assert_eq!(sampled, kinds, "one sample per kind, in declaration order");
        for sample in samples {
            let envelope = to_envelope(sample);
            assert_eq!(envelope.kind, kind(sample));
            let received = Envelope::decode(&envelope.to_bytes(), Some(kind(sample))).unwrap();
            assert_eq!(&from_envelope(&received).unwrap(), sample, "{}", kind(sample));
            let mut unknown = envelope;
            unknown.kind = format!("{}.reboot", kind(sample));
            assert_eq!(from_envelope(&unknown), Err(Rejection::UnknownKind(unknown.kind.clone())));
        }
    }

    /// A family as the cross-family checks see it.
    struct Family {
        name: &'static str,
        kinds: &'static [&'static str],
        /// Whether the family refuses the envelope as of an unknown kind.
        refuses: fn(&Envelope) -> bool,
    }

    fn families() -> [Family; 4] {
        fn unknown<M>(decoded: Result<M, Rejection>, kind: &str) -> bool {
            matches!(decoded, Err(Rejection::UnknownKind(k)) if k == kind)
        }
        [
            Family {
                name: "AgentMessage",
                kinds: AgentMessage::KINDS,
                refuses: |e| unknown(AgentMessage::from_envelope(e), &e.kind),
            },
            Family {
                name: "EndpointCommand",
                kinds: EndpointCommand::KINDS,
                refuses: |e| unknown(EndpointCommand::from_envelope(e), &e.kind),
            },
            Family {
                name: "MasterCommand",
                kinds: MasterCommand::KINDS,
                refuses: |e| unknown(MasterCommand::from_envelope(e), &e.kind),
            },
            Family {
                name: "SlaveReport",
                kinds: SlaveReport::KINDS,
                refuses: |e| unknown(SlaveReport::from_envelope(e), &e.kind),
            },
        ]
    }

    #[test]
    fn wire_names_stay_put() {
        let agent =
            ["agent.heartbeat", "agent.detection", "agent.discovery", "agent.task_result", "agent.deploy_result"];
        assert_eq!(AgentMessage::KINDS, agent);
        let endpoint = ["endpoint.task", "endpoint.policy", "endpoint.deploy", "endpoint.cancel_task"];
        assert_eq!(EndpointCommand::KINDS, endpoint);
        let master = [
            "master.policy",
            "master.policy_removed",
            "master.task",
            "master.cancel_task",
            "master.unregister",
            "master.replication_ack",
            "master.replicate_now",
            "master.verify",
        ];
        assert_eq!(MasterCommand::KINDS, master);
        assert_eq!(SlaveReport::KINDS, ["slave.heartbeat", "slave.receipt", "slave.unregistered"]);
    }

    #[test]
    fn no_kind_belongs_to_two_families() {
        let all: Vec<&str> = families().iter().flat_map(|f| f.kinds.iter().copied()).collect();
        let distinct: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
    }

    #[test]
    fn each_family_refuses_the_kinds_of_the_others() {
        let families = families();
        for family in &families {
            let foreign = families
                .iter()
                .filter(|other| other.name != family.name)
                .flat_map(|other| other.kinds.iter().copied())
                .chain([replication::kind::BATCH, "agent.selfdestruct", ""]);
            for kind in foreign {
                let envelope = Envelope::new(kind, "ep-1", 1, &serde_json::json!({"endpoint_id": "ep-1"}));
                assert!((family.refuses)(&envelope), "{} must refuse '{kind}' as unknown", family.name);
            }
        }
    }
}
