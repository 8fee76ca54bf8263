//! What a delivery of `send` carries: an example payload (changed by `--set`), the user's
//! `data`, or raw bytes.

use agentsync_webhooks_core::{EventType, event::samples};
use axum::body::Bytes;
use serde_json::Value;

use super::SendArgs;
use crate::{failure::Failure, input::read_file_or_stdin};

/// The body of one kind of delivery.
#[derive(Debug, Clone)]
pub struct Payload {
    kind: Kind,
    overrides: Vec<Override>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The documented example payload of a type.
    Example(EventType),
    /// An envelope of a type around the user's `data`.
    Data(EventType, Value),
    /// The user's bytes, as they are.
    Raw(Bytes),
}

impl Payload {
    /// The payloads `send` was asked for: one, or one per type of `--events`.
    pub fn from_args(args: &SendArgs) -> Result<Vec<Self>, Failure> {
        let kinds = if let Some(path) = &args.body {
            vec![Kind::Raw(read_file_or_stdin(path)?.into())]
        } else if let Some(selection) = &args.events {
            let types = selection.types();
            if types.is_empty() {
                return Err(Failure::bad_input(
                    "--events selects no documented type (see `agentsync-webhooks events`)",
                ));
            }
            types.into_iter().map(Kind::Example).collect()
        } else if let Some(event_type) = args.event {
            match &args.data {
                None => vec![Kind::Example(event_type)],
                Some(path) => vec![Kind::Data(event_type, read_data(path)?)],
            }
        } else {
            return Err(Failure::bad_input(
                "give --event TYPE, --events TYPE|GROUP,... or --body FILE",
            ));
        };
        let payloads: Vec<Self> = kinds
            .into_iter()
            .map(|kind| Self {
                kind,
                overrides: args.overrides.clone(),
            })
            .collect();
        // Check every --set once, before anything is sent.
        for payload in &payloads {
            payload
                .try_body("msg_check", 0)
                .map_err(|e| Failure::bad_input(format!("invalid value for --set: {e}")))?;
        }
        Ok(payloads)
    }

    /// The body of the delivery `message_id`, created at `unix_secs`.
    pub fn body(&self, message_id: &str, unix_secs: i64) -> Bytes {
        // The overrides were checked by `from_args` on the same envelope shape.
        self.try_body(message_id, unix_secs)
            .unwrap_or_else(|_| Bytes::new())
    }

    fn try_body(&self, message_id: &str, unix_secs: i64) -> Result<Bytes, String> {
        let event_id = message_id
            .strip_prefix("msg_")
            .map_or_else(|| message_id.to_owned(), |rest| format!("whe_{rest}"));
        let mut envelope = match &self.kind {
            Kind::Raw(bytes) => return Ok(bytes.clone()),
            Kind::Example(event_type) if self.overrides.is_empty() => {
                return Ok(samples::example_body(*event_type, &event_id, unix_secs).into());
            }
            Kind::Example(event_type) => {
                samples::example_envelope(*event_type, &event_id, unix_secs)
            }
            Kind::Data(event_type, data) => {
                let mut envelope = samples::example_envelope(*event_type, &event_id, unix_secs);
                envelope["data"] = data.clone();
                envelope
            }
        };
        for change in &self.overrides {
            change.apply(&mut envelope)?;
        }
        Ok(envelope.to_string().into())
    }

    /// `contract.updated (its documented example payload)`.
    pub fn describe(&self) -> String {
        let changed = if self.overrides.is_empty() {
            String::new()
        } else {
            let paths: Vec<String> = self.overrides.iter().map(|o| o.path.join(".")).collect();
            format!(", with {} from --set", paths.join(", "))
        };
        match &self.kind {
            Kind::Example(t) => format!("{t} (its documented example payload{changed})"),
            Kind::Data(t, _) => format!("{t} (data from --data{changed})"),
            Kind::Raw(b) => format!("{} bytes from --body, as they are", b.len()),
        }
    }
}

fn read_data(path: &std::path::Path) -> Result<Value, Failure> {
    let data: Value = serde_json::from_slice(&read_file_or_stdin(path)?).map_err(|e| {
        Failure::bad_input(format!(
            "--data {} is not JSON ({e}): it is the event's data object; send other bytes \
             with --body",
            path.display()
        ))
    })?;
    if data.get("type").is_some() && data.get("data").is_some() {
        eprintln!(
            "note: --data looks like a whole envelope; it is sent as the event's data. Use \
             --body to send an envelope as it is."
        );
    }
    Ok(data)
}

/// `--set PATH=VALUE`: one field of the envelope changed or added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    path: Vec<String>,
    value: String,
}

impl Override {
    /// `data.npn=123`: a dotted path (array positions as numbers) and a value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((path, value)) = text.split_once('=') else {
            return Err("expected PATH=VALUE, e.g. data.npn=123".to_owned());
        };
        let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "{:?} is not a dotted path such as data.npn",
                path.join(".")
            ));
        }
        Ok(Self {
            path,
            value: value.to_owned(),
        })
    }

    /// Sets the field: a text field stays text; any other field, or a new one, takes the value
    /// as JSON when it is JSON (`123`, `true`, `{"a":1}`), else as text.
    fn apply(&self, envelope: &mut Value) -> Result<(), String> {
        let shown = self.path.join(".");
        let Some((last, parents)) = self.path.split_last() else {
            return Err("an empty path".to_owned());
        };
        let mut target = envelope;
        for segment in parents {
            target = child(target, segment, &shown)?;
        }
        let new = match slot(target, last, &shown)? {
            Some(Value::String(_)) => Value::String(self.value.clone()),
            _ => serde_json::from_str(&self.value)
                .unwrap_or_else(|_| Value::String(self.value.clone())),
        };
        match target {
            Value::Object(map) => {
                map.insert(last.clone(), new);
            }
            Value::Array(items) => {
                if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *item = new;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The field `segment` of `value` (created as an object when missing), to go deeper.
fn child<'v>(value: &'v mut Value, segment: &str, path: &str) -> Result<&'v mut Value, String> {
    match value {
        Value::Object(map) => Ok(map
            .entry(segment.to_owned())
            .or_insert_with(|| Value::Object(Default::default()))),
        Value::Array(items) => {
            let len = items.len();
            segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| format!("{path}: {segment:?} is not a position in a list of {len}"))
        }
        other => Err(format!(
            "{path}: cannot go into {segment:?}, the payload has {} there",
            kind_of(other)
        )),
    }
}

/// The current value of the last segment, after checking it can be set.
fn slot<'v>(value: &'v Value, segment: &str, path: &str) -> Result<Option<&'v Value>, String> {
    match value {
        Value::Object(map) => Ok(map.get(segment)),
        Value::Array(items) => segment
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{path}: {segment:?} is not a position in a list of {}",
                    items.len()
                )
            }),
        other => Err(format!(
            "{path}: cannot set {segment:?}, the payload has {} there",
            kind_of(other)
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(text: &str, mut value: Value) -> Result<Value, String> {
        Override::parse(text)?.apply(&mut value)?;
        Ok(value)
    }

    #[test]
    fn values_follow_the_type_of_the_field_they_replace() {
        let envelope = json!({"data": {"npn": "1", "count": 2, "list": [1, 2]}});
        assert_eq!(
            set("data.npn=123", envelope.clone()).unwrap()["data"]["npn"],
            "123"
        );
        assert_eq!(
            set("data.count=7", envelope.clone()).unwrap()["data"]["count"],
            7
        );
        assert_eq!(
            set("data.list.1=9", envelope.clone()).unwrap()["data"]["list"][1],
            9
        );
        assert_eq!(
            set("data.new=true", envelope.clone()).unwrap()["data"]["new"],
            true
        );
        assert_eq!(
            set("data.name=Ann", envelope.clone()).unwrap()["data"]["name"],
            "Ann"
        );
        assert_eq!(
            set("data.deep.x=1", envelope.clone()).unwrap()["data"]["deep"]["x"],
            1
        );
        assert!(
            set("data.npn.x=1", envelope.clone())
                .unwrap_err()
                .contains("a string")
        );
        assert!(set("data.list.5=1", envelope).is_err());
        assert!(Override::parse("data.npn").is_err());
        assert!(Override::parse("data..npn=1").is_err());
    }
}
