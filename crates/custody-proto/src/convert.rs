//! Conversions between wire types and `custody-domain` types. This is the
//! one place that knows both.

use custody_domain::{
    CustodyAction, CustodyActionKind, Event, EventBody, Genesis, KeyAdded, KeyId, KeyRevoked,
    PartyKind, PartyRegistered, Refusal, SignedEnvelope,
};
use prost::Message;

use crate::v1;

/// `envelope_from_proto` checks a wire envelope's shape.
///
/// # Errors
///
/// An `InvalidArgument` [`Refusal`].
pub fn envelope_from_proto(e: v1::SignedEvent) -> Result<SignedEnvelope, Refusal> {
    SignedEnvelope::from_parts(
        e.payload_type,
        e.body.to_vec(),
        e.signatures
            .into_iter()
            .map(|s| (s.key_id, s.sig))
            .collect(),
    )
}

/// `envelope_to_proto` is the wire form of an envelope.
pub fn envelope_to_proto(e: &SignedEnvelope) -> v1::SignedEvent {
    v1::SignedEvent {
        payload_type: e.payload_type.clone(),
        body: e.body.clone().into(),
        signatures: e
            .signatures
            .iter()
            .map(|s| v1::EventSignature {
                key_id: s.key_id.0.to_vec(),
                sig: s.sig.to_vec(),
            })
            .collect(),
    }
}

fn time(field: &'static str, ns: i64) -> Result<i64, Refusal> {
    if ns < 0 {
        return Err(Refusal::invalid(field, format!("{field} is negative")));
    }
    Ok(ns)
}

/// `decode_event` decodes and converts an event body.
///
/// # Errors
///
/// An `InvalidArgument` [`Refusal`] if the body is not a valid `Event`.
pub fn decode_event(body: &[u8]) -> Result<Event, Refusal> {
    let e = v1::Event::decode(body).map_err(|e| {
        Refusal::invalid("event.body", format!("body is not a custody.v1.Event: {e}"))
    })?;
    let body = match e.body {
        None => {
            return Err(Refusal::invalid(
                "event.body",
                "event has no kind (set one of party_registered, key_added, key_revoked, custody)",
            ))
        }
        Some(v1::event::Body::PartyRegistered(p)) => EventBody::PartyRegistered(PartyRegistered {
            kind: party_kind(p.kind)?,
            party_id: p.party_id,
            acts_on_behalf_of: p.acts_on_behalf_of,
        }),
        Some(v1::event::Body::KeyAdded(k)) => EventBody::KeyAdded(KeyAdded {
            public_key: k.public_key.as_slice().try_into().map_err(|_| {
                Refusal::invalid(
                    "key_added.public_key",
                    format!("public key is {} bytes; want 32", k.public_key.len()),
                )
            })?,
            party_id: k.party_id,
            valid_from: time("key_added.valid_from", k.valid_from_unix_nanos)?,
            valid_to: match time("key_added.valid_to", k.valid_to_unix_nanos)? {
                0 => None,
                t => Some(t),
            },
        }),
        Some(v1::event::Body::KeyRevoked(k)) => EventBody::KeyRevoked(KeyRevoked {
            key_id: KeyId(k.key_id.as_slice().try_into().map_err(|_| {
                Refusal::invalid(
                    "key_revoked.key_id",
                    format!("key id is {} bytes; want 16", k.key_id.len()),
                )
            })?),
            party_id: k.party_id,
        }),
        Some(v1::event::Body::Custody(c)) => EventBody::Custody(CustodyAction {
            action: action_kind(c.action)?,
            asset_digest: c.asset_digest.as_slice().try_into().map_err(|_| {
                Refusal::invalid(
                    "custody.asset_digest",
                    format!(
                        "asset digest is {} bytes; want a 32-byte SHA-256",
                        c.asset_digest.len()
                    ),
                )
            })?,
            actor: c.actor,
            on_behalf_of: c.on_behalf_of,
            from_system: c.from_system,
            to_system: c.to_system,
            grant_id: c.grant_id,
        }),
    };
    let event = Event {
        event_id: e.event_id,
        event_time: e.event_time_unix_nanos,
        reporter: e.reporter,
        reporter_seq: e.reporter_seq,
        body,
    };
    event.check_shape()?;
    Ok(event)
}

fn party_kind(k: i32) -> Result<PartyKind, Refusal> {
    Ok(match v1::PartyKind::try_from(k) {
        Ok(v1::PartyKind::Agency) => PartyKind::Agency,
        Ok(v1::PartyKind::Prime) => PartyKind::Prime,
        Ok(v1::PartyKind::Subcontractor) => PartyKind::Subcontractor,
        Ok(v1::PartyKind::Partner) => PartyKind::Partner,
        Ok(v1::PartyKind::Device) => PartyKind::Device,
        Ok(v1::PartyKind::Software) => PartyKind::Software,
        _ => {
            return Err(Refusal::invalid(
                "party_registered.kind",
                format!("party kind {k} is not one of AGENCY..SOFTWARE"),
            ))
        }
    })
}

fn action_kind(k: i32) -> Result<CustodyActionKind, Refusal> {
    Ok(match v1::CustodyActionKind::try_from(k) {
        Ok(v1::CustodyActionKind::Capture) => CustodyActionKind::Capture,
        Ok(v1::CustodyActionKind::Copy) => CustodyActionKind::Copy,
        Ok(v1::CustodyActionKind::Move) => CustodyActionKind::Move,
        Ok(v1::CustodyActionKind::Receipt) => CustodyActionKind::Receipt,
        Ok(v1::CustodyActionKind::Access) => CustodyActionKind::Access,
        Ok(v1::CustodyActionKind::Derive) => CustodyActionKind::Derive,
        Ok(v1::CustodyActionKind::Delete) => CustodyActionKind::Delete,
        _ => {
            return Err(Refusal::invalid(
                "custody.action",
                format!("custody action {k} is not a known kind"),
            ))
        }
    })
}

/// `Entry` is a decoded log entry.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Entry 0.
    Genesis(Genesis),
    /// A signed event, with the log's integration time.
    Event {
        /// The envelope as logged.
        envelope: SignedEnvelope,
        /// When the log integrated it.
        integrated_time: i64,
    },
}

/// `decode_entry` decodes a leaf.
///
/// # Errors
///
/// A [`Refusal`] describing what is malformed.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, Refusal> {
    let e = v1::LogEntry::decode(bytes)
        .map_err(|e| Refusal::invalid("entry", format!("not a custody.v1.LogEntry: {e}")))?;
    match e.content {
        Some(v1::log_entry::Content::Genesis(g)) => Ok(Entry::Genesis(Genesis {
            origin: g.origin,
            owner_party_id: g.owner_party_id,
            owner_public_key: g.owner_public_key.as_slice().try_into().map_err(|_| {
                Refusal::invalid("genesis.owner_public_key", "owner key is not 32 bytes")
            })?,
        })),
        Some(v1::log_entry::Content::Event(ev)) => Ok(Entry::Event {
            envelope: envelope_from_proto(ev)?,
            integrated_time: e.integrated_time_unix_nanos,
        }),
        None => Err(Refusal::invalid("entry", "entry has no content")),
    }
}
