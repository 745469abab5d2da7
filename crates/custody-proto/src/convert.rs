//! Conversions between wire types and `custody-domain` types. This is the
//! one place that knows both.

use custody_domain::findings::Finding;
use custody_domain::Interval;
use custody_domain::{
    AssetRef, CaptureContext, CustodyAction, CustodyActionKind, CustodyAttestation, DeleteMethod,
    Digest, Event, EventBody, Genesis, GrantIssued, GrantRevoked, KeyAdded, KeyId, KeyRevoked,
    LegalHold, MaintenanceSession, ManifestRef, Modality, Outcome, Parent, PartyKind,
    PartyRegistered, Purpose, Refusal, Relationship, RetentionAuthority, RetentionClock,
    RetentionRule, SignedEnvelope, SubjectClass, SystemRegistered,
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

/// `require_canonical` refuses bytes that are not the canonical encoding
/// of the message decoded from them: re-encoding must give the same bytes.
/// That refuses unknown fields (which the decoder skips, and which could
/// carry free text into the log), fields out of order or repeated, default
/// values written out, and non-minimal varints, so every signed body has
/// one encoding and holds only what the schema names.
///
/// # Errors
///
/// An `InvalidArgument` [`Refusal`] naming `field`.
pub fn require_canonical<M: Message>(
    field: &'static str,
    decoded: &M,
    bytes: &[u8],
) -> Result<(), Refusal> {
    if decoded.encode_to_vec() == bytes {
        Ok(())
    } else {
        Err(Refusal::invalid(
            field,
            format!(
                "{field} is not in canonical protobuf form ({} bytes re-encode to {}): it carries unknown fields, fields out of order, explicit defaults or padded varints; encode it with the custody.v1 schema",
                bytes.len(),
                decoded.encoded_len()
            ),
        ))
    }
}

/// `decode_event` decodes and converts an event body, which must be in
/// canonical form ([`require_canonical`]).
///
/// # Errors
///
/// An `InvalidArgument` [`Refusal`] if the body is not a valid `Event`.
pub fn decode_event(body: &[u8]) -> Result<Event, Refusal> {
    let e = v1::Event::decode(body).map_err(|e| {
        Refusal::invalid("event.body", format!("body is not a custody.v1.Event: {e}"))
    })?;
    require_canonical("event.body", &e, body)?;
    let body = match e.body {
        None => {
            return Err(Refusal::invalid(
                "event.body",
                "event has no kind (set one of its body fields, e.g. custody or system_registered)",
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
        Some(v1::event::Body::SystemRegistered(r)) => {
            EventBody::SystemRegistered(SystemRegistered {
                system_id: r.system_id,
                owner_party: r.owner_party,
                inside_boundary: r.inside_boundary,
                accredited: r.accredited,
                encrypted_at_rest: r.encrypted_at_rest,
                removable_media: r.removable_media,
            })
        }
        Some(v1::event::Body::GrantIssued(g)) => EventBody::GrantIssued(GrantIssued {
            actions: g
                .actions
                .iter()
                .map(|a| code("grant_issued.actions", *a, CustodyActionKind::from_code))
                .collect::<Result<_, _>>()?,
            purposes: g
                .purposes
                .iter()
                .map(|a| code("grant_issued.purposes", *a, Purpose::from_code))
                .collect::<Result<_, _>>()?,
            modalities: g
                .modalities
                .iter()
                .map(|a| code("grant_issued.modalities", *a, Modality::from_code))
                .collect::<Result<_, _>>()?,
            subject_classes: g
                .subject_classes
                .iter()
                .map(|a| code("grant_issued.subject_classes", *a, SubjectClass::from_code))
                .collect::<Result<_, _>>()?,
            grant_id: g.grant_id,
            grantee: g.grantee,
            contract_ref: g.contract_ref,
            systems: g.systems,
            max_onward_transfers: g.max_onward_transfers,
            valid_from: time("grant_issued.valid_from", g.valid_from_unix_nanos)?,
            valid_to: match time("grant_issued.valid_to", g.valid_to_unix_nanos)? {
                0 => None,
                t => Some(t),
            },
        }),
        Some(v1::event::Body::GrantRevoked(g)) => EventBody::GrantRevoked(GrantRevoked {
            grant_id: g.grant_id,
        }),
        Some(v1::event::Body::RetentionRulePublished(r)) => {
            EventBody::RetentionRulePublished(RetentionRule {
                authority: code(
                    "retention_rule.authority",
                    r.authority,
                    RetentionAuthority::from_code,
                )?,
                modality: opt_code("retention_rule.modality", r.modality, Modality::from_code)?,
                subject_class: opt_code(
                    "retention_rule.subject_class",
                    r.subject_class,
                    SubjectClass::from_code,
                )?,
                clock: code("retention_rule.clock", r.clock, RetentionClock::from_code)?,
                rule_id: r.rule_id,
                authority_ref: r.authority_ref,
                system_id: r.system_id,
                max_age: r.max_age_nanos,
            })
        }
        Some(v1::event::Body::LegalHold(h)) => EventBody::LegalHold(LegalHold {
            assets: match h.assets.and_then(|a| a.r#ref) {
                None => None,
                Some(v1::asset_ref::Ref::Digest(d)) => {
                    Some(AssetRef::One(digest("legal_hold.assets", &d)?))
                }
                Some(v1::asset_ref::Ref::Manifest(m)) => {
                    Some(AssetRef::Manifest(manifest("legal_hold.assets", &m)?))
                }
            },
            hold_id: h.hold_id,
            system_id: h.system_id,
            released: h.released,
        }),
        Some(v1::event::Body::PolicyPublished(p)) => {
            EventBody::PolicyPublished(custody_domain::findings::Policy {
                receipt_window: p.receipt_window_nanos,
                reporting_deadline: p.reporting_deadline_nanos,
                attestation_period: p.attestation_period_nanos,
            })
        }
        Some(v1::event::Body::Custody(c)) => EventBody::Custody(custody_action(c)?),
        Some(v1::event::Body::MaintenanceSession(m)) => {
            EventBody::MaintenanceSession(MaintenanceSession {
                purpose: opt_code("maintenance_session.purpose", m.purpose, Purpose::from_code)?,
                start: time("maintenance_session.start", m.start_unix_nanos)?,
                end: match time("maintenance_session.end", m.end_unix_nanos)? {
                    0 => None,
                    t => Some(t),
                },
                session_id: m.session_id,
                actor: m.actor,
                on_behalf_of: m.on_behalf_of,
                system_id: m.system_id,
                grant_id: m.grant_id,
            })
        }
        Some(v1::event::Body::CustodyAttestation(a)) => {
            EventBody::CustodyAttestation(CustodyAttestation {
                holdings: match &a.holdings {
                    Some(m) if m.count > 0 => manifest("custody_attestation.holdings", m)?,
                    _ => ManifestRef {
                        root: custody_domain::EMPTY_MANIFEST_ROOT,
                        count: 0,
                    },
                },
                system_id: a.system_id,
            })
        }
    };
    let event = Event {
        event_id: e.event_id,
        event_time: e.event_time_unix_nanos,
        reporter: e.reporter,
        reporter_seq: e.reporter_seq,
        log_origin: e.log_origin,
        body,
    };
    event.check_shape()?;
    Ok(event)
}

fn digest(field: &'static str, b: &[u8]) -> Result<Digest, Refusal> {
    b.try_into().map_err(|_| {
        Refusal::invalid(
            field,
            format!("{field} is {} bytes; want a 32-byte SHA-256", b.len()),
        )
    })
}

fn manifest(field: &'static str, m: &v1::Manifest) -> Result<ManifestRef, Refusal> {
    Ok(ManifestRef {
        root: digest(field, &m.root)?,
        count: m.count,
    })
}

/// A required enumerated code: 0 (unspecified) and unknown values are
/// refused.
fn code<T>(field: &'static str, v: i32, from: fn(u8) -> Option<T>) -> Result<T, Refusal> {
    u8::try_from(v)
        .ok()
        .filter(|c| *c != 0)
        .and_then(from)
        .ok_or_else(|| Refusal::invalid(field, format!("{field}: {v} is not a known code")))
}

/// An optional enumerated code: 0 means unset.
fn opt_code<T>(
    field: &'static str,
    v: i32,
    from: fn(u8) -> Option<T>,
) -> Result<Option<T>, Refusal> {
    if v == 0 {
        Ok(None)
    } else {
        code(field, v, from).map(Some)
    }
}

fn custody_action(c: v1::CustodyAction) -> Result<CustodyAction, Refusal> {
    let asset = match (c.asset_digest.is_empty(), &c.manifest) {
        (true, None) => None,
        (false, None) => Some(AssetRef::One(digest(
            "custody.asset_digest",
            &c.asset_digest,
        )?)),
        (true, Some(m)) => Some(AssetRef::Manifest(manifest("custody.manifest", m)?)),
        (false, Some(_)) => {
            return Err(Refusal::invalid(
                "custody.manifest",
                "set asset_digest or manifest, not both",
            ))
        }
    };
    let capture = c.capture.unwrap_or_default();
    Ok(CustodyAction {
        action: code("custody.action", c.action, CustodyActionKind::from_code)?,
        actor: c.actor,
        on_behalf_of: c.on_behalf_of,
        asset,
        from_system: c.from_system,
        to_system: c.to_system,
        grant_id: c.grant_id,
        modality: opt_code("custody.modality", c.modality, Modality::from_code)?,
        subject_class: opt_code(
            "custody.subject_class",
            c.subject_class,
            SubjectClass::from_code,
        )?,
        capture: CaptureContext {
            port: capture.port,
            lane: capture.lane,
            device: capture.device,
        },
        parents: c
            .parents
            .iter()
            .map(|p| {
                Ok(Parent {
                    digest: digest("custody.parents.digest", &p.digest)?,
                    relationship: code(
                        "custody.parents.relationship",
                        p.relationship,
                        Relationship::from_code,
                    )?,
                })
            })
            .collect::<Result<_, Refusal>>()?,
        purpose: opt_code("custody.purpose", c.purpose, Purpose::from_code)?,
        outcome: opt_code("custody.outcome", c.outcome, Outcome::from_code)?,
        receipt_of: (c.receipt_of != 0).then_some(c.receipt_of),
        delete_method: opt_code(
            "custody.delete_method",
            c.delete_method,
            DeleteMethod::from_code,
        )?,
        attested_by: c.attested_by,
    })
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
    require_canonical("entry", &e, bytes)?;
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

/// `interval_to_proto` is the wire form of an interval.
pub fn interval_to_proto(i: &Interval) -> v1::CustodyInterval {
    v1::CustodyInterval {
        asset: i.asset.to_vec(),
        party: i.party.clone(),
        system_id: i.system.clone(),
        from_unix_nanos: i.from,
        to_unix_nanos: i.to.unwrap_or(0),
        opened_by: i.opened_by,
        closed_by: i.closed_by.unwrap_or(0),
        modality: i.modality.map_or(0, |m| m.code() as i32),
        subject_class: i.subject_class.map_or(0, |m| m.code() as i32),
    }
}

/// `finding_to_proto` is the wire form of a finding.
pub fn finding_to_proto(f: &Finding) -> v1::Finding {
    v1::Finding {
        rule: f.rule.name().to_owned(),
        entries: f.entries.clone(),
        party: f.party.clone().unwrap_or_default(),
        system_id: f.system.clone().unwrap_or_default(),
        asset: f.asset.map(|a| a.to_vec()).unwrap_or_default(),
        grant_id: f.grant.clone().unwrap_or_default(),
        retention_rule_id: f.retention_rule.clone().unwrap_or_default(),
        at_unix_nanos: f.at,
        detail: f.detail.clone(),
        id: f.id.clone(),
        observed_by: f.observed_by.clone().unwrap_or_default(),
        observed_on_system: f.observed_on.clone().unwrap_or_default(),
    }
}
