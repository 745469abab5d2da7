//! The JSON form of an event that `custody append` signs and submits.

use anyhow::{anyhow, bail, Context as _};
use custody_proto::v1;
use serde::Deserialize;

/// `EventJson` mirrors `custody.v1.Event`; exactly one kind must be set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventJson {
    /// Defaults to a fresh UUID v4.
    pub event_id: Option<String>,
    /// Defaults to now.
    pub event_time_unix_nanos: Option<i64>,
    pub reporter: String,
    #[serde(default)]
    pub reporter_seq: u64,
    pub party_registered: Option<PartyJson>,
    pub key_added: Option<KeyAddedJson>,
    pub key_revoked: Option<KeyRevokedJson>,
    pub custody: Option<CustodyJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyJson {
    pub party_id: String,
    /// AGENCY, PRIME, SUBCONTRACTOR, PARTNER, DEVICE or SOFTWARE.
    pub kind: String,
    #[serde(default)]
    pub acts_on_behalf_of: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAddedJson {
    pub party_id: String,
    /// `ed25519:<base64>`, as in a `.pub` file.
    pub public_key: String,
    #[serde(default)]
    pub valid_from_unix_nanos: i64,
    #[serde(default)]
    pub valid_to_unix_nanos: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevokedJson {
    pub party_id: String,
    /// Hex key id (32 hex digits).
    pub key_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyJson {
    /// CAPTURE, COPY, MOVE, RECEIPT, ACCESS, DERIVE or DELETE.
    pub action: String,
    pub actor: String,
    #[serde(default)]
    pub on_behalf_of: String,
    /// Hex SHA-256 of the asset.
    pub asset_digest: String,
    #[serde(default)]
    pub from_system: String,
    #[serde(default)]
    pub to_system: String,
    #[serde(default)]
    pub grant_id: String,
}

/// `now_nanos` is the wall clock in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl EventJson {
    /// `into_proto` converts to the wire event.
    ///
    /// # Errors
    ///
    /// If not exactly one kind is set or a field is malformed.
    pub fn into_proto(self) -> anyhow::Result<v1::Event> {
        let kinds = [
            self.party_registered.is_some(),
            self.key_added.is_some(),
            self.key_revoked.is_some(),
            self.custody.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            bail!("set exactly one of party_registered, key_added, key_revoked, custody");
        }
        let body = if let Some(p) = self.party_registered {
            let kind = match p.kind.as_str() {
                "AGENCY" => v1::PartyKind::Agency,
                "PRIME" => v1::PartyKind::Prime,
                "SUBCONTRACTOR" => v1::PartyKind::Subcontractor,
                "PARTNER" => v1::PartyKind::Partner,
                "DEVICE" => v1::PartyKind::Device,
                "SOFTWARE" => v1::PartyKind::Software,
                k => bail!("party kind {k:?} is not one of AGENCY PRIME SUBCONTRACTOR PARTNER DEVICE SOFTWARE"),
            };
            v1::event::Body::PartyRegistered(v1::PartyRegistered {
                party_id: p.party_id,
                kind: kind as i32,
                acts_on_behalf_of: p.acts_on_behalf_of,
            })
        } else if let Some(k) = self.key_added {
            v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: k.party_id,
                public_key: crate::keys::parse_public(&k.public_key)
                    .context("key_added.public_key")?
                    .to_vec(),
                valid_from_unix_nanos: k.valid_from_unix_nanos,
                valid_to_unix_nanos: k.valid_to_unix_nanos,
            })
        } else if let Some(k) = self.key_revoked {
            v1::event::Body::KeyRevoked(v1::KeyRevoked {
                party_id: k.party_id,
                key_id: hex::decode(&k.key_id).map_err(|e| anyhow!("key_revoked.key_id: {e}"))?,
            })
        } else if let Some(c) = self.custody {
            let action = match c.action.as_str() {
                "CAPTURE" => v1::CustodyActionKind::Capture,
                "COPY" => v1::CustodyActionKind::Copy,
                "MOVE" => v1::CustodyActionKind::Move,
                "RECEIPT" => v1::CustodyActionKind::Receipt,
                "ACCESS" => v1::CustodyActionKind::Access,
                "DERIVE" => v1::CustodyActionKind::Derive,
                "DELETE" => v1::CustodyActionKind::Delete,
                a => bail!("custody action {a:?} is not one of CAPTURE COPY MOVE RECEIPT ACCESS DERIVE DELETE"),
            };
            v1::event::Body::Custody(v1::CustodyAction {
                action: action as i32,
                actor: c.actor,
                on_behalf_of: c.on_behalf_of,
                asset_digest: hex::decode(&c.asset_digest)
                    .map_err(|e| anyhow!("custody.asset_digest: {e}"))?,
                from_system: c.from_system,
                to_system: c.to_system,
                grant_id: c.grant_id,
            })
        } else {
            bail!("no event kind set");
        };
        Ok(v1::Event {
            event_id: self
                .event_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            event_time_unix_nanos: self.event_time_unix_nanos.unwrap_or_else(now_nanos),
            reporter: self.reporter,
            reporter_seq: self.reporter_seq,
            body: Some(body),
        })
    }
}
