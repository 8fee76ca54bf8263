//! `data` kept as the JSON text it arrived as, parsed only when asked.

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

/// A `data` object as sent: the exact JSON text, checked to be JSON but never parsed into
/// values, so that no number (`1e400`), depth or shape in it can refuse a delivery.
///
/// It is the `data` of [`EventData::Unknown`](crate::EventData::Unknown), and the payload type
/// to ask for when you want no typing at all (`Delivery<RawData>`, `Event<RawData>`):
/// [`parse`](Self::parse) it when, and into what, you need.
///
/// ```
/// use agentsync_webhooks_core::{Delivery, EventData, RawData};
///
/// let body = r#"{"type":"billing.invoice.paid","data":{"amount": 1e400, "id": "inv_1"}}"#;
/// let delivery = Delivery::<EventData>::parse("msg_1", 1_700_000_000, body.into())?;
/// let EventData::Unknown { event_type, data } = &delivery.event.data else { unreachable!() };
/// assert_eq!(event_type, "billing.invoice.paid");
/// assert_eq!(data.get(), r#"{"amount": 1e400, "id": "inv_1"}"#); // byte for byte
///
/// #[derive(serde::Deserialize)]
/// struct Invoice { id: String }
/// assert_eq!(data.parse::<Invoice>()?.id, "inv_1");
/// // `f64` cannot hold 1e400: asking for a `Value` is where that shows, not on receipt.
/// assert!(data.parse::<serde_json::Value>().is_err());
///
/// // Untyped whatever the type, known types included.
/// let raw = Delivery::<RawData>::parse("msg_1", 1_700_000_000, body.into())?;
/// assert_eq!(&raw.event.data, data);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawData(Box<RawValue>);

impl RawData {
    /// Checks that `json` is one JSON value and keeps it as it is (whitespace included).
    ///
    /// ```
    /// use agentsync_webhooks_core::RawData;
    ///
    /// let data = RawData::from_string(r#"{"challenge": [1, 2]}"#.to_owned())?;
    /// assert_eq!(data.get(), r#"{"challenge": [1, 2]}"#);
    /// assert!(RawData::from_string("{".to_owned()).is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_string(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(Self)
    }

    /// The JSON text as sent.
    ///
    /// ```
    /// # use agentsync_webhooks_core::RawData;
    /// let data = RawData::from_string("[1e400]".to_owned())?;
    /// assert_eq!(data.get(), "[1e400]");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses the data into `T`: your own type, a [`serde_json::Value`], or a typed payload of
    /// this crate. The error is serde's, naming what did not fit.
    ///
    /// ```
    /// # use agentsync_webhooks_core::RawData;
    /// let data = RawData::from_string(r#"{"npn": "0012345"}"#.to_owned())?;
    /// let value: serde_json::Value = data.parse()?;
    /// assert_eq!(value["npn"], "0012345");
    /// assert!(data.parse::<Vec<u8>>().is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The data as serde_json's raw value, to embed in a document you serialize.
    pub fn as_raw_value(&self) -> &RawValue {
        &self.0
    }

    /// The data as serde_json's boxed raw value.
    pub fn into_raw_value(self) -> Box<RawValue> {
        self.0
    }
}

impl From<Box<RawValue>> for RawData {
    fn from(raw: Box<RawValue>) -> Self {
        Self(raw)
    }
}

impl From<RawData> for Box<RawValue> {
    fn from(data: RawData) -> Self {
        data.0
    }
}

/// Equal when the texts are equal byte for byte: `{"a":1}` and `{ "a": 1 }` differ, as sent.
impl PartialEq for RawData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for RawData {}

impl fmt::Debug for RawData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawData")
            .field(&format_args!("{}", self.get()))
            .finish()
    }
}

/// The JSON text as sent.
impl fmt::Display for RawData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}
