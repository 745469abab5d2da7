//! Events as the domain sees them.

use crate::Refusal;

/// `Timestamp` is a time in Unix nanoseconds.
pub type Timestamp = i64;

/// `is_valid_id` says whether `s` is an opaque id: 1 to 64 characters from
/// `[A-Za-z0-9._:-]`. Ids are codes, never names; the narrow alphabet keeps
/// free text (and so personal data) out of the log.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// `is_valid_uuid` says whether `s` is a UUID in canonical hyphenated form.
pub fn is_valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `PartyKind` is what sort of agent a party is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PartyKind {
    Agency,
    Prime,
    Subcontractor,
    Partner,
    Device,
    Software,
}

/// `PartyRegistered` adds a party to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyRegistered {
    /// The new party's id.
    pub party_id: String,
    /// Its kind.
    pub kind: PartyKind,
    /// The party it acts for; empty only for the data owner.
    pub acts_on_behalf_of: String,
}

/// `KeyAdded` gives a party a signing key with a validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAdded {
    /// The key's party.
    pub party_id: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity (exclusive); `None` for open-ended.
    pub valid_to: Option<Timestamp>,
}

/// `KeyRevoked` stops a key from signing from its integration on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRevoked {
    /// The key's party.
    pub party_id: String,
    /// The key.
    pub key_id: crate::KeyId,
}

/// `CustodyActionKind` is what happened to an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CustodyActionKind {
    Capture,
    Copy,
    Move,
    Receipt,
    Access,
    Derive,
    Delete,
}

/// `CustodyAction` is a custody event about one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyAction {
    /// What happened.
    pub action: CustodyActionKind,
    /// Who did it.
    pub actor: String,
    /// For whom, if not the actor itself.
    pub on_behalf_of: String,
    /// SHA-256 of the asset's bytes.
    pub asset_digest: [u8; 32],
    /// Source system id, if any.
    pub from_system: String,
    /// Destination system id, if any.
    pub to_system: String,
    /// Grant relied on; empty when there is none (still recordable).
    pub grant_id: String,
}

/// `EventBody` is the kind-specific part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum EventBody {
    PartyRegistered(PartyRegistered),
    KeyAdded(KeyAdded),
    KeyRevoked(KeyRevoked),
    Custody(CustodyAction),
}

impl EventBody {
    /// `is_registry` is whether the event changes the registry (and so must
    /// be signed by the data owner).
    pub fn is_registry(&self) -> bool {
        !matches!(self, EventBody::Custody(_))
    }

    /// `code` is the event kind's name as used in messages.
    pub fn code(&self) -> &'static str {
        match self {
            EventBody::PartyRegistered(_) => "PARTY_REGISTERED",
            EventBody::KeyAdded(_) => "KEY_ADDED",
            EventBody::KeyRevoked(_) => "KEY_REVOKED",
            EventBody::Custody(_) => "CUSTODY",
        }
    }
}

/// `Event` is one reported event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// UUID chosen by the reporter; the dedup key.
    pub event_id: String,
    /// When it happened, per the reporter.
    pub event_time: Timestamp,
    /// The signing party.
    pub reporter: String,
    /// The reporter's own sequence number.
    pub reporter_seq: u64,
    /// What happened.
    pub body: EventBody,
}

impl Event {
    /// `check_shape` validates the fields that need no registry: ids, the
    /// UUID, times and digests.
    ///
    /// # Errors
    ///
    /// An `InvalidArgument` [`Refusal`] naming the field.
    pub fn check_shape(&self) -> Result<(), Refusal> {
        if !is_valid_uuid(&self.event_id) {
            return Err(Refusal::invalid(
                "event.event_id",
                format!("event_id {:?} is not a UUID", self.event_id),
            ));
        }
        if self.event_time <= 0 {
            return Err(Refusal::invalid(
                "event.event_time",
                "event_time must be a positive Unix time in nanoseconds",
            ));
        }
        check_id("event.reporter", &self.reporter)?;
        match &self.body {
            EventBody::PartyRegistered(p) => {
                check_id("party_registered.party_id", &p.party_id)?;
                if !p.acts_on_behalf_of.is_empty() {
                    check_id("party_registered.acts_on_behalf_of", &p.acts_on_behalf_of)?;
                }
            }
            EventBody::KeyAdded(k) => {
                check_id("key_added.party_id", &k.party_id)?;
                if ed25519_dalek::VerifyingKey::from_bytes(&k.public_key).is_err() {
                    return Err(Refusal::invalid(
                        "key_added.public_key",
                        "public key is not a valid Ed25519 point",
                    ));
                }
                if let Some(to) = k.valid_to {
                    if to <= k.valid_from {
                        return Err(Refusal::invalid(
                            "key_added.valid_to",
                            "valid_to must be after valid_from (or 0 for open-ended)",
                        ));
                    }
                }
            }
            EventBody::KeyRevoked(k) => check_id("key_revoked.party_id", &k.party_id)?,
            EventBody::Custody(c) => {
                check_id("custody.actor", &c.actor)?;
                for (field, v) in [
                    ("custody.on_behalf_of", &c.on_behalf_of),
                    ("custody.from_system", &c.from_system),
                    ("custody.to_system", &c.to_system),
                    ("custody.grant_id", &c.grant_id),
                ] {
                    if !v.is_empty() {
                        check_id(field, v)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_id(field: &'static str, v: &str) -> Result<(), Refusal> {
    if is_valid_id(v) {
        Ok(())
    } else {
        Err(Refusal::invalid(
            field,
            format!("{field} {v:?} is not an opaque id (1-64 of A-Z a-z 0-9 . _ : -)"),
        ))
    }
}
