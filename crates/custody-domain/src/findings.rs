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

use std::collections::{BTreeMap, HashMap};

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

/// An open custody interval that a retention rule may apply to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Held {
    party: String,
    from: Timestamp,
    opened_by: u64,
    classes: Vec<(Modality, SubjectClass)>,
    /// When the asset came into being (the retention clock's start for
    /// rules counted from capture).
    born: Timestamp,
    born_by: u64,
}

/// `Birth` is when an asset came into being (time, entry) and the
/// classes a retention rule may select it by.
type Birth = (Timestamp, u64, Vec<(Modality, SubjectClass)>);

/// A transfer waiting for (or given) its receipt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    at: Timestamp,
    party: String,
    system: String,
    asset: Option<Digest>,
    receipt: Option<(Timestamp, u64)>,
}

/// Custody of a system owned by a party other than the data owner, for
/// periodic attestations.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Attesting {
    party: String,
    since: Timestamp,
    since_by: u64,
    last: Option<(Timestamp, u64)>,
}

/// `FindingsEngine` derives findings from observed events.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FindingsEngine {
    policy: Policy,
    /// Findings about single events, in log order.
    immediate: Vec<Finding>,
    /// Open intervals by (asset, system).
    held: HashMap<(Digest, String), Held>,
    /// When each asset came into being, and its classes (a derived asset
    /// also carries its parents' classes and earliest birth).
    born: HashMap<Digest, Birth>,
    /// Transfers by log index.
    transfers: BTreeMap<u64, Pending>,
    /// Systems held by parties other than the data owner.
    attesting: BTreeMap<String, Attesting>,
    /// Last sequence number seen per reporter.
    seqs: HashMap<String, u64>,
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
        // Late reporting and sequence gaps apply to every event.
        if integrated - t > self.policy.reporting_deadline {
            self.push(Finding {
                id: format!("late_reporting:{index}"),
                rule: Rule::LateReporting,
                entries: vec![index],
                party: Some(event.reporter.clone()),
                system: None,
                asset: None,
                grant: None,
                retention_rule: None,
                at: t.saturating_add(self.policy.reporting_deadline),
                detail: format!(
                    "logged {} s after it happened; the deadline is {} s",
                    (integrated - t) / 1_000_000_000,
                    self.policy.reporting_deadline / 1_000_000_000
                ),
            });
        }
        if event.reporter_seq != 0 {
            let last = self.seqs.get(&event.reporter).copied().unwrap_or(0);
            if event.reporter_seq > last + 1 {
                self.push(Finding {
                    id: format!("sequence_gap:{index}"),
                    rule: Rule::SequenceGap,
                    entries: vec![index],
                    party: Some(event.reporter.clone()),
                    system: None,
                    asset: None,
                    grant: None,
                    retention_rule: None,
                    at: t,
                    detail: format!(
                        "sequence number {} follows {last}; {} missing",
                        event.reporter_seq,
                        event.reporter_seq - last - 1
                    ),
                });
            }
            if event.reporter_seq > last {
                self.seqs.insert(event.reporter.clone(), event.reporter_seq);
            }
        }
        for (asset, system) in &fx.unexplained {
            self.push(Finding {
                id: format!("unexplained_custody:{index}:{}:{system}", hex(asset)),
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
                detail: "acts on an asset the log never showed on this system".into(),
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
            classes.dedup();
            self.born.insert(*d, (born.0, born.1, classes));
        }
        for i in &fx.closed {
            self.held.remove(&(i.asset, i.system.clone()));
        }
        for i in &fx.opened {
            let (born, born_by, classes) = self.born.get(&i.asset).cloned().unwrap_or_else(|| {
                let classes = match (i.modality, i.subject_class) {
                    (Some(m), Some(s)) => vec![(m, s)],
                    _ => Vec::new(),
                };
                (i.from, i.opened_by, classes)
            });
            self.held.insert(
                (i.asset, i.system.clone()),
                Held {
                    party: i.party.clone(),
                    from: i.from,
                    opened_by: i.opened_by,
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
                        last: None,
                    },
                );
            }
        }

        match &event.body {
            EventBody::Custody(c) => match c.action {
                CustodyActionKind::Copy | CustodyActionKind::Move => {
                    self.transfer_rules(index, event, registry, c);
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
                        },
                    );
                }
                CustodyActionKind::Receipt => {
                    if let Some(p) = c.receipt_of.and_then(|of| self.transfers.get_mut(&of)) {
                        p.receipt = Some((t, index));
                    }
                }
                CustodyActionKind::Access | CustodyActionKind::Use => {
                    self.purpose_rule(index, event, registry, c);
                }
                _ => {}
            },
            EventBody::CustodyAttestation(a) => {
                if let Some(s) = self.attesting.get_mut(&a.system_id) {
                    s.last = Some((t, index));
                }
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
    ) {
        let t = event.event_time;
        let asset = match c.asset {
            Some(AssetRef::One(d)) => Some(d),
            _ => None,
        };
        let dest = registry.system(&c.to_system);
        if let Some(d) = dest {
            let why = d.system.boundary_breaches();
            if !why.is_empty() {
                self.push(Finding {
                    id: format!("boundary_violation:{index}"),
                    rule: Rule::BoundaryViolation,
                    entries: vec![index, d.registered_at],
                    party: Some(c.actor.clone()),
                    system: Some(c.to_system.clone()),
                    asset,
                    grant: (!c.grant_id.is_empty()).then(|| c.grant_id.clone()),
                    retention_rule: None,
                    at: t,
                    detail: format!("destination {}", why.join(" ")),
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
        let mut entries = vec![index];
        let why: Option<String> = if c.grant_id.is_empty() {
            Some("no grant named".into())
        } else {
            match registry.grant(&c.grant_id) {
                None => Some(format!("grant {} was never issued", c.grant_id)),
                Some(g) => {
                    entries.push(g.issued_at);
                    let gr = &g.grant;
                    let kind = c.action;
                    let source_owner = registry
                        .system(&c.from_system)
                        .map(|s| s.system.owner_party.clone());
                    if let Some(r) = g.revoked_at.filter(|r| *r < index) {
                        entries.push(r);
                        Some(format!("grant revoked by entry {r}"))
                    } else if !registry.acts_for(&c.actor, &gr.grantee) {
                        Some(format!(
                            "actor is not the grantee {} or its agent",
                            gr.grantee
                        ))
                    } else if !gr.actions.is_empty() && !gr.actions.contains(&kind) {
                        Some(format!("action {} not granted", kind.name()))
                    } else if !gr.systems.is_empty() && !gr.systems.contains(&c.to_system) {
                        Some(format!("destination {} not granted", c.to_system))
                    } else if !gr.purposes.is_empty()
                        && !c.purpose.is_some_and(|p| gr.purposes.contains(&p))
                    {
                        Some(format!(
                            "purpose {} not granted",
                            c.purpose.map_or("none", |p| p.name())
                        ))
                    } else if t < gr.valid_from || gr.valid_to.is_some_and(|to| t >= to) {
                        Some("outside the grant's validity".into())
                    } else if gr.max_onward_transfers == 0
                        && source_owner.is_some_and(|o| is_vendor(registry, &o))
                    {
                        Some("onward transfer beyond max_onward_transfers 0".into())
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(why) = why {
            self.push(Finding {
                id: format!("unauthorized_transfer:{index}"),
                rule: Rule::UnauthorizedTransfer,
                entries,
                party: Some(c.actor.clone()),
                system: Some(c.to_system.clone()),
                asset,
                grant: (!c.grant_id.is_empty()).then(|| c.grant_id.clone()),
                retention_rule: None,
                at: t,
                detail: why,
            });
        }
    }

    fn purpose_rule(
        &mut self,
        index: u64,
        event: &Event,
        registry: &Registry,
        c: &crate::CustodyAction,
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
                id: format!("purpose_drift:{index}"),
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
                detail: format!("purpose {} is not granted", purpose.name()),
            });
        }
    }

    /// `findings` is every finding as of `as_of`: those about single
    /// events that happened by then, and the time-based rules evaluated
    /// at `as_of`, ordered by time and id.
    pub fn findings(&self, as_of: Timestamp, registry: &Registry) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .immediate
            .iter()
            .filter(|f| f.at <= as_of)
            .cloned()
            .collect();
        let p = self.policy;

        // Retention: open intervals past their rule's max age, unless held.
        let holds: Vec<_> = registry
            .holds()
            .filter(|h| h.released_at.is_none())
            .map(|h| h.hold.clone())
            .collect();
        for ((asset, system), h) in &self.held {
            if h.from > as_of {
                continue;
            }
            let rule = registry
                .rules()
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
            if due >= as_of {
                continue;
            }
            let held = holds.iter().any(|hold| {
                hold.system_id == *system
                    || matches!(hold.assets, Some(AssetRef::One(d)) if d == *asset)
            });
            if held {
                continue;
            }
            let mut entries = vec![h.opened_by, rule.published_at];
            if h.born_by != h.opened_by {
                entries.insert(0, h.born_by);
            }
            out.push(Finding {
                id: format!("retention_overdue:{}:{}:{system}", h.opened_by, hex(asset)),
                rule: Rule::RetentionOverdue,
                entries,
                party: Some(h.party.clone()),
                system: Some(system.clone()),
                asset: Some(*asset),
                grant: None,
                retention_rule: Some(rule.rule.rule_id.clone()),
                at: due,
                detail: format!("held past max_age {} s", rule.rule.max_age / 1_000_000_000),
            });
        }

        // Transfers without a receipt in the window.
        for (index, t) in &self.transfers {
            let due = t.at.saturating_add(p.receipt_window);
            if due >= as_of {
                continue;
            }
            let late = match t.receipt {
                None => true,
                Some((rt, _)) => rt > due || rt > as_of,
            };
            if late {
                let mut entries = vec![*index];
                if let Some((_, ri)) = t.receipt {
                    entries.push(ri);
                }
                out.push(Finding {
                    id: format!("unacknowledged_transfer:{index}"),
                    rule: Rule::UnacknowledgedTransfer,
                    entries,
                    party: Some(t.party.clone()),
                    system: Some(t.system.clone()),
                    asset: t.asset,
                    grant: None,
                    retention_rule: None,
                    at: due,
                    detail: match t.receipt {
                        None => "no receipt".into(),
                        Some(_) => "receipt after the window".into(),
                    },
                });
            }
        }

        // Parties holding data on their own systems must attest.
        for (system, a) in &self.attesting {
            if a.since > as_of {
                continue;
            }
            let last = a
                .last
                .filter(|(t, _)| *t <= as_of)
                .map_or(a.since, |(t, _)| t);
            let due = last.saturating_add(p.attestation_period);
            if due >= as_of {
                continue;
            }
            let mut entries = vec![a.since_by];
            if let Some((_, i)) = a.last {
                entries.push(i);
            }
            out.push(Finding {
                id: format!("missing_attestation:{system}"),
                rule: Rule::MissingAttestation,
                entries,
                party: Some(a.party.clone()),
                system: Some(system.clone()),
                asset: None,
                grant: None,
                retention_rule: None,
                at: due,
                detail: format!(
                    "no custody attestation for {} s",
                    (as_of - last) / 1_000_000_000
                ),
            });
        }
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        out
    }
}
