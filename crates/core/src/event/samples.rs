//! Example payloads for every documented type, as the portal's "Send Example" delivers them.
//!
//! The ProducerSync examples are AgentSync's documented samples. The Contracting and Producer
//! Profile schemas are not published; their examples carry the identifiers such events refer to
//! (an NPN, a record id) and parse as [`ObjectData`](super::ObjectData) like any real payload.

use chrono::DateTime;
use serde_json::{Value, json};

use super::EventType;

/// The example `data` of `event_type`.
pub fn example_data(event_type: EventType) -> Value {
    use EventType as T;
    let npn = "19370865";
    match event_type {
        T::ProducerSyncUpdatesAvailable => json!({ "runDate": "2025-07-24" }),
        T::ProducerSyncNpnActivated => {
            json!({ "npn": npn, "activatedAt": "2025-07-24T22:51:05.206Z" })
        }
        T::ProducerSyncNpnDeactivated => {
            json!({ "npn": npn, "deactivatedAt": "2025-07-24T22:51:05.206Z" })
        }
        T::ContractUpdated => {
            json!({ "contractId": "ctr_01je7b9w5m", "npn": npn, "status": "ACTIVE" })
        }
        T::ContractAssignmentUpdated | T::ContractAssignmentDeleted => {
            json!({ "contractAssignmentId": "cas_01je7b9x2q", "contractId": "ctr_01je7b9w5m", "npn": npn })
        }
        T::ContractAssignmentChangeUpdated | T::ContractAssignmentChangeDeleted => {
            json!({ "contractAssignmentChangeId": "cac_01je7ba0k3", "contractAssignmentId": "cas_01je7b9x2q", "npn": npn })
        }
        T::ContractPacketSubmitted => json!({ "packetId": "pkt_01je7ba3h8", "npn": npn }),
        T::ContractProducerStatusUpdated => {
            json!({ "organizationId": "org_01je7ba6c1", "npn": npn, "status": "ACTIVE" })
        }
        T::ContractAssignmentChangedUpdated => {
            json!({ "licenseId": "lic_01je7ba9v4", "contractAssignmentChangeId": "cac_01je7ba0k3", "npn": npn })
        }
        T::ProducerUpdated | T::ProducerDeleted => {
            json!({ "producerId": "prd_01je7bac7n", "npn": npn })
        }
        T::ProducerAddressUpdated | T::ProducerAddressDeleted => {
            json!({ "producerId": "prd_01je7bac7n", "npn": npn, "addressId": "adr_01je7baf2x" })
        }
        T::ProducerBankAccountUpdated | T::ProducerBankAccountDeleted => {
            json!({ "producerId": "prd_01je7bac7n", "npn": npn, "bankAccountId": "bnk_01je7bah9d" })
        }
        T::ProducerErrorsAndOmissionsUpdated | T::ProducerErrorsAndOmissionsDeleted => {
            json!({ "producerId": "prd_01je7bac7n", "npn": npn, "errorsAndOmissionsId": "eno_01je7bam4r", "expirationDate": "2026-07-01" })
        }
        T::ProducerPhoneUpdated | T::ProducerPhoneDeleted => {
            json!({ "producerId": "prd_01je7bac7n", "npn": npn, "phoneId": "phn_01je7bap6s" })
        }
    }
}

/// A whole envelope of `event_type` with event id `id`, generated at `unix_secs`.
pub fn example_envelope(event_type: EventType, id: &str, unix_secs: i64) -> Value {
    let timestamp = DateTime::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "id": id,
        "type": event_type.as_str(),
        "timestamp": timestamp,
        "data": example_data(event_type),
    })
}

/// [`example_envelope`] as the JSON bytes a sender would POST.
pub fn example_body(event_type: EventType, id: &str, unix_secs: i64) -> Vec<u8> {
    example_envelope(event_type, id, unix_secs)
        .to_string()
        .into_bytes()
}
