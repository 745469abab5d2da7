//! Policy findings (DESIGN §6), derived from the log alone.
//!
//! [`FindingsEngine`] observes accepted events in log order, with the
//! registry as it stood when each was logged and the [`Effects`] that
//! `plan` computed. Rules about one event (an unauthorised transfer, a
//! boundary violation, purpose drift, late reporting, a sequence gap,
//! unexplained custody) become findings as the event is observed. Rules
//! about time (retention, receipts, attestations) keep what they need and
//! are evaluated by [`FindingsEngine::findings`] as of a given time. The
//! server and `custody audit` run this same code, so anyone who replays
//! the log gets the same findings.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{
    hex, AssetRef, CustodyActionKind, Digest, Effects, Event, EventBody, Modality, PartyKind,
    Registry, SubjectClass, Timestamp,
};

/// `Rule` is one policy check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[allow(missing_docs)]
pub enum Rule {
    UnauthorizedTransfer,
    BoundaryViolation,
    RetentionOverdue,
    UnexplainedCustody,
    UnacknowledgedTransfer,
    PurposeDrift,
    MissingAttestation,
    LateReporting,
    SequenceGap,
}

impl Rule {
    /// `ALL` lists every rule.
    pub const ALL: [Rule; 9] = [
        Rule::UnauthorizedTransfer,
        Rule::BoundaryViolation,
        Rule::RetentionOverdue,
        Rule::UnexplainedCustody,
        Rule::UnacknowledgedTransfer,
        Rule::PurposeDrift,
        Rule::MissingAttestation,
        Rule::LateReporting,
        Rule::SequenceGap,
    ];

    /// `name` is the rule's snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::UnauthorizedTransfer => "unauthorized_transfer",
            Rule::BoundaryViolation => "boundary_violation",
            Rule::RetentionOverdue => "retention_overdue",
            Rule::UnexplainedCustody => "unexplained_custody",
            Rule::UnacknowledgedTransfer => "unacknowledged_transfer",
            Rule::PurposeDrift => "purpose_drift",
            Rule::MissingAttestation => "missing_attestation",
            Rule::LateReporting => "late_reporting",
            Rule::SequenceGap => "sequence_gap",
        }
    }

    /// `from_name` parses [`Rule::name`].
    pub fn from_name(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// `Finding` is one policy finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// Stable id: the rule, the entry and, where one entry yields several
    /// findings, the asset and system.
    pub id: String,
    /// The rule.
    pub rule: Rule,
    /// Log indexes of the entries that prove it.
    pub entries: Vec<u64>,
    /// The party it concerns, if one.
    pub party: Option<String>,
    /// The system it concerns, if one.
    pub system: Option<String>,
    /// The asset it concerns, if one.
    pub asset: Option<Digest>,
    /// The grant involved; `None` for none.
    pub grant: Option<String>,
    /// The retention rule involved; `None` for none.
    pub retention_rule: Option<String>,
    /// When it arose: the event's time, or the deadline that passed.
    pub at: Timestamp,
    /// A short explanation made of codes and ids only.
    pub detail: String,
    /// The reporter of the entry the finding is about, when it reported
    /// another party's action as observed (DESIGN §3): the finding's party
    /// did it, this party saw it.
    #[serde(default)]
    pub observed_by: Option<String>,
    /// The system on which `observed_by` observed it.
    #[serde(default)]
    pub observed_on: Option<String>,
}

/// `sequence_gap` is how many sequence numbers are missing between a
/// reporter's highest earlier number `last` and the next one, `seq`:
/// `Some(n)` with n ≥ 1 when `seq` skips, else `None`. The arithmetic is
/// checked, so a number after `u64::MAX` (or a repeat, or a step back) is
/// never a gap. The rule and the bundle verifier both call it.
pub fn sequence_gap(last: u64, seq: u64) -> Option<u64> {
    let next = last.checked_add(1)?;
    (seq > next).then(|| seq - next)
}

/// `TransferCheck` is what a grant must cover for one COPY or MOVE
/// (DESIGN §6, unauthorised transfer): the receiving party and system,
/// the action, purpose and time, and the classes of what moved.
pub struct TransferCheck<'a> {
    /// The action, COPY or MOVE.
    pub action: CustodyActionKind,
    /// The receiving party: the destination system's owner.
    pub recipient: &'a str,
    /// The destination system.
    pub to_system: &'a str,
    /// The stated purpose.
    pub purpose: Option<crate::Purpose>,
    /// When it happened.
    pub at: Timestamp,
    /// The classes of what moved, with the entry that created each class's
    /// first asset and that asset (so a finding can cite it).
    pub classes: &'a [(Modality, SubjectClass, u64, Digest)],
}

/// `Uncovered` is why a grant does not cover a transfer, in the order the
/// rule checks. Its [`Display`](std::fmt::Display) is the finding's
/// detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncovered {
    /// The recipient is not the grantee or an agent of it.
    Recipient {
        /// The receiving party.
        recipient: String,
        /// The grant's grantee.
        grantee: String,
    },
    /// The action is not granted.
    Action(CustodyActionKind),
    /// The destination system is not granted.
    Destination(String),
    /// The purpose is not granted (`None`: none stated).
    Purpose(Option<crate::Purpose>),
    /// The time is outside the grant's validity.
    Validity,
    /// An asset's modality is not granted (with the creating entry and
    /// the asset).
    Modality(Modality, u64, Digest),
    /// An asset's subject class is not granted (with the creating entry
    /// and the asset).
    SubjectClass(SubjectClass, u64, Digest),
}

impl std::fmt::Display for Uncovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uncovered::Recipient { recipient, grantee } => write!(
                f,
                "recipient {recipient} is not the grantee {grantee} or its agent"
            ),
            Uncovered::Action(k) => write!(f, "action {} not granted", k.name()),
            Uncovered::Destination(s) => write!(f, "destination {s} not granted"),
            Uncovered::Purpose(p) => {
                write!(f, "purpose {} not granted", p.map_or("none", |p| p.name()))
            }
            Uncovered::Validity => write!(f, "outside the grant's validity"),
            Uncovered::Modality(m, _, _) => write!(f, "modality {} not granted", m.name()),
            Uncovered::SubjectClass(c, _, _) => {
                write!(f, "subject class {} not granted", c.name())
            }
        }
    }
}

/// `uncovered` is the first reason grant `g` does not cover transfer `t`,
/// or `None` if it covers it. An empty list in the grant allows any value.
/// The findings engine and the bundle verifier both call it.
pub fn uncovered(
    registry_acts_for: impl Fn(&str, &str) -> bool,
    g: &crate::GrantIssued,
    t: &TransferCheck<'_>,
) -> Option<Uncovered> {
    if !registry_acts_for(t.recipient, &g.grantee) {
        return Some(Uncovered::Recipient {
            recipient: t.recipient.to_owned(),
            grantee: g.grantee.clone(),
        });
    }
    if !g.actions.is_empty() && !g.actions.contains(&t.action) {
        return Some(Uncovered::Action(t.action));
    }
    if !g.systems.is_empty() && !g.systems.iter().any(|s| s == t.to_system) {
        return Some(Uncovered::Destination(t.to_system.to_owned()));
    }
    if !g.purposes.is_empty() && !t.purpose.is_some_and(|p| g.purposes.contains(&p)) {
        return Some(Uncovered::Purpose(t.purpose));
    }
    if t.at < g.valid_from || g.valid_to.is_some_and(|to| t.at >= to) {
        return Some(Uncovered::Validity);
    }
    for (m, c, by, d) in t.classes {
        if !g.modalities.is_empty() && !g.modalities.contains(m) {
            return Some(Uncovered::Modality(*m, *by, *d));
        }
        if !g.subject_classes.is_empty() && !g.subject_classes.contains(c) {
            return Some(Uncovered::SubjectClass(*c, *by, *d));
        }
    }
    None
}

/// `Reason` is why a finding was raised, one variant per reason a rule
/// gives. Its [`Display`](std::fmt::Display) is the finding's `detail`:
/// the engine and the bundle verifier both render a `Reason`, so the words
/// are written once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// late_reporting: logged `delay` after it happened, past `deadline`
    /// (both in nanoseconds).
    LateReporting {
        /// Integration time minus event time.
        delay: i64,
        /// The reporting deadline.
        deadline: i64,
    },
    /// sequence_gap: `seq` follows `last`, skipping numbers.
    SequenceGap {
        /// The entry's sequence number.
        seq: u64,
        /// The reporter's highest earlier sequence number.
        last: u64,
    },
    /// unexplained_custody.
    Unexplained,
    /// boundary_violation: the destination's breaches
    /// ([`crate::SystemRegistered::boundary_breaches`]).
    Boundary(Vec<&'static str>),
    /// unauthorized_transfer: the transfer names no grant.
    NoGrant,
    /// unauthorized_transfer: the named grant was never issued.
    GrantNeverIssued(String),
    /// unauthorized_transfer: the grant was revoked by this entry first.
    GrantRevoked(u64),
    /// unauthorized_transfer: the grant does not cover the transfer.
    Uncovered(Uncovered),
    /// unauthorized_transfer: an onward transfer the grant forbids.
    OnwardTransfer,
    /// purpose_drift: the purpose is not granted.
    PurposeNotGranted(crate::Purpose),
    /// retention_overdue: held past the rule's `max_age` (nanoseconds).
    PastMaxAge(i64),
    /// unacknowledged_transfer: no receipt by the time asked about.
    NoReceipt,
    /// unacknowledged_transfer: the receipt came after the window.
    ReceiptAfterWindow,
    /// missing_attestation: none for this long (nanoseconds).
    NoAttestation(i64),
}

const SEC: i64 = 1_000_000_000;

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::LateReporting { delay, deadline } => write!(
                f,
                "logged {} s after it happened; the deadline is {} s",
                delay / SEC,
                deadline / SEC
            ),
            Reason::SequenceGap { seq, last } => write!(
                f,
                "sequence number {seq} follows {last}; {} missing",
                sequence_gap(*last, *seq).unwrap_or_default()
            ),
            Reason::Unexplained => {
                write!(f, "acts on an asset the log never showed on this system")
            }
            Reason::Boundary(why) => write!(f, "destination {}", why.join(" ")),
            Reason::NoGrant => write!(f, "no grant named"),
            Reason::GrantNeverIssued(g) => write!(f, "grant {g} was never issued"),
            Reason::GrantRevoked(r) => write!(f, "grant revoked by entry {r}"),
            Reason::Uncovered(u) => u.fmt(f),
            Reason::OnwardTransfer => {
                write!(f, "onward transfer beyond max_onward_transfers 0")
            }
            Reason::PurposeNotGranted(p) => write!(f, "purpose {} is not granted", p.name()),
            Reason::PastMaxAge(a) => write!(f, "held past max_age {} s", a / SEC),
            Reason::NoReceipt => write!(f, "no receipt"),
            Reason::ReceiptAfterWindow => write!(f, "receipt after the window"),
            Reason::NoAttestation(d) => write!(f, "no custody attestation for {} s", d / SEC),
        }
    }
}

/// `finding_id` is a finding's stable id: the rule and the entry it is
/// about (for retention, the entry that opened the interval) and, where
/// one entry can give several findings of a rule, the asset and system;
/// for missing_attestation, the system alone. The engine and the bundle
/// verifier both call it.
pub fn finding_id(rule: Rule, entry: u64, asset: Option<&Digest>, system: Option<&str>) -> String {
    let asset = asset.map(|a| hex(a)).unwrap_or_default();
    let system = system.unwrap_or_default();
    match rule {
        Rule::UnexplainedCustody | Rule::RetentionOverdue => {
            format!("{}:{entry}:{asset}:{system}", rule.name())
        }
        Rule::MissingAttestation => format!("{}:{system}", rule.name()),
        r => format!("{}:{entry}", r.name()),
    }
}

/// `Policy` holds the agreed windows the time-based rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// A transfer must be acknowledged within this long.
    pub receipt_window: i64,
    /// An event must be logged within this long of happening.
    pub reporting_deadline: i64,
    /// A party holding data on its own system must attest its holdings
    /// at least this often.
    pub attestation_period: i64,
}

const HOUR: i64 = 3_600_000_000_000;

impl Default for Policy {
    fn default() -> Self {
        Self {
            receipt_window: HOUR,
            reporting_deadline: HOUR,
            attestation_period: 24 * HOUR,
        }
    }
}

/// A custody interval that a retention rule may apply to, open or closed:
/// "as of T" needs the intervals that were open at T, and a later DELETE
/// must not hide that an interval was open then.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    party: String,
    from: Timestamp,
    /// Event time of the event that closed it, if one did.
    to: Option<Timestamp>,
    /// Log index of the entry that closed it, if one did: the log read up
    /// to an earlier size still shows it open.
    #[serde(default)]
    closed_by: Option<u64>,
    classes: Vec<(Modality, SubjectClass)>,
    /// When the asset came into being (the retention clock's start for
    /// rules counted from capture).
    born: Timestamp,
    born_by: u64,
}

/// `Birth` is when an asset came into being (time, entry) and the
/// classes a retention rule may select it by.
type Birth = (Timestamp, u64, Vec<(Modality, SubjectClass)>);

/// `Observer` is who reported another party's action, and on which system.
type Observer = Option<(String, String)>;

/// A transfer waiting for (or given) its receipt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    at: Timestamp,
    party: String,
    system: String,
    asset: Option<Digest>,
    receipt: Option<(Timestamp, u64)>,
    observed: Observer,
}

/// Custody of a system owned by a party other than the data owner, for
/// periodic attestations.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Attesting {
    party: String,
    since: Timestamp,
    since_by: u64,
    /// Every attestation of the system, (event time, entry), in log order.
    attestations: Vec<(Timestamp, u64)>,
}

/// `Point` is where the log is read: its first `size` entries, as of
/// event time `time`.
#[derive(Debug, Clone, Copy)]
struct Point {
    size: u64,
    time: Timestamp,
}

/// `FindingsEngine` derives findings from observed events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FindingsEngine {
    policy: Policy,
    /// Findings about single events, in log order.
    immediate: Vec<Finding>,
    /// Every custody interval, open or closed, by (opening entry, asset,
    /// system).
    held: BTreeMap<(u64, Digest, String), Held>,
    /// The opening entry of each open interval, by (asset, system).
    open: HashMap<(Digest, String), u64>,
    /// When each asset came into being, and its classes (a derived asset
    /// also carries its parents' classes and earliest birth).
    born: HashMap<Digest, Birth>,
    /// Each asset's own class and the entry that created it, for grant
    /// coverage.
    meta: HashMap<Digest, (Modality, SubjectClass, u64)>,
    /// Transfers by log index.
    transfers: BTreeMap<u64, Pending>,
    /// Systems held by parties other than the data owner.
    attesting: BTreeMap<String, Attesting>,
    /// Last sequence number seen per reporter.
    seqs: HashMap<String, u64>,
    /// The members of each legal hold that names a manifest, by hold id.
    hold_members: HashMap<String, HashSet<Digest>>,
}

fn is_vendor(registry: &Registry, party: &str) -> bool {
    let mut at = party;
    for _ in 0..64 {
        match registry.party(at) {
            Some(p) => {
                if matches!(
                    p.kind,
                    PartyKind::Prime | PartyKind::Subcontractor | PartyKind::Partner
                ) {
                    return true;
                }
                if p.acts_on_behalf_of.is_empty() {
                    return false;
                }
                at = &p.acts_on_behalf_of;
            }
            None => return false,
        }
    }
    false
}

impl FindingsEngine {
    /// `new` is an engine with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// `policy` is the engine's policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    fn push(&mut self, f: Finding) {
        self.immediate.push(f);
    }

    /// `observe` records the event accepted at `index`, integrated at
    /// `integrated`, with `registry` as it stood before the event and the
    /// event's effects.
    pub fn observe(
        &mut self,
        index: u64,
        event: &Event,
        integrated: Timestamp,
        registry: &Registry,
        fx: &Effects,
    ) {
        let t = event.event_time;
        let observed: Observer = fx
            .observed_on
            .as_ref()
            .map(|s| (event.reporter.clone(), s.clone()));
        // Late reporting and sequence gaps apply to every event.
        let delay = integrated.saturating_sub(t);
        if delay > self.policy.reporting_deadline {
            self.push(Finding {
                id: finding_id(Rule::LateReporting, index, None, None),
                rule: Rule::LateReporting,
                entries: vec![index],
                party: Some(event.reporter.clone()),
                system: None,
                asset: None,
                grant: None,
                retention_rule: None,
                at: t.saturating_add(self.policy.reporting_deadline),
                detail: Reason::LateReporting {
                    delay,
                    deadline: self.policy.reporting_deadline,
                }
                .to_string(),
                observed_by: None,
                observed_on: None,
            });
        }
        if event.reporter_seq != 0 {
            let last = self.seqs.get(&event.reporter).copied().unwrap_or(0);
            if sequence_gap(last, event.reporter_seq).is_some() {
                self.push(Finding {
                    id: finding_id(Rule::SequenceGap, index, None, None),
                    rule: Rule::SequenceGap,
                    entries: vec![index],
                    party: Some(event.reporter.clone()),
                    system: None,
                    asset: None,
                    grant: None,
                    retention_rule: None,
                    at: t,
                    detail: Reason::SequenceGap {
                        seq: event.reporter_seq,
                        last,
                    }
                    .to_string(),
                    observed_by: None,
                    observed_on: None,
                });
            }
            if event.reporter_seq > last {
                self.seqs.insert(event.reporter.clone(), event.reporter_seq);
            }
        }
        for (asset, system) in &fx.unexplained {
            self.push(Finding {
                id: finding_id(Rule::UnexplainedCustody, index, Some(asset), Some(system)),
                rule: Rule::UnexplainedCustody,
                entries: vec![index],
                party: match &event.body {
                    EventBody::Custody(c) => Some(c.actor.clone()),
                    _ => Some(event.reporter.clone()),
                },
                system: Some(system.clone()),
                asset: Some(*asset),
                grant: None,
                retention_rule: None,
                at: t,
                detail: Reason::Unexplained.to_string(),
                observed_by: observed.as_ref().map(|o| o.0.clone()),
                observed_on: observed.as_ref().map(|o| o.1.clone()),
            });
        }

        // Custody state the time-based rules need.
        for (d, m) in &fx.created {
            let mut classes = vec![(m.modality, m.subject_class)];
            let mut born = (t, index);
            if let EventBody::Custody(c) = &event.body {
                for p in &c.parents {
                    if let Some((pt, pi, pc)) = self.born.get(&p.digest) {
                        if *pt < born.0 {
                            born = (*pt, *pi);
                        }
                        classes.extend(pc.iter().copied());
                    }
                }
            }
            classes.sort_by_key(|(m, s)| (m.code(), s.code()));
            classes.dedup();
            self.born.insert(*d, (born.0, born.1, classes));
            self.meta
                .insert(*d, (m.modality, m.subject_class, m.created_by));
        }
        for i in &fx.closed {
            if let Some(opened_by) = self.open.remove(&(i.asset, i.system.clone())) {
                if let Some(h) = self.held.get_mut(&(opened_by, i.asset, i.system.clone())) {
                    h.to = i.to;
                    h.closed_by = Some(index);
                }
            }
        }
        for i in &fx.opened {
            let (born, born_by, classes) = self.born.get(&i.asset).cloned().unwrap_or_else(|| {
                let classes = match (i.modality, i.subject_class) {
                    (Some(m), Some(s)) => vec![(m, s)],
                    _ => Vec::new(),
                };
                (i.from, i.opened_by, classes)
            });
            self.open.insert((i.asset, i.system.clone()), i.opened_by);
            self.held.insert(
                (i.opened_by, i.asset, i.system.clone()),
                Held {
                    party: i.party.clone(),
                    from: i.from,
                    to: None,
                    closed_by: None,
                    classes,
                    born,
                    born_by,
                },
            );
            if i.party != registry.owner() && !self.attesting.contains_key(&i.system) {
                self.attesting.insert(
                    i.system.clone(),
                    Attesting {
                        party: i.party.clone(),
                        since: i.from,
                        since_by: i.opened_by,
                        attestations: Vec::new(),
                    },
                );
            }
        }

        match &event.body {
            EventBody::Custody(c) => match c.action {
                CustodyActionKind::Copy | CustodyActionKind::Move => {
                    self.transfer_rules(index, event, registry, c, fx, &observed);
                    let asset = match c.asset {
                        Some(AssetRef::One(d)) => Some(d),
                        _ => None,
                    };
                    self.transfers.insert(
                        index,
                        Pending {
                            at: t,
                            party: c.actor.clone(),
                            system: c.to_system.clone(),
                            asset,
                            receipt: None,
                            observed: observed.clone(),
                        },
                    );
                }
                CustodyActionKind::Receipt => {
                    if let Some(p) = c.receipt_of.and_then(|of| self.transfers.get_mut(&of)) {
                        p.receipt = Some((t, index));
                    }
                }
                CustodyActionKind::Access | CustodyActionKind::Use => {
                    self.purpose_rule(index, event, registry, c, &observed);
                }
                _ => {}
            },
            EventBody::CustodyAttestation(a) => {
                if let Some(s) = self.attesting.get_mut(&a.system_id) {
                    s.attestations.push((t, index));
                }
            }
            EventBody::LegalHold(h) if !h.released && !fx.held_assets.is_empty() => {
                self.hold_members
                    .insert(h.hold_id.clone(), fx.held_assets.iter().copied().collect());
            }
            _ => {}
        }
    }

    fn transfer_rules(
        &mut self,
        index: u64,
        event: &Event,
        registry: &Registry,
        c: &crate::CustodyAction,
        fx: &Effects,
        observed: &Observer,
    ) {
        let t = event.event_time;
        let asset = match c.asset {
            Some(AssetRef::One(d)) => Some(d),
            _ => None,
        };
        let (observed_by, observed_on) = match observed {
            Some((b, o)) => (Some(b.clone()), Some(o.clone())),
            None => (None, None),
        };
        let dest = registry.system(&c.to_system);
        if let Some(d) = dest {
            let why = d.system.boundary_breaches();
            if !why.is_empty() {
                self.push(Finding {
                    id: finding_id(Rule::BoundaryViolation, index, None, None),
                    rule: Rule::BoundaryViolation,
                    entries: vec![index, d.registered_at],
                    party: Some(c.actor.clone()),
                    system: Some(c.to_system.clone()),
                    asset,
                    grant: (!c.grant_id.is_empty()).then(|| c.grant_id.clone()),
                    retention_rule: None,
                    at: t,
                    detail: Reason::Boundary(why).to_string(),
                    observed_by: observed_by.clone(),
                    observed_on: observed_on.clone(),
                });
            }
        }

        // The data owner's own agents moving data between the owner's own
        // systems need no grant.
        let internal = dest.is_some_and(|d| d.system.owner_party == registry.owner())
            && !is_vendor(registry, &c.actor);
        if internal {
            return;
        }
        let recipient = dest.map_or("", |d| d.system.owner_party.as_str());
        let mut entries = vec![index];
        let mut cited_asset = asset;
        let why: Option<Reason> = if c.grant_id.is_empty() {
            Some(Reason::NoGrant)
        } else {
            match registry.grant(&c.grant_id) {
                None => Some(Reason::GrantNeverIssued(c.grant_id.clone())),
                Some(g) => {
                    entries.push(g.issued_at);
                    let gr = &g.grant;
                    let source_owner = registry
                        .system(&c.from_system)
                        .map(|s| s.system.owner_party.clone());
                    // The classes of what moved: each distinct class once,
                    // with the first asset of it, in the entry's order.
                    let mut classes: Vec<(Modality, SubjectClass, u64, Digest)> = Vec::new();
                    for d in &fx.assets {
                        if let Some((m, s, by)) = self.meta.get(d) {
                            if !classes.iter().any(|(m2, s2, _, _)| (m2, s2) == (m, s)) {
                                classes.push((*m, *s, *by, *d));
                            }
                        }
                    }
                    let check = TransferCheck {
                        action: c.action,
                        recipient,
                        to_system: &c.to_system,
                        purpose: c.purpose,
                        at: t,
                        classes: &classes,
                    };
                    if let Some(r) = g.revoked_at.filter(|r| *r < index) {
                        entries.push(r);
                        Some(Reason::GrantRevoked(r))
                    } else if let Some(u) = uncovered(|a, p| registry.acts_for(a, p), gr, &check) {
                        if let Uncovered::Modality(_, by, d) | Uncovered::SubjectClass(_, by, d) =
                            &u
                        {
                            entries.push(*by);
                            cited_asset = Some(*d);
                        }
                        Some(Reason::Uncovered(u))
                    } else if gr.max_onward_transfers == 0
                        && source_owner.is_some_and(|o| is_vendor(registry, &o))
                    {
                        Some(Reason::OnwardTransfer)
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(why) = why {
            self.push(Finding {
                id: finding_id(Rule::UnauthorizedTransfer, index, None, None),
                rule: Rule::UnauthorizedTransfer,
                entries,
                party: Some(c.actor.clone()),
                system: Some(c.to_system.clone()),
                asset: cited_asset,
                grant: (!c.grant_id.is_empty()).then(|| c.grant_id.clone()),
                retention_rule: None,
                at: t,
                detail: why.to_string(),
                observed_by,
                observed_on,
            });
        }
    }

    fn purpose_rule(
        &mut self,
        index: u64,
        event: &Event,
        registry: &Registry,
        c: &crate::CustodyAction,
        observed: &Observer,
    ) {
        let Some(purpose) = c.purpose else {
            return;
        };
        let grant = if c.grant_id.is_empty() {
            if !is_vendor(registry, &c.actor) {
                return;
            }
            None
        } else {
            registry.grant(&c.grant_id)
        };
        let covered = grant
            .is_some_and(|g| g.grant.purposes.is_empty() || g.grant.purposes.contains(&purpose));
        if !covered {
            let mut entries = vec![index];
            if let Some(g) = grant {
                entries.push(g.issued_at);
            }
            self.push(Finding {
                id: finding_id(Rule::PurposeDrift, index, None, None),
                rule: Rule::PurposeDrift,
                entries,
                party: Some(c.actor.clone()),
                system: Some(c.from_system.clone()),
                asset: match c.asset {
                    Some(AssetRef::One(d)) => Some(d),
                    _ => None,
                },
                grant: (!c.grant_id.is_empty()).then(|| c.grant_id.clone()),
                retention_rule: None,
                at: event.event_time,
                detail: Reason::PurposeNotGranted(purpose).to_string(),
                observed_by: observed.as_ref().map(|o| o.0.clone()),
                observed_on: observed.as_ref().map(|o| o.1.clone()),
            });
        }
    }

    /// `held_by_hold` says whether a legal hold in force at `as_of` covers
    /// `asset` on `system`. A hold covers what it names: its system, its
    /// assets (one digest or a manifest's members), or those assets on
    /// that system when it names both.
    fn held_by_hold(&self, registry: &Registry, asset: &Digest, system: &str, at: Point) -> bool {
        registry.holds().any(|h| {
            if h.placed_at >= at.size || h.placed_time > at.time {
                return false;
            }
            let released = h
                .released_at
                .zip(h.released_time)
                .is_some_and(|(i, t)| i < at.size && t <= at.time);
            if released {
                return false;
            }
            let on_system = h.hold.system_id.is_empty() || h.hold.system_id == system;
            let names_asset = match &h.hold.assets {
                None => true,
                Some(AssetRef::One(d)) => d == asset,
                Some(AssetRef::Manifest(_)) => self
                    .hold_members
                    .get(&h.hold.hold_id)
                    .is_some_and(|m| m.contains(asset)),
            };
            on_system && names_asset
        })
    }

    /// `findings` is every finding as of `as_of` over every entry observed
    /// (see [`FindingsEngine::findings_at`]).
    pub fn findings(&self, as_of: Timestamp, registry: &Registry) -> Vec<Finding> {
        self.findings_at(u64::MAX, as_of, registry)
    }

    /// `findings_at` is every finding as of `as_of` that the log's first
    /// `size` entries support (DESIGN §6): exactly what a replay of those
    /// entries alone gives, however many entries the engine has observed
    /// since. Findings about single events that happened by then;
    /// retention, receipts and attestations evaluated at `as_of` from the
    /// events among those entries that happened by then, so that a later
    /// DELETE, a hold placed later, a newer attestation or a later entry
    /// never changes the answer. Ordered by time and id.
    pub fn findings_at(&self, size: u64, as_of: Timestamp, registry: &Registry) -> Vec<Finding> {
        let at = Point { size, time: as_of };
        let mut out: Vec<Finding> = self
            .immediate
            .iter()
            .filter(|f| f.at <= as_of && f.entries.iter().all(|e| *e < size))
            .cloned()
            .collect();
        let p = self.policy;

        // Retention: intervals open at `as_of` past their rule's max age,
        // unless a hold in force then covers them.
        for ((opened_by, asset, system), h) in &self.held {
            if *opened_by >= size || h.from > as_of {
                continue;
            }
            let closed = h
                .closed_by
                .zip(h.to)
                .is_some_and(|(i, to)| i < size && to <= as_of);
            if closed {
                continue;
            }
            let rule = registry
                .rules()
                .filter(|r| r.published_at < size && r.published_time <= as_of)
                .filter(|r| {
                    let rr = &r.rule;
                    (rr.system_id.is_empty() || rr.system_id == *system)
                        && h.classes.iter().any(|(m, s)| {
                            rr.modality.is_none_or(|x| x == *m)
                                && rr.subject_class.is_none_or(|x| x == *s)
                        })
                })
                .min_by_key(|r| (r.rule.max_age, r.rule.rule_id.clone()));
            let Some(rule) = rule else {
                continue;
            };
            let start = match rule.rule.clock {
                crate::RetentionClock::Capture => h.born,
                crate::RetentionClock::CustodyStart => h.from,
            };
            let due = start.saturating_add(rule.rule.max_age);
            if due >= as_of || self.held_by_hold(registry, asset, system, at) {
                continue;
            }
            let mut entries = vec![*opened_by, rule.published_at];
            if h.born_by != *opened_by {
                entries.insert(0, h.born_by);
            }
            out.push(Finding {
                id: finding_id(
                    Rule::RetentionOverdue,
                    *opened_by,
                    Some(asset),
                    Some(system),
                ),
                rule: Rule::RetentionOverdue,
                entries,
                party: Some(h.party.clone()),
                system: Some(system.clone()),
                asset: Some(*asset),
                grant: None,
                retention_rule: Some(rule.rule.rule_id.clone()),
                at: due,
                detail: Reason::PastMaxAge(rule.rule.max_age).to_string(),
                observed_by: None,
                observed_on: None,
            });
        }

        // Transfers without a receipt in the window.
        for (index, t) in self.transfers.range(..size) {
            let due = t.at.saturating_add(p.receipt_window);
            if due >= as_of {
                continue;
            }
            // A receipt that happened after `as_of`, or is logged at or
            // past `size`, is not in the log as read then.
            let receipt = t.receipt.filter(|(rt, ri)| *rt <= as_of && *ri < size);
            let late = match receipt {
                None => true,
                Some((rt, _)) => rt > due,
            };
            if late {
                let mut entries = vec![*index];
                if let Some((_, ri)) = receipt {
                    entries.push(ri);
                }
                out.push(Finding {
                    id: finding_id(Rule::UnacknowledgedTransfer, *index, None, None),
                    rule: Rule::UnacknowledgedTransfer,
                    entries,
                    party: Some(t.party.clone()),
                    system: Some(t.system.clone()),
                    asset: t.asset,
                    grant: None,
                    retention_rule: None,
                    at: due,
                    detail: match receipt {
                        None => Reason::NoReceipt,
                        Some(_) => Reason::ReceiptAfterWindow,
                    }
                    .to_string(),
                    observed_by: t.observed.as_ref().map(|o| o.0.clone()),
                    observed_on: t.observed.as_ref().map(|o| o.1.clone()),
                });
            }
        }

        // Parties holding data on their own systems must attest.
        for (system, a) in &self.attesting {
            if a.since_by >= size || a.since > as_of {
                continue;
            }
            let latest = a
                .attestations
                .iter()
                .filter(|(t, i)| *t <= as_of && *i < size)
                .max_by_key(|(t, i)| (*t, *i))
                .copied();
            let last = latest.map_or(a.since, |(t, _)| t);
            let due = last.saturating_add(p.attestation_period);
            if due >= as_of {
                continue;
            }
            let mut entries = vec![a.since_by];
            if let Some((_, i)) = latest {
                entries.push(i);
            }
            out.push(Finding {
                id: finding_id(Rule::MissingAttestation, a.since_by, None, Some(system)),
                rule: Rule::MissingAttestation,
                entries,
                party: Some(a.party.clone()),
                system: Some(system.clone()),
                asset: None,
                grant: None,
                retention_rule: None,
                at: due,
                detail: Reason::NoAttestation(as_of - last).to_string(),
                observed_by: None,
                observed_on: None,
            });
        }
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        out
    }
}
