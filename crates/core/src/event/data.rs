//! Typed `data` payloads, and the trait that turns a delivery's `data` into them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, value::RawValue};

use super::{EventType, RawData};
use crate::WebhookError;

/// `data` of `producersync.updates_available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatesAvailable {
    /// The NIPR run this signal is for; pass it as `updatedSince` when pulling changes.
    #[serde(deserialize_with = "super::time::date")]
    pub run_date: NaiveDate,
}

impl UpdatesAvailable {
    /// The `updatedSince` query value for the ProducerSync API (`YYYY-MM-DD`).
    pub fn updated_since(&self) -> String {
        self.run_date.format("%Y-%m-%d").to_string()
    }
}

/// `data` of `producersync.npn.activated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NpnActivated {
    /// The producer's National Producer Number, kept as text (leading zeros matter).
    #[serde(deserialize_with = "npn")]
    pub npn: String,
    /// When the producer joined the monitored population.
    #[serde(deserialize_with = "super::time::instant")]
    pub activated_at: DateTime<Utc>,
}

/// `data` of `producersync.npn.deactivated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NpnDeactivated {
    /// The producer's National Producer Number, kept as text.
    #[serde(deserialize_with = "npn")]
    pub npn: String,
    /// When the producer left the monitored population.
    #[serde(deserialize_with = "super::time::instant")]
    pub deactivated_at: DateTime<Utc>,
}

/// An NPN sent as a string or, liberally, as a JSON integer.
fn npn<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Npn {
        Text(String),
        Number(u64),
    }
    Ok(match Npn::deserialize(deserializer)? {
        Npn::Text(s) => s,
        Npn::Number(n) => n.to_string(),
    })
}

/// The `data` object of an event whose schema is not published (Contracting and Producer
/// Profile events): kept whole, with accessors for fields every such payload may carry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectData(pub Map<String, Value>);

impl ObjectData {
    /// A field, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A string field, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// The producer's NPN, when the payload names one (`npn`, as text or number).
    pub fn npn(&self) -> Option<String> {
        match self.0.get("npn")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => n.as_u64().map(|n| n.to_string()),
            _ => None,
        }
    }

    /// The payload as your own type, once you know its schema.
    pub fn to_typed<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&Value::Object(self.0.clone()))
    }
}

macro_rules! event_data {
    ($($variant:ident($payload:ty),)+) => {
        /// The typed `data` of a delivery, one variant per documented [`EventType`], so that a
        /// single `match` covers every known type. Types this version does not know arrive as
        /// [`EventData::Unknown`], never as an error: new types and the sender's endpoint check
        /// must still be answered 2xx.
        ///
        /// ```
        /// use agentsync_webhooks_core::{EventData, EventType, Signer, Verifier};
        ///
        /// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        /// let request = Signer::new(secret)?.example(EventType::ProducerSyncNpnActivated);
        /// let headers = request.headers.to_pairs();
        /// let delivery = Verifier::new(secret)?
        ///     .verify_delivery::<EventData>(&headers, request.body.into())?;
        ///
        /// match &delivery.event.data {
        ///     EventData::ProducerSyncNpnActivated(activated) => {
        ///         println!("NPN {} joined at {}", activated.npn, activated.activated_at);
        ///     }
        ///     EventData::ContractUpdated(object) => println!("contract {:?}", object.get_str("id")),
        ///     // Kept as sent; parse it into your own type once you know it.
        ///     EventData::Unknown { event_type, data } => println!("not known yet: {event_type} {data}"),
        ///     // `EventData` is non-exhaustive: new documented types come in minor versions.
        ///     other => println!("{:?}", other.event_type()),
        /// }
        /// assert_eq!(delivery.event.data.event_type(), Some(EventType::ProducerSyncNpnActivated));
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum EventData {
            $(
                #[doc = concat!("`data` of [`EventType::", stringify!($variant), "`].")]
                $variant($payload),
            )+
            /// Any type this version does not know, preserved as sent. Its `data` is not parsed
            /// on receipt, so nothing in it can refuse the delivery; [`RawData::parse`] it into
            /// your own type (or a `serde_json::Value`) when you handle it.
            Unknown {
                /// The `type` as sent.
                event_type: String,
                /// The `data` as sent, byte for byte (`{}` when the envelope has none).
                data: RawData,
            },
        }

        impl EventData {
            /// The documented type, or `None` for [`EventData::Unknown`].
            pub fn event_type(&self) -> Option<EventType> {
                match self {
                    $(Self::$variant(_) => Some(EventType::$variant),)+
                    Self::Unknown { .. } => None,
                }
            }

            fn parse_known(event_type: EventType, data: &RawValue) -> Result<Self, WebhookError> {
                Ok(match event_type {
                    $(EventType::$variant => Self::$variant(typed(event_type.as_str(), data)?),)+
                })
            }
        }
    };
}

event_data! {
    ProducerSyncUpdatesAvailable(UpdatesAvailable),
    ProducerSyncNpnActivated(NpnActivated),
    ProducerSyncNpnDeactivated(NpnDeactivated),
    ContractUpdated(ObjectData),
    ContractAssignmentUpdated(ObjectData),
    ContractAssignmentDeleted(ObjectData),
    ContractAssignmentChangeUpdated(ObjectData),
    ContractAssignmentChangeDeleted(ObjectData),
    ContractPacketSubmitted(ObjectData),
    ContractProducerStatusUpdated(ObjectData),
    ContractAssignmentChangedUpdated(ObjectData),
    ProducerUpdated(ObjectData),
    ProducerDeleted(ObjectData),
    ProducerAddressUpdated(ObjectData),
    ProducerAddressDeleted(ObjectData),
    ProducerBankAccountUpdated(ObjectData),
    ProducerBankAccountDeleted(ObjectData),
    ProducerErrorsAndOmissionsUpdated(ObjectData),
    ProducerErrorsAndOmissionsDeleted(ObjectData),
    ProducerPhoneUpdated(ObjectData),
    ProducerPhoneDeleted(ObjectData),
}

/// What a delivery's `data` can be parsed into: [`EventData`] (typed by `type`), or any
/// `DeserializeOwned` type of your own, parsed whatever the `type`. For no typing at all ask
/// for [`RawData`], the JSON as sent; a `serde_json::Value` also works but refuses what it
/// cannot hold (a number beyond `f64`, nesting over 128 levels).
///
/// ```
/// use agentsync_webhooks_core::{Delivery, RawData};
///
/// let body = r#"{"type":"contract.updated","data":{"id":"c_1","premium":1e400}}"#;
/// let raw = Delivery::<RawData>::parse("msg_1", 1_700_000_000, body.into())?;
/// assert_eq!(raw.event.data.get(), r#"{"id":"c_1","premium":1e400}"#);
/// assert!(Delivery::<serde_json::Value>::parse("msg_1", 1_700_000_000, body.into()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait EventPayload: Sized {
    /// Parses the `data` of an event of type `event_type`. A mismatch is
    /// [`WebhookError::InvalidEventData`], naming the serde path of the offending field.
    fn from_data(event_type: &str, data: &RawValue) -> Result<Self, WebhookError>;
}

impl EventPayload for EventData {
    fn from_data(event_type: &str, data: &RawValue) -> Result<Self, WebhookError> {
        match event_type.parse::<EventType>() {
            Ok(known) => Self::parse_known(known, data),
            // Copied, not parsed: "an unknown type is never an error".
            Err(_) => Ok(Self::Unknown {
                event_type: event_type.to_owned(),
                data: RawData::from(data.to_owned()),
            }),
        }
    }
}

impl<T: DeserializeOwned> EventPayload for T {
    fn from_data(event_type: &str, data: &RawValue) -> Result<Self, WebhookError> {
        typed(event_type, data)
    }
}

/// Deserializes `data`; only a failure is parsed again to find the serde path of the mismatch,
/// so the common case pays nothing for path tracking.
fn typed<T: DeserializeOwned>(event_type: &str, data: &RawValue) -> Result<T, WebhookError> {
    serde_json::from_str(data.get()).map_err(|_| {
        let mut de = serde_json::Deserializer::from_str(data.get());
        let (path, detail) = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => (e.path().to_string(), e.into_inner().to_string()),
            // Unreachable for a deterministic parser; kept total rather than panicking.
            Ok(_) => (".".to_owned(), "inconsistent parse".to_owned()),
        };
        WebhookError::InvalidEventData {
            event_type: event_type.to_owned(),
            path,
            detail,
        }
    })
}
