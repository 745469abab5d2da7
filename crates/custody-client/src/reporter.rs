//! [`Reporter`]: a party's events, built from typed values and signed.

use custody_domain::SignedEnvelope;
use custody_proto::{envelope_to_proto, v1};
use ed25519_dalek::SigningKey;
use prost::Message as _;

/// `Reporter` is a party that reports to one log: its id, its signing key
/// and the log's origin, which every event names so that its signed bytes
/// cannot be replayed into another log.
pub struct Reporter {
    party: String,
    key: SigningKey,
    log_origin: String,
}

impl Reporter {
    /// `new` is `party`, signing with `key`, for the log of `log_origin`.
    pub fn new(party: impl Into<String>, key: SigningKey, log_origin: impl Into<String>) -> Self {
        Self {
            party: party.into(),
            key,
            log_origin: log_origin.into(),
        }
    }

    /// `party` is the reporting party's id.
    pub fn party(&self) -> &str {
        &self.party
    }

    /// `event` is the unsigned event by which the party reports `body` as
    /// its `seq`-th event, which happened at `event_time_unix_nanos`, with
    /// a fresh UUID as its id.
    pub fn event(&self, seq: u64, event_time_unix_nanos: i64, body: v1::event::Body) -> v1::Event {
        v1::Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_time_unix_nanos,
            reporter: self.party.clone(),
            reporter_seq: seq,
            log_origin: self.log_origin.clone(),
            body: Some(body),
        }
    }

    /// `sign` is `event` signed by the party's key, as the log takes it.
    pub fn sign(&self, event: &v1::Event) -> v1::SignedEvent {
        envelope_to_proto(&SignedEnvelope::sign(event.encode_to_vec(), &[&self.key]))
    }
}

/// `now_nanos` is the time now in Unix nanoseconds (0 before 1970, and
/// the largest `i64` past 2262).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
