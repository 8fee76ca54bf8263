//! The documented AgentSync event types and the groups the portal subscribes to.

use std::{fmt, str::FromStr};

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident = $name:literal in $group:ident;)+) => {
        /// Every documented AgentSync event type.
        ///
        /// ```
        /// use agentsync_webhooks_core::{EventGroup, EventType};
        ///
        /// let t: EventType = "producersync.npn.activated".parse()?;
        /// assert_eq!(t, EventType::ProducerSyncNpnActivated);
        /// assert_eq!(t.group(), EventGroup::ProducerSync);
        /// # Ok::<(), agentsync_webhooks_core::UnknownEventType>(())
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventType {
            $($(#[$doc])* $variant,)+
        }

        impl EventType {
            /// Every documented type, in documentation order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The wire name, e.g. `producersync.updates_available`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }

            /// The subscription group this type belongs to.
            pub const fn group(self) -> EventGroup {
                match self {
                    $(EventType::$variant => EventGroup::$group,)+
                }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(EventType::$variant),)+
                    _ => Err(UnknownEventType(s.to_owned())),
                }
            }
        }
    };
}

event_types! {
    /// New NIPR data is ready: pull with `updatedSince = data.runDate`.
    ProducerSyncUpdatesAvailable = "producersync.updates_available" in ProducerSync;
    /// A producer was added to the monitored population.
    ProducerSyncNpnActivated = "producersync.npn.activated" in ProducerSync;
    /// A producer was removed from the monitored population.
    ProducerSyncNpnDeactivated = "producersync.npn.deactivated" in ProducerSync;
    /// A contract record was created or updated.
    ContractUpdated = "contract.updated" in Contract;
    /// A contract assignment was created or updated.
    ContractAssignmentUpdated = "contract.assignment.updated" in Contract;
    /// A contract assignment was deleted.
    ContractAssignmentDeleted = "contract.assignment.deleted" in Contract;
    /// A contract assignment change (workflow task) was created or updated.
    ContractAssignmentChangeUpdated = "contract.assignment_change.updated" in Contract;
    /// A contract assignment change was deleted.
    ContractAssignmentChangeDeleted = "contract.assignment_change.deleted" in Contract;
    /// A contract packet was submitted.
    ContractPacketSubmitted = "contract.packet.submitted" in Contract;
    /// A producer's status within an organization was created or updated.
    ContractProducerStatusUpdated = "contract.producer_status.updated" in Contract;
    /// A license record was updated as a result of a contract assignment change.
    ContractAssignmentChangedUpdated = "contract.assignment_changed.updated" in Contract;
    /// A producer profile was updated.
    ProducerUpdated = "id.producer.updated" in IdProducer;
    /// A producer profile was deleted.
    ProducerDeleted = "id.producer.deleted" in IdProducer;
    /// A producer's address was created or updated.
    ProducerAddressUpdated = "id.producer.address.updated" in IdProducer;
    /// A producer's address was deleted.
    ProducerAddressDeleted = "id.producer.address.deleted" in IdProducer;
    /// A producer's bank account was created or updated.
    ProducerBankAccountUpdated = "id.producer.bank_account.updated" in IdProducer;
    /// A producer's bank account was deleted.
    ProducerBankAccountDeleted = "id.producer.bank_account.deleted" in IdProducer;
    /// A producer's errors-and-omissions coverage was created or updated.
    ProducerErrorsAndOmissionsUpdated = "id.producer.errors_and_omissions.updated" in IdProducer;
    /// A producer's errors-and-omissions coverage was deleted.
    ProducerErrorsAndOmissionsDeleted = "id.producer.errors_and_omissions.deleted" in IdProducer;
    /// A producer's phone number was created or updated.
    ProducerPhoneUpdated = "id.producer.phone.updated" in IdProducer;
    /// A producer's phone number was deleted.
    ProducerPhoneDeleted = "id.producer.phone.deleted" in IdProducer;
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type name that is not one of the documented [`EventType`]s. Deliveries of such types are
/// still accepted (as `Unknown` events); this error only comes from parsing a name on purpose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown AgentSync event type {0:?}")]
pub struct UnknownEventType(pub String);

/// The subscription groups of the webhook portal: subscribing to a group delivers every type in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventGroup {
    /// `producersync.*`: the ProducerSync API.
    ProducerSync,
    /// `contract.*`: the Contracting API.
    Contract,
    /// `id.producer.*`: the Producer Profile API.
    IdProducer,
}

impl EventGroup {
    /// Every group.
    pub const ALL: &'static [EventGroup] = &[Self::ProducerSync, Self::Contract, Self::IdProducer];

    /// The group name as the portal shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ProducerSync => "producersync",
            Self::Contract => "contract",
            Self::IdProducer => "id.producer",
        }
    }

    /// The group of any type name, documented or not (`contract.new_thing` is a `Contract`).
    pub fn of(event_type: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|g| g.contains(event_type))
    }

    /// Whether `event_type` belongs to this group.
    pub fn contains(self, event_type: &str) -> bool {
        event_type
            .strip_prefix(self.as_str())
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
    }

    /// The documented types of this group.
    pub fn types(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(move |t| t.group() == self)
    }
}

impl fmt::Display for EventGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(EventType::ALL.len(), 21);
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), *t);
            assert_eq!(t.to_string(), t.as_str());
            assert_eq!(EventGroup::of(t.as_str()), Some(t.group()));
        }
        assert!("producersync.npn".parse::<EventType>().is_err());
    }

    #[test]
    fn groups_match_by_prefix() {
        assert_eq!(EventGroup::ProducerSync.types().count(), 3);
        assert_eq!(EventGroup::Contract.types().count(), 8);
        assert_eq!(EventGroup::IdProducer.types().count(), 10);
        assert_eq!(
            EventGroup::of("contract.future.thing"),
            Some(EventGroup::Contract)
        );
        assert_eq!(EventGroup::of("contractor.updated"), None);
        assert_eq!(EventGroup::of("contract."), None);
        assert_eq!(EventGroup::of("id.producers.x"), None);
        assert_eq!(EventGroup::of("endpoint.verify"), None);
    }
}
