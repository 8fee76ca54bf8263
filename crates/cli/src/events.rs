//! Event types and groups on the command line: `--events TYPE|GROUP,...` and the `events`
//! command that lists them.

use agentsync_webhooks_core::{EventGroup, EventType};

use crate::{failure::Failure, output::out};

/// A choice of event types: documented types and whole groups (`contract` is every
/// `contract.*` type, also those this version does not know yet), or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSelection {
    types: Vec<EventType>,
    groups: Vec<EventGroup>,
}

impl EventSelection {
    /// Parses `TYPE|GROUP,...` (`all` for every type); an unknown name lists the known ones.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut selection = Self {
            types: Vec::new(),
            groups: Vec::new(),
        };
        for name in text.split(',').map(str::trim) {
            if name == "all" {
                selection.groups.extend(EventGroup::ALL);
            } else if let Some(group) = EventGroup::ALL.iter().find(|g| g.as_str() == name) {
                selection.groups.push(*group);
            } else if let Ok(event_type) = name.parse::<EventType>() {
                selection.types.push(event_type);
            } else {
                return Err(format!(
                    "{name:?} is neither a documented AgentSync event type nor a group \
                     (give TYPE or GROUP, comma-separated, or all)\n\n{}",
                    known_event_types()
                ));
            }
        }
        Ok(selection)
    }

    /// Whether a delivery of type `event_type` (documented or not) is selected.
    pub fn matches(&self, event_type: &str) -> bool {
        self.types.iter().any(|t| t.as_str() == event_type)
            || self.groups.iter().any(|g| g.contains(event_type))
    }

    /// The documented types selected, in the documented order, each once.
    pub fn types(&self) -> Vec<EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| self.matches(t.as_str()))
            .collect()
    }
}

/// One of the documented types; on anything else, the list of all of them.
pub fn parse_event_type(name: &str) -> Result<EventType, String> {
    name.parse().map_err(|_| {
        format!(
            "not a documented AgentSync event type\n\n{}",
            known_event_types()
        )
    })
}

/// Every documented event type, grouped as the portal subscribes to them.
pub fn known_event_types() -> String {
    let mut text = String::from("Known event types (by group):");
    for group in EventGroup::ALL {
        text.push_str(&format!("\n  {group}:"));
        for event_type in group.types() {
            text.push_str(&format!("\n    {event_type}"));
        }
    }
    text
}

/// `events`: the documented types, by group.
pub fn list() -> Result<(), Failure> {
    out!(
        "{} documented AgentSync event types in {} groups; a subscription to a group gets \
         every type in it.",
        EventType::ALL.len(),
        EventGroup::ALL.len()
    );
    for group in EventGroup::ALL {
        out!();
        out!("{group} ({} types)", group.types().count());
        for event_type in group.types() {
            out!("  {event_type}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_groups_select() {
        let selection = EventSelection::parse("contract, producersync.npn.activated").unwrap();
        assert!(selection.matches("contract.updated"));
        assert!(selection.matches("contract.brand_new")); // a group covers unknown types too
        assert!(selection.matches("producersync.npn.activated"));
        assert!(!selection.matches("producersync.updates_available"));
        assert!(!selection.matches("id.producer.updated"));
        assert_eq!(EventSelection::parse("all").unwrap().types().len(), 21);
        let error = EventSelection::parse("contract,nope").unwrap_err();
        assert!(error.contains("\"nope\""), "{error}");
        assert!(error.contains("id.producer.phone.deleted"), "{error}");
    }

    #[test]
    fn unknown_event_type_lists_all_21() {
        let message = parse_event_type("producersync.nope").unwrap_err();
        for event_type in EventType::ALL {
            assert!(message.contains(event_type.as_str()), "{event_type}");
        }
    }
}
