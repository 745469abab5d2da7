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

/// `is_valid_uuid` says whether `s` is a UUID in its one canonical form:
/// hyphenated, lower-case hex (RFC 9562 §4). Other letter cases name the
/// same UUID, so accepting them would let one event be logged twice.
pub fn is_valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// `PartyKind` is what sort of agent a party is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// `Digest` is the SHA-256 of an asset's bytes: the asset's only identity.
pub type Digest = [u8; 32];

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[allow(missing_docs)]
        pub enum $name { $($variant = $code),+ }

        impl $name {
            /// `ALL` lists every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// `code` is the value's stable number (its wire and storage
            /// code; 0 is reserved for "unspecified").
            pub fn code(self) -> u8 {
                self as u8
            }

            /// `from_code` is the inverse of [`Self::code`].
            pub fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// `name` is the value's upper-case name, as in messages and JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// `from_name` parses [`Self::name`].
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

code_enum!(
    /// `CustodyActionKind` is what happened to an asset.
    CustodyActionKind {
        Capture = 1 => "CAPTURE",
        Copy = 2 => "COPY",
        Move = 3 => "MOVE",
        Receipt = 4 => "RECEIPT",
        Access = 5 => "ACCESS",
        Derive = 6 => "DERIVE",
        Delete = 7 => "DELETE",
        Use = 8 => "USE",
    }
);

code_enum!(
    /// `Modality` is what kind of record an asset is.
    Modality {
        FaceImage = 1 => "FACE_IMAGE",
        PlateImage = 2 => "PLATE_IMAGE",
        SceneImage = 3 => "SCENE_IMAGE",
        FaceTemplate = 4 => "FACE_TEMPLATE",
        Other = 5 => "OTHER",
    }
);

code_enum!(
    /// `SubjectClass` is the class of person an asset is about; it selects
    /// the retention rule.
    SubjectClass {
        Citizen = 1 => "CITIZEN",
        PermanentResident = 2 => "PERMANENT_RESIDENT",
        NonCitizen = 3 => "NON_CITIZEN",
        Unknown = 4 => "UNKNOWN",
    }
);

code_enum!(
    /// `Purpose` is why data is used or moved.
    Purpose {
        BorderInspection = 1 => "BORDER_INSPECTION",
        Maintenance = 2 => "MAINTENANCE",
        QualityAssurance = 3 => "QUALITY_ASSURANCE",
        Investigation = 4 => "INVESTIGATION",
        Backup = 5 => "BACKUP",
        Training = 6 => "TRAINING",
        RecordsRetention = 7 => "RECORDS_RETENTION",
    }
);

code_enum!(
    /// `Outcome` is whether the reported action succeeded.
    Outcome {
        Success = 1 => "SUCCESS",
        Failure = 2 => "FAILURE",
    }
);

code_enum!(
    /// `DeleteMethod` is how a copy was destroyed.
    DeleteMethod {
        Logical = 1 => "LOGICAL",
        CryptoErase = 2 => "CRYPTO_ERASE",
        Overwrite = 3 => "OVERWRITE",
        PhysicalDestruction = 4 => "PHYSICAL_DESTRUCTION",
    }
);

code_enum!(
    /// `Relationship` is how a derived asset relates to a parent (PROV).
    Relationship {
        DerivedFrom = 1 => "DERIVED_FROM",
        ComponentOf = 2 => "COMPONENT_OF",
    }
);

code_enum!(
    /// `RetentionAuthority` is what a retention rule rests on.
    RetentionAuthority {
        Sorn = 1 => "SORN",
        Pia = 2 => "PIA",
        RecordsSchedule = 3 => "RECORDS_SCHEDULE",
    }
);

code_enum!(
    /// `RetentionClock` is what starts a retention rule's clock.
    RetentionClock {
        Capture = 1 => "CAPTURE",
        CustodyStart = 2 => "CUSTODY_START",
    }
);

/// `ManifestRef` names a bulk set of assets: the RFC 6962 root over the
/// sorted, distinct digests, and their count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ManifestRef {
    /// The Merkle root.
    pub root: Digest,
    /// How many members.
    pub count: u64,
}

/// `AssetRef` is one asset or a manifest of many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AssetRef {
    /// A single asset.
    One(Digest),
    /// A bulk set.
    Manifest(ManifestRef),
}

/// `CaptureContext` is where an asset was captured, as opaque ids (each may
/// be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureContext {
    /// Port of entry.
    pub port: String,
    /// Lane.
    pub lane: String,
    /// Device.
    pub device: String,
}

/// `Parent` is a parent of a derived asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The parent's digest.
    pub digest: Digest,
    /// How the child relates to it.
    pub relationship: Relationship,
}

/// `CustodyAction` is a custody event: CAPTURE, COPY, MOVE, RECEIPT,
/// ACCESS, USE, DERIVE or DELETE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyAction {
    /// What happened.
    pub action: CustodyActionKind,
    /// Who did it.
    pub actor: String,
    /// For whom, if not the actor itself.
    pub on_behalf_of: String,
    /// The asset or manifest; `None` only for a RECEIPT, which names its
    /// transfer instead.
    pub asset: Option<AssetRef>,
    /// Source system id, if any.
    pub from_system: String,
    /// Destination system id, if any.
    pub to_system: String,
    /// Grant relied on; empty when there is none (still recordable).
    pub grant_id: String,
    /// CAPTURE, DERIVE: the new asset's modality.
    pub modality: Option<Modality>,
    /// CAPTURE, DERIVE: the new asset's subject class.
    pub subject_class: Option<SubjectClass>,
    /// CAPTURE: where.
    pub capture: CaptureContext,
    /// DERIVE: the parents.
    pub parents: Vec<Parent>,
    /// Why.
    pub purpose: Option<Purpose>,
    /// Whether it succeeded.
    pub outcome: Option<Outcome>,
    /// RECEIPT: the log index of the COPY or MOVE acknowledged.
    pub receipt_of: Option<u64>,
    /// DELETE: how.
    pub delete_method: Option<DeleteMethod>,
    /// DELETE: who attests it; empty for the actor.
    pub attested_by: String,
}

impl CustodyAction {
    /// `observation_system` is the system on which another party may report
    /// this action as observed ([`crate::Registry::attribute`]): the system
    /// the data leaves (`from_system`) when there is one, else the system it
    /// arrives on. A system's operator sees what leaves it; a recipient may
    /// not make another party the author of what arrived on its own system.
    pub fn observation_system(&self) -> &str {
        if self.from_system.is_empty() {
            &self.to_system
        } else {
            &self.from_system
        }
    }

    /// `new` is an action with only its kind, actor and asset set.
    pub fn new(action: CustodyActionKind, actor: &str, asset: Option<AssetRef>) -> Self {
        Self {
            action,
            actor: actor.to_owned(),
            on_behalf_of: String::new(),
            asset,
            from_system: String::new(),
            to_system: String::new(),
            grant_id: String::new(),
            modality: None,
            subject_class: None,
            capture: CaptureContext::default(),
            parents: Vec::new(),
            purpose: None,
            outcome: None,
            receipt_of: None,
            delete_method: None,
            attested_by: String::new(),
        }
    }
}

/// `MaintenanceSession` is a vendor's access to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceSession {
    /// Opaque session id.
    pub session_id: String,
    /// The vendor party.
    pub actor: String,
    /// For whom.
    pub on_behalf_of: String,
    /// The device's system.
    pub system_id: String,
    /// Grant relied on, if any.
    pub grant_id: String,
    /// Why.
    pub purpose: Option<Purpose>,
    /// Start.
    pub start: Timestamp,
    /// End; `None` while open.
    pub end: Option<Timestamp>,
}

/// `CustodyAttestation` is a party's signed statement of what it holds on a
/// system: exactly the manifest, or nothing when its count is zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyAttestation {
    /// The system.
    pub system_id: String,
    /// What is held.
    pub holdings: ManifestRef,
}

/// `SystemRegistered` adds a system, a place where data can rest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SystemRegistered {
    /// The system's id.
    pub system_id: String,
    /// The party that holds what rests on it.
    pub owner_party: String,
    /// Inside the data owner's boundary.
    pub inside_boundary: bool,
    /// Accredited.
    pub accredited: bool,
    /// Encrypted at rest.
    pub encrypted_at_rest: bool,
    /// Removable media (USB and the like).
    pub removable_media: bool,
}

impl SystemRegistered {
    /// `boundary_breaches` names what makes the system unfit to receive
    /// data (DESIGN §6, boundary violation), as codes in a fixed order:
    /// `outside_boundary`, `unaccredited`, `unencrypted`, `removable_media`.
    /// Empty for a system inside the boundary.
    pub fn boundary_breaches(&self) -> Vec<&'static str> {
        [
            (!self.inside_boundary, "outside_boundary"),
            (!self.accredited, "unaccredited"),
            (!self.encrypted_at_rest, "unencrypted"),
            (self.removable_media, "removable_media"),
        ]
        .into_iter()
        .filter_map(|(breach, code)| breach.then_some(code))
        .collect()
    }
}

/// `GrantIssued` is an authorisation from the data owner. Empty lists mean
/// "any".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantIssued {
    /// The grant's id.
    pub grant_id: String,
    /// Who it authorises.
    pub grantee: String,
    /// Contract or task-order reference (opaque id; may be empty).
    pub contract_ref: String,
    /// Permitted actions.
    pub actions: Vec<CustodyActionKind>,
    /// Permitted purposes.
    pub purposes: Vec<Purpose>,
    /// Permitted systems.
    pub systems: Vec<String>,
    /// Permitted modalities.
    pub modalities: Vec<Modality>,
    /// Permitted subject classes.
    pub subject_classes: Vec<SubjectClass>,
    /// How many onward transfers are allowed.
    pub max_onward_transfers: u32,
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity (exclusive), if any.
    pub valid_to: Option<Timestamp>,
}

/// `GrantRevoked` ends a grant from its integration on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRevoked {
    /// The grant.
    pub grant_id: String,
}

/// `RetentionRule` is a published retention rule. `None` / empty selector
/// fields match anything.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetentionRule {
    /// The rule's id.
    pub rule_id: String,
    /// What it rests on.
    pub authority: RetentionAuthority,
    /// Opaque id of the SORN, PIA or schedule item.
    pub authority_ref: String,
    /// Selector: modality.
    pub modality: Option<Modality>,
    /// Selector: subject class.
    pub subject_class: Option<SubjectClass>,
    /// Selector: system.
    pub system_id: String,
    /// How long a copy may be kept, in nanoseconds.
    pub max_age: i64,
    /// What starts the clock.
    pub clock: RetentionClock,
}

/// `LegalHold` suspends retention for some assets or a whole system.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegalHold {
    /// The hold's id.
    pub hold_id: String,
    /// The assets held, if the hold names assets.
    pub assets: Option<AssetRef>,
    /// The system held, if the hold names a system.
    pub system_id: String,
    /// True when this releases the hold.
    pub released: bool,
}

/// `EventBody` is the kind-specific part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum EventBody {
    PartyRegistered(PartyRegistered),
    KeyAdded(KeyAdded),
    KeyRevoked(KeyRevoked),
    SystemRegistered(SystemRegistered),
    GrantIssued(GrantIssued),
    GrantRevoked(GrantRevoked),
    RetentionRulePublished(RetentionRule),
    LegalHold(LegalHold),
    PolicyPublished(crate::findings::Policy),
    Custody(CustodyAction),
    MaintenanceSession(MaintenanceSession),
    CustodyAttestation(CustodyAttestation),
}

impl EventBody {
    /// `is_registry` is whether the event changes the registry (and so must
    /// be signed by the data owner).
    pub fn is_registry(&self) -> bool {
        !matches!(
            self,
            EventBody::Custody(_)
                | EventBody::MaintenanceSession(_)
                | EventBody::CustodyAttestation(_)
        )
    }

    /// `manifest` is the uploaded manifest the event names, if any: a
    /// custody action's or a legal hold's assets, or an attestation's
    /// holdings. Naming it keeps it: a manifest no event names is
    /// removed after a while (custodyd's upload limits).
    pub fn manifest(&self) -> Option<ManifestRef> {
        match self {
            EventBody::Custody(CustodyAction {
                asset: Some(AssetRef::Manifest(m)),
                ..
            })
            | EventBody::LegalHold(LegalHold {
                assets: Some(AssetRef::Manifest(m)),
                ..
            }) => Some(*m),
            EventBody::CustodyAttestation(a) if a.holdings.count > 0 => Some(a.holdings),
            _ => None,
        }
    }

    /// `code` is the event kind's name as used in messages.
    pub fn code(&self) -> &'static str {
        match self {
            EventBody::PartyRegistered(_) => "PARTY_REGISTERED",
            EventBody::KeyAdded(_) => "KEY_ADDED",
            EventBody::KeyRevoked(_) => "KEY_REVOKED",
            EventBody::SystemRegistered(_) => "SYSTEM_REGISTERED",
            EventBody::GrantIssued(_) => "GRANT_ISSUED",
            EventBody::GrantRevoked(_) => "GRANT_REVOKED",
            EventBody::RetentionRulePublished(_) => "RETENTION_RULE_PUBLISHED",
            EventBody::LegalHold(_) => "LEGAL_HOLD",
            EventBody::PolicyPublished(_) => "POLICY_PUBLISHED",
            EventBody::Custody(c) => c.action.name(),
            EventBody::MaintenanceSession(_) => "MAINTENANCE_SESSION",
            EventBody::CustodyAttestation(_) => "CUSTODY_ATTESTATION",
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
    /// The origin of the one log this event is for: signed with the rest
    /// of the body, so the event cannot be replayed into another log.
    pub log_origin: String,
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
                format!(
                    "event_id {} is not a UUID in its canonical form (lower-case hex, 8-4-4-4-12)",
                    crate::quoted(&self.event_id)
                ),
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
                match ed25519_dalek::VerifyingKey::from_bytes(&k.public_key) {
                    Err(_) => {
                        return Err(Refusal::invalid(
                            "key_added.public_key",
                            "public key is not a valid Ed25519 point",
                        ))
                    }
                    Ok(vk) if !is_strong_key(&vk) => {
                        return Err(Refusal::invalid(
                            "key_added.public_key",
                            "public key is a weak (small- or mixed-order) point; generate a new key with custody keygen",
                        ))
                    }
                    Ok(_) => {}
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
            EventBody::SystemRegistered(r) => {
                check_id("system_registered.system_id", &r.system_id)?;
                check_id("system_registered.owner_party", &r.owner_party)?;
            }
            EventBody::GrantIssued(g) => {
                check_id("grant_issued.grant_id", &g.grant_id)?;
                check_id("grant_issued.grantee", &g.grantee)?;
                check_opt_id("grant_issued.contract_ref", &g.contract_ref)?;
                for s in &g.systems {
                    check_id("grant_issued.systems", s)?;
                }
                if let Some(to) = g.valid_to {
                    if to <= g.valid_from {
                        return Err(Refusal::invalid(
                            "grant_issued.valid_to",
                            "valid_to must be after valid_from (or 0 for open-ended)",
                        ));
                    }
                }
            }
            EventBody::GrantRevoked(g) => check_id("grant_revoked.grant_id", &g.grant_id)?,
            EventBody::RetentionRulePublished(r) => {
                check_id("retention_rule.rule_id", &r.rule_id)?;
                check_opt_id("retention_rule.authority_ref", &r.authority_ref)?;
                check_opt_id("retention_rule.system_id", &r.system_id)?;
                if r.max_age <= 0 {
                    return Err(Refusal::invalid(
                        "retention_rule.max_age",
                        "max_age must be a positive duration in nanoseconds",
                    ));
                }
            }
            EventBody::PolicyPublished(p) => p.check()?,
            EventBody::LegalHold(h) => {
                check_id("legal_hold.hold_id", &h.hold_id)?;
                check_opt_id("legal_hold.system_id", &h.system_id)?;
                if h.assets.is_none() && h.system_id.is_empty() {
                    return Err(Refusal::invalid(
                        "legal_hold.assets",
                        "a legal hold must name assets (a digest or manifest) or a system",
                    ));
                }
                check_manifest_ref("legal_hold.assets", h.assets.as_ref())?;
            }
            EventBody::Custody(c) => {
                check_id("custody.actor", &c.actor)?;
                for (field, v) in [
                    ("custody.on_behalf_of", &c.on_behalf_of),
                    ("custody.from_system", &c.from_system),
                    ("custody.to_system", &c.to_system),
                    ("custody.grant_id", &c.grant_id),
                    ("custody.attested_by", &c.attested_by),
                    ("custody.capture.port", &c.capture.port),
                    ("custody.capture.lane", &c.capture.lane),
                    ("custody.capture.device", &c.capture.device),
                ] {
                    check_opt_id(field, v)?;
                }
                check_manifest_ref("custody.manifest", c.asset.as_ref())?;
                if c.parents.len() > MAX_PARENTS {
                    return Err(Refusal::invalid(
                        "custody.parents",
                        format!(
                            "at most {MAX_PARENTS} parents; use a manifest-backed DERIVE per batch"
                        ),
                    ));
                }
            }
            EventBody::MaintenanceSession(m) => {
                check_id("maintenance_session.session_id", &m.session_id)?;
                check_id("maintenance_session.actor", &m.actor)?;
                check_id("maintenance_session.system_id", &m.system_id)?;
                check_opt_id("maintenance_session.on_behalf_of", &m.on_behalf_of)?;
                check_opt_id("maintenance_session.grant_id", &m.grant_id)?;
                if m.start <= 0 {
                    return Err(Refusal::invalid(
                        "maintenance_session.start",
                        "start must be a positive Unix time in nanoseconds",
                    ));
                }
                if let Some(end) = m.end {
                    if end < m.start {
                        return Err(Refusal::invalid(
                            "maintenance_session.end",
                            "end must not be before start (or 0 while open)",
                        ));
                    }
                }
            }
            EventBody::CustodyAttestation(a) => {
                check_id("custody_attestation.system_id", &a.system_id)?;
                if a.holdings.count > MAX_MANIFEST_MEMBERS {
                    return Err(Refusal::invalid(
                        "custody_attestation.holdings",
                        format!("a manifest has at most {MAX_MANIFEST_MEMBERS} members"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `is_strong_key` is whether `k` is a prime-order point: not of small
/// order and with no torsion component. Weak keys let anyone make
/// signatures that batch verification accepts, so the registry refuses
/// them.
pub fn is_strong_key(k: &ed25519_dalek::VerifyingKey) -> bool {
    !k.is_weak() && k.to_edwards().is_torsion_free()
}

/// `MAX_PARENTS` bounds the parents one DERIVE may name.
pub const MAX_PARENTS: usize = 64;

/// `EMPTY_MANIFEST_ROOT` is the root of the empty manifest, the RFC 6962
/// hash of an empty list: SHA-256 of no bytes.
pub const EMPTY_MANIFEST_ROOT: Digest = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `MAX_MANIFEST_MEMBERS` bounds a manifest.
pub const MAX_MANIFEST_MEMBERS: u64 = 1_000_000;

fn check_opt_id(field: &'static str, v: &str) -> Result<(), Refusal> {
    if v.is_empty() {
        Ok(())
    } else {
        check_id(field, v)
    }
}

fn check_manifest_ref(field: &'static str, a: Option<&AssetRef>) -> Result<(), Refusal> {
    if let Some(AssetRef::Manifest(m)) = a {
        if m.count == 0 || m.count > MAX_MANIFEST_MEMBERS {
            return Err(Refusal::invalid(
                field,
                format!(
                    "a manifest names 1 to {MAX_MANIFEST_MEMBERS} assets, not {}",
                    m.count
                ),
            ));
        }
    }
    Ok(())
}

fn check_id(field: &'static str, v: &str) -> Result<(), Refusal> {
    if is_valid_id(v) {
        Ok(())
    } else {
        Err(Refusal::invalid(
            field,
            format!(
                "{field} {} is not an opaque id (1-64 of A-Z a-z 0-9 . _ : -)",
                crate::quoted(v)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_manifest_root_is_the_rfc6962_hash_of_no_leaves() {
        use sha2::Digest as _;
        let h: [u8; 32] = sha2::Sha256::digest([]).into();
        assert_eq!(EMPTY_MANIFEST_ROOT, h);
    }

    #[test]
    fn weak_and_mixed_order_keys_are_refused() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let strong = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mixed = (strong.to_edwards() + EIGHT_TORSION[1])
            .compress()
            .to_bytes();
        let event = |public_key: [u8; 32]| Event {
            event_id: "00000000-0000-4000-8000-000000000001".into(),
            event_time: 1,
            reporter: "owner".into(),
            reporter_seq: 1,
            log_origin: "example.org/log".into(),
            body: EventBody::KeyAdded(KeyAdded {
                party_id: "cam".into(),
                public_key,
                valid_from: 0,
                valid_to: None,
            }),
        };
        assert!(event(strong.to_bytes()).check_shape().is_ok());
        for weak in [identity, mixed] {
            let r = event(weak).check_shape().unwrap_err();
            assert_eq!(r.kind, crate::RefusalKind::InvalidArgument);
            assert!(r.message.contains("weak"), "{r}");
        }
    }

    #[test]
    fn codes_and_names_round_trip_and_zero_is_unspecified() {
        for m in Modality::ALL {
            assert_eq!(Modality::from_code(m.code()), Some(*m));
            assert_eq!(Modality::from_name(m.name()), Some(*m));
        }
        for k in CustodyActionKind::ALL {
            assert_eq!(CustodyActionKind::from_code(k.code()), Some(*k));
        }
        assert_eq!(Modality::from_code(0), None);
        assert_eq!(SubjectClass::from_code(0), None);
        assert_eq!(Purpose::from_name("training"), None, "names are upper case");
    }
}
