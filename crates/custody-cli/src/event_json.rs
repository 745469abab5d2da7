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
    /// The log's origin; defaults to the origin of the log appended to.
    pub log_origin: Option<String>,
    pub party_registered: Option<PartyJson>,
    pub key_added: Option<KeyAddedJson>,
    pub key_revoked: Option<KeyRevokedJson>,
    pub system_registered: Option<SystemJson>,
    pub retention_rule_published: Option<RetentionRuleJson>,
    pub policy_published: Option<PolicyJson>,
    pub custody: Option<CustodyJson>,
}

/// `PolicyJson` is a POLICY_PUBLISHED: the findings windows, in seconds,
/// for the entries after it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyJson {
    /// A COPY or MOVE must be acknowledged within this long.
    pub receipt_window_secs: i64,
    /// An event must be logged within this long of happening.
    pub reporting_deadline_secs: i64,
    /// A party holding data on its own system must attest this often.
    pub attestation_period_secs: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRuleJson {
    pub rule_id: String,
    /// SORN, PIA or RECORDS_SCHEDULE.
    pub authority: String,
    /// Opaque id of the SORN, PIA or schedule item.
    #[serde(default)]
    pub authority_ref: String,
    /// Only assets of this modality (all if absent).
    #[serde(default)]
    pub modality: Option<String>,
    /// Only assets of this subject class (all if absent).
    #[serde(default)]
    pub subject_class: Option<String>,
    /// Only custody on this system (all if empty).
    #[serde(default)]
    pub system_id: String,
    /// How long an asset may be held, in seconds.
    pub max_age_secs: i64,
    /// CAPTURE or CUSTODY_START.
    pub clock: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemJson {
    pub system_id: String,
    pub owner_party: String,
    #[serde(default)]
    pub inside_boundary: bool,
    #[serde(default)]
    pub accredited: bool,
    #[serde(default)]
    pub encrypted_at_rest: bool,
    #[serde(default)]
    pub removable_media: bool,
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
    /// CAPTURE, COPY, MOVE, RECEIPT, ACCESS, USE, DERIVE or DELETE.
    pub action: String,
    pub actor: String,
    #[serde(default)]
    pub on_behalf_of: String,
    /// Hex SHA-256 of the asset (or set manifest_root and manifest_count).
    #[serde(default)]
    pub asset_digest: String,
    #[serde(default)]
    pub manifest_root: String,
    #[serde(default)]
    pub manifest_count: u64,
    /// FACE_IMAGE, PLATE_IMAGE, SCENE_IMAGE, FACE_TEMPLATE or OTHER.
    #[serde(default)]
    pub modality: Option<String>,
    /// CITIZEN, PERMANENT_RESIDENT, NON_CITIZEN or UNKNOWN.
    #[serde(default)]
    pub subject_class: Option<String>,
    /// BORDER_INSPECTION, MAINTENANCE, ... (see `Purpose` in the proto).
    #[serde(default)]
    pub purpose: Option<String>,
    /// RECEIPT: log index of the COPY or MOVE.
    #[serde(default)]
    pub receipt_of: u64,
    /// DELETE: LOGICAL, CRYPTO_ERASE, OVERWRITE or PHYSICAL_DESTRUCTION.
    #[serde(default)]
    pub delete_method: Option<String>,
    /// DERIVE: hex digests of the parents (derived_from).
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub from_system: String,
    #[serde(default)]
    pub to_system: String,
    #[serde(default)]
    pub grant_id: String,
}

/// `named` parses an enumerated code by name, listing the choices on error.
fn named(field: &str, s: &str, parse: fn(&str) -> Option<u8>) -> anyhow::Result<u8> {
    parse(s).ok_or_else(|| anyhow!("{field}: {s:?} is not a known code"))
}

/// `now_nanos` is the wall clock in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl EventJson {
    /// `into_proto` converts to the wire event for the log of `origin`
    /// (unless the JSON names another).
    ///
    /// # Errors
    ///
    /// If not exactly one kind is set or a field is malformed.
    pub fn into_proto(self, origin: &str) -> anyhow::Result<v1::Event> {
        let kinds = [
            self.party_registered.is_some(),
            self.key_added.is_some(),
            self.key_revoked.is_some(),
            self.system_registered.is_some(),
            self.retention_rule_published.is_some(),
            self.policy_published.is_some(),
            self.custody.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            bail!("set exactly one of party_registered, key_added, key_revoked, system_registered, retention_rule_published, policy_published, custody");
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
        } else if let Some(s) = self.system_registered {
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: s.system_id,
                owner_party: s.owner_party,
                inside_boundary: s.inside_boundary,
                accredited: s.accredited,
                encrypted_at_rest: s.encrypted_at_rest,
                removable_media: s.removable_media,
            })
        } else if let Some(r) = self.retention_rule_published {
            use custody_domain as d;
            let code = |field: &str, v: &Option<String>, f: fn(&str) -> Option<u8>| {
                v.as_deref()
                    .map_or(Ok(0), |s| named(field, s, f).map(i32::from))
            };
            let some = |s: &str| Some(s.to_owned());
            v1::event::Body::RetentionRulePublished(v1::RetentionRulePublished {
                rule_id: r.rule_id,
                authority: code(
                    "retention_rule_published.authority",
                    &some(&r.authority),
                    |s| d::RetentionAuthority::from_name(s).map(d::RetentionAuthority::code),
                )?,
                authority_ref: r.authority_ref,
                modality: code("retention_rule_published.modality", &r.modality, |s| {
                    d::Modality::from_name(s).map(d::Modality::code)
                })?,
                subject_class: code(
                    "retention_rule_published.subject_class",
                    &r.subject_class,
                    |s| d::SubjectClass::from_name(s).map(d::SubjectClass::code),
                )?,
                system_id: r.system_id,
                max_age_nanos: r
                    .max_age_secs
                    .checked_mul(1_000_000_000)
                    .ok_or_else(|| anyhow!("retention_rule_published.max_age_secs is too large"))?,
                clock: code("retention_rule_published.clock", &some(&r.clock), |s| {
                    d::RetentionClock::from_name(s).map(d::RetentionClock::code)
                })?,
            })
        } else if let Some(p) = self.policy_published {
            let nanos = |field: &str, secs: i64| {
                secs.checked_mul(1_000_000_000)
                    .ok_or_else(|| anyhow!("policy_published.{field} is too large"))
            };
            v1::event::Body::PolicyPublished(v1::PolicyPublished {
                receipt_window_nanos: nanos("receipt_window_secs", p.receipt_window_secs)?,
                reporting_deadline_nanos: nanos(
                    "reporting_deadline_secs",
                    p.reporting_deadline_secs,
                )?,
                attestation_period_nanos: nanos(
                    "attestation_period_secs",
                    p.attestation_period_secs,
                )?,
            })
        } else if let Some(c) = self.custody {
            use custody_domain as d;
            let action = named("custody.action", &c.action, |s| {
                d::CustodyActionKind::from_name(s).map(d::CustodyActionKind::code)
            })?;
            let code = |field: &str, v: &Option<String>, f: fn(&str) -> Option<u8>| {
                v.as_deref()
                    .map_or(Ok(0), |s| named(field, s, f).map(i32::from))
            };
            v1::event::Body::Custody(v1::CustodyAction {
                action: i32::from(action),
                actor: c.actor,
                on_behalf_of: c.on_behalf_of,
                asset_digest: hex::decode(&c.asset_digest)
                    .map_err(|e| anyhow!("custody.asset_digest: {e}"))?,
                manifest: if c.manifest_root.is_empty() {
                    None
                } else {
                    Some(v1::Manifest {
                        root: hex::decode(&c.manifest_root)
                            .map_err(|e| anyhow!("custody.manifest_root: {e}"))?,
                        count: c.manifest_count,
                    })
                },
                from_system: c.from_system,
                to_system: c.to_system,
                grant_id: c.grant_id,
                modality: code("custody.modality", &c.modality, |s| {
                    d::Modality::from_name(s).map(d::Modality::code)
                })?,
                subject_class: code("custody.subject_class", &c.subject_class, |s| {
                    d::SubjectClass::from_name(s).map(d::SubjectClass::code)
                })?,
                purpose: code("custody.purpose", &c.purpose, |s| {
                    d::Purpose::from_name(s).map(d::Purpose::code)
                })?,
                delete_method: code("custody.delete_method", &c.delete_method, |s| {
                    d::DeleteMethod::from_name(s).map(d::DeleteMethod::code)
                })?,
                receipt_of: c.receipt_of,
                parents: c
                    .parents
                    .iter()
                    .map(|p| {
                        Ok(v1::Parent {
                            digest: hex::decode(p).map_err(|e| anyhow!("custody.parents: {e}"))?,
                            relationship: v1::Relationship::DerivedFrom as i32,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
                ..Default::default()
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
            log_origin: self.log_origin.unwrap_or_else(|| origin.to_owned()),
            body: Some(body),
        })
    }
}
