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

use crate::{hex, CustodyActionKind, Digest, Modality, SubjectClass, Timestamp};

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
    /// Log indexes of the entries that prove it. A time-based rule's
    /// (late_reporting, unacknowledged_transfer, missing_attestation) ends
    /// with the POLICY_PUBLISHED whose window it applies, if one was
    /// published before the entry it judges.
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

/// `finding_subject` reads back the rule of a finding id and the entry it
/// names, if it names one ([`finding_id`]'s form; missing_attestation
/// names a system).
pub fn finding_subject(id: &str) -> Option<(Rule, Option<u64>)> {
    let mut parts = id.splitn(3, ':');
    let rule = Rule::from_name(parts.next()?)?;
    let entry = match rule {
        Rule::MissingAttestation => None,
        _ => Some(parts.next()?.parse().ok()?),
    };
    Some((rule, entry))
}

/// `Policy` holds the agreed windows the time-based rules use. The log
/// publishes it (`POLICY_PUBLISHED`, signed by the data owner); which one
/// applies to an entry is [`Policies::at`].
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

/// The longest window a policy may set: a hundred years, so that a time
/// plus a window never nears the end of `i64`.
pub const MAX_WINDOW: i64 = 100 * 365 * 24 * HOUR;

impl Default for Policy {
    /// The windows of a log that has published no policy: one hour, one
    /// hour, one day.
    fn default() -> Self {
        Self {
            receipt_window: HOUR,
            reporting_deadline: HOUR,
            attestation_period: 24 * HOUR,
        }
    }
}

impl Policy {
    /// `check` refuses a window that is not positive, or longer than
    /// [`MAX_WINDOW`].
    ///
    /// # Errors
    ///
    /// An `InvalidArgument` [`Refusal`] naming the window.
    pub fn check(&self) -> Result<(), crate::Refusal> {
        for (field, v) in [
            ("policy_published.receipt_window", self.receipt_window),
            (
                "policy_published.reporting_deadline",
                self.reporting_deadline,
            ),
            (
                "policy_published.attestation_period",
                self.attestation_period,
            ),
        ] {
            if v <= 0 || v > MAX_WINDOW {
                return Err(crate::Refusal::invalid(
                    field,
                    format!(
                        "{v} ns is not a window: give a positive number of nanoseconds, at most {MAX_WINDOW} (100 years)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `Policies` is the policy history of a log: which [`Policy`] applies to
/// each entry. An entry is judged by the last `POLICY_PUBLISHED` logged
/// before it, or by [`Policy::default`] if there is none, so a new policy
/// never changes what the entries before it were found to be.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policies {
    /// Each published policy with the entry that published it, in log
    /// order.
    published: Vec<(u64, Policy)>,
}

impl Policies {
    /// `publish` records `policy`, published by entry `index`; the
    /// entries after it use it. Entries are applied in log order; one
    /// applied again (a replay resumed) changes nothing.
    pub fn publish(&mut self, index: u64, policy: Policy) {
        if self.published.last().is_none_or(|(i, _)| *i < index) {
            self.published.push((index, policy));
        }
    }

    /// `at` is the policy that applies to entry `index`, and the entry
    /// that published it (`None`: the default).
    pub fn at(&self, index: u64) -> (Policy, Option<u64>) {
        let n = self.published.partition_point(|(i, _)| *i < index);
        match n.checked_sub(1).and_then(|k| self.published.get(k)) {
            Some((i, p)) => (*p, Some(*i)),
            None => (Policy::default(), None),
        }
    }

    /// `policy_at` is [`Policies::at`]'s policy alone.
    pub fn policy_at(&self, index: u64) -> Policy {
        self.at(index).0
    }

    /// `shortest_receipt_window` is the shortest receipt window any entry
    /// before `size` is judged by: no transfer among them is due sooner
    /// after it happened.
    pub fn shortest_receipt_window(&self, size: u64) -> i64 {
        self.published
            .iter()
            .filter(|(i, _)| *i < size)
            .map(|(_, p)| p.receipt_window)
            .chain([self.policy_at(0).receipt_window])
            .min()
            .unwrap_or(HOUR)
    }

    /// `published` is every published policy with its entry, in log
    /// order.
    pub fn published(&self) -> &[(u64, Policy)] {
        &self.published
    }
}

mod engine;
mod memory;
mod page;

pub use page::{FindingsFilter, FindingsPage, PageCutter};

pub use engine::{
    find_finding, findings_at, findings_page, held_birth, observe, observe_event, observe_members,
    raised_in, raised_page_by_scan, retention_start, unacknowledged, unacknowledged_page_by_scan,
    visit_findings_at, After, Attesting, Birth, FindingsDelta, FindingsHistory, FindingsOverlay,
    FindingsState, HeldRow, MemberFacts, Observer, Pending,
};
pub use memory::{FindingsEngine, MemoryFindings};
