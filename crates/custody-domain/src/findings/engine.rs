//! The findings rules over derived state, wherever it is kept.
//!
//! [`observe`] reads what it needs of earlier entries through
//! [`FindingsState`] and returns a [`FindingsDelta`]: the findings the
//! event raises and the derived state it adds (births, pending receipts,
//! attestation duties). The server writes the delta in the entry's own
//! `WriteBatch`; a replay in memory ([`super::MemoryFindings`]) applies it
//! to maps. [`findings_at`] evaluates the time-based rules from that state
//! through [`FindingsHistory`], so both give the same answer.

use std::collections::HashMap;

use super::{
    finding_id, sequence_gap, uncovered, Finding, FindingsFilter, FindingsPage, PageCutter,
    Policies, Reason, Rule, TransferCheck, Uncovered,
};
use crate::{
    AssetRef, CustodyActionKind, Digest, Effects, Event, EventBody, HoldRecord, Modality,
    PartyKind, Refusal, Registry, SubjectClass, Timestamp,
};

/// `Birth` is when an asset came into being (time, entry) and the
/// classes a retention rule may select it by (a derived asset also carries
/// its parents' classes and earliest birth).
pub type Birth = (Timestamp, u64, Vec<(Modality, SubjectClass)>);

/// `Observer` is who reported another party's action, and on which system.
pub type Observer = Option<(String, String)>;

/// `Pending` is a transfer waiting for (or given) its receipt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// When the transfer happened.
    pub at: Timestamp,
    /// Who made it.
    pub party: String,
    /// Where it went.
    pub system: String,
    /// The one asset it moved, if it moved one.
    pub asset: Option<Digest>,
    /// The receipt (event time, entry), once one is logged.
    pub receipt: Option<(Timestamp, u64)>,
    /// Who observed it, if another party reported it.
    pub observed: Observer,
}

/// `Attesting` is custody of a system owned by a party other than the data
/// owner, which must be attested periodically.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attesting {
    /// The holding party.
    pub party: String,
    /// When its custody there began.
    pub since: Timestamp,
    /// The entry that began it.
    pub since_by: u64,
    /// Every attestation of the system, (event time, entry), in log order.
    pub attestations: Vec<(Timestamp, u64)>,
}

/// `HeldRow` is one custody interval, open or closed, as the retention rule
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    /// The entry that opened it.
    pub opened_by: u64,
    /// The asset.
    pub asset: Digest,
    /// The system.
    pub system: String,
    /// The holder.
    pub party: String,
    /// When it opened.
    pub from: Timestamp,
    /// Event time of the event that closed it, if one did.
    pub to: Option<Timestamp>,
    /// The entry that closed it, if one did.
    pub closed_by: Option<u64>,
    /// The asset's birth (for intervals of an asset the log never saw
    /// created: the interval's own start and classes).
    pub born: Birth,
}

/// `FindingsState` is what [`observe`] reads of the entries before the one
/// it observes.
pub trait FindingsState {
    /// `last_seq` is the highest sequence number `reporter` has used, or 0.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn last_seq(&self, reporter: &str) -> Result<u64, Refusal>;

    /// `birth` is an asset's [`Birth`], if the log created it.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn birth(&self, asset: &Digest) -> Result<Option<Birth>, Refusal>;

    /// `class` is an asset's own modality, subject class and creating
    /// entry, for grant coverage.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn class(&self, asset: &Digest) -> Result<Option<(Modality, SubjectClass, u64)>, Refusal>;

    /// `is_attesting` says whether a party other than the data owner holds
    /// data on `system`, so that it must attest it.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn is_attesting(&self, system: &str) -> Result<bool, Refusal>;

    /// `transfer_time` is when the COPY or MOVE logged at `index`
    /// happened, if that entry is one.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn transfer_time(&self, index: u64) -> Result<Option<Timestamp>, Refusal>;
}

/// `FindingsHistory` is what [`findings_at`] reads: the derived state of
/// every entry observed, which it filters to the first `size`.
pub trait FindingsHistory {
    /// `raised` visits the findings about single events raised by entries
    /// below `size`, in log order.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn raised(&self, size: u64, f: &mut dyn FnMut(Finding)) -> Result<(), Refusal>;

    /// `raised_by` visits the findings entry `index` raised. This default
    /// reads every raised finding below `index + 1`.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn raised_by(&self, index: u64, f: &mut dyn FnMut(Finding)) -> Result<(), Refusal> {
        self.raised(index.saturating_add(1), &mut |x| {
            if x.entries.first() == Some(&index) {
                f(x)
            }
        })
    }

    /// `transfer` is the COPY or MOVE logged at `index` with its receipt
    /// (at any size), if that entry is one.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn transfer(&self, index: u64) -> Result<Option<Pending>, Refusal>;

    /// `raised_page` is the page of the findings raised by entries below
    /// `size` that arose by `as_of` (see [`raised_in`]), cut as
    /// [`PageCutter`] cuts it. This default reads every raised finding; a
    /// store that keeps them by time, with counts, reads the page alone.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn raised_page(
        &self,
        size: u64,
        as_of: Timestamp,
        filter: &FindingsFilter,
        after: Option<&(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, Refusal> {
        raised_page_by_scan(self, size, as_of, filter, after, limit)
    }

    /// `unacknowledged_page` is the page of the transfers without a
    /// receipt in the window `policies` apply to each, as of (`size`,
    /// `as_of`), cut as [`PageCutter`] cuts it. This default reads every overdue transfer; a store that
    /// keeps them by time reads the page and counts the rest by key.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    #[allow(clippy::too_many_arguments)]
    fn unacknowledged_page(
        &self,
        policies: &Policies,
        size: u64,
        as_of: Timestamp,
        filter: &FindingsFilter,
        after: Option<&(Timestamp, String)>,
        limit: usize,
    ) -> Result<FindingsPage, Refusal> {
        unacknowledged_page_by_scan(self, policies, size, as_of, filter, after, limit)
    }

    /// `held` visits every custody interval opened by an entry below
    /// `size` that is still held as of (`size`, `as_of`): not closed, or
    /// closed by an entry at or past `size`, or closed at a time after
    /// `as_of`; of those open now, it need visit only those whose
    /// [`retention_start`] is before `horizon`. It may visit other
    /// intervals too (the caller checks each), but none twice; a store
    /// keeps indexes so that it reads the intervals open since before the
    /// horizon and those closed since the question, not every interval
    /// ever opened.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn held(
        &self,
        size: u64,
        as_of: Timestamp,
        horizon: Timestamp,
        f: &mut dyn FnMut(HeldRow),
    ) -> Result<(), Refusal>;

    /// `overdue_transfers` visits, by index and with its receipt if one
    /// was logged (at any size), every COPY and MOVE logged below `size`
    /// whose deadline (its time plus its receipt window, which is at least
    /// `window`, the shortest in force) passed before `as_of` and
    /// whose receipt, as the first `size` entries show it at `as_of`, is
    /// missing or came after the deadline. It may visit other transfers
    /// too (the caller checks each), but none twice; a store keeps an
    /// index so that it visits few more than those.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn overdue_transfers(
        &self,
        size: u64,
        as_of: Timestamp,
        window: i64,
        f: &mut dyn FnMut(u64, Pending),
    ) -> Result<(), Refusal>;

    /// `attesting` visits every system a party other than the data owner
    /// holds data on, by system id, with all its attestations.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn attesting(&self, f: &mut dyn FnMut(String, Attesting)) -> Result<(), Refusal>;

    /// `hold_names` says whether `hold`, which names a manifest, names
    /// `asset` among its members.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn hold_names(&self, hold: &HoldRecord, asset: &Digest) -> Result<bool, Refusal>;
}

/// `held_birth` is the birth the retention rule dates an interval of
/// `asset` opened by entry `opened_by` at `from` from: the asset's own
/// [`Birth`] if the log created it by then, else the interval's start
/// and its `classes`. Asset births never change, so it is the same
/// whenever it is asked.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `state` cannot be read.
pub fn held_birth<S: FindingsState + ?Sized>(
    state: &S,
    asset: &Digest,
    opened_by: u64,
    from: Timestamp,
    classes: Vec<(Modality, SubjectClass)>,
) -> Result<Birth, Refusal> {
    let born = match state.class(asset)? {
        Some((_, _, created_by)) if created_by <= opened_by => state.birth(asset)?,
        _ => None,
    };
    Ok(born.unwrap_or((from, opened_by, classes)))
}

/// `retention_start` is the earliest time a retention rule can date an
/// interval (of `asset`, opened by `opened_by` at `from`) from: its
/// birth or its start, whichever came first, so that it is past a rule
/// of max age `m` as of `t` only if `retention_start + m < t`.
///
/// # Errors
///
/// As [`held_birth`].
pub fn retention_start<S: FindingsState + ?Sized>(
    state: &S,
    asset: &Digest,
    opened_by: u64,
    from: Timestamp,
) -> Result<Timestamp, Refusal> {
    Ok(held_birth(state, asset, opened_by, from, Vec::new())?
        .0
        .min(from))
}

/// `FindingsDelta` is what one event adds to the findings' derived state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingsDelta {
    /// Findings about the event itself.
    pub raised: Vec<Finding>,
    /// The reporter's new highest sequence number, if it rose.
    pub seq: Option<(String, u64)>,
    /// The birth of each asset the event creates, and whether it differs
    /// from the asset's own creation (a derived asset's does).
    pub births: Vec<(Digest, Birth, bool)>,
    /// Each created asset's own class and creating entry.
    pub classes: Vec<(Digest, (Modality, SubjectClass, u64))>,
    /// Systems on which a party other than the data owner began to hold
    /// data.
    pub attesting: Vec<(String, Attesting)>,
    /// An attestation of an attesting system: (system, time, entry).
    pub attestation: Option<(String, Timestamp, u64)>,
    /// The transfer this COPY or MOVE starts.
    pub pending: Option<(u64, Pending)>,
    /// The receipt this RECEIPT gives: (transfer entry, the transfer's
    /// time, the receipt's time, the receipt's entry).
    pub receipt: Option<(u64, Timestamp, Timestamp, u64)>,
    /// The legal hold whose manifest's members are the effects'
    /// `held_assets`.
    pub hold: Option<String>,
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

fn blank(rule: Rule, index: u64, party: Option<String>, at: Timestamp, why: Reason) -> Finding {
    Finding {
        id: finding_id(rule, index, None, None),
        rule,
        entries: vec![index],
        party,
        system: None,
        asset: None,
        grant: None,
        retention_rule: None,
        at,
        detail: why.to_string(),
        observed_by: None,
        observed_on: None,
    }
}

/// `observe` is what the event accepted at `index`, integrated at
/// `integrated`, adds to the findings: `registry` is the registry as it
/// stood before the event, `fx` its effects, `state` the derived state of
/// the entries before it.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `state` cannot be read.
pub fn observe(
    state: &dyn FindingsState,
    index: u64,
    event: &Event,
    integrated: Timestamp,
    registry: &Registry,
    fx: &Effects,
) -> Result<FindingsDelta, Refusal> {
    let mut facts = MemberFacts::default();
    facts.add(state, event, fx)?;
    let mut out = observe_event(state, index, event, integrated, registry, fx, &facts)?;
    out.extend(observe_members(state, index, event, fx)?);
    Ok(out)
}

/// `MemberFacts` is what the findings of a bulk event need to know of all
/// its members at once, gathered a slice of members at a time
/// ([`crate::plan_members`]): the classes that moved, each with the first
/// member of it, and the system and party of the custody it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFacts {
    /// Each distinct class among the members, with its creating entry and
    /// the first member of it, in the entry's order (gathered for a
    /// transfer under a grant, the only rule that reads them).
    pub classes: Vec<(Modality, SubjectClass, u64, Digest)>,
    /// The (system, party) of the intervals the event opens, if it opens
    /// any: one event opens custody on one system only.
    pub opens: Option<(String, String)>,
}

impl MemberFacts {
    /// `add` gathers the facts of one slice's effects `fx`, the slices
    /// taken in member order.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when `state` cannot be read.
    pub fn add(
        &mut self,
        state: &dyn FindingsState,
        event: &Event,
        fx: &Effects,
    ) -> Result<(), Refusal> {
        if self.opens.is_none() {
            self.opens = fx
                .opened
                .first()
                .map(|i| (i.system.clone(), i.party.clone()));
        }
        // Only a transfer under a grant is judged by the classes it moves.
        let under_grant = matches!(&event.body, EventBody::Custody(c)
            if matches!(c.action, CustodyActionKind::Copy | CustodyActionKind::Move)
                && !c.grant_id.is_empty());
        if !under_grant {
            return Ok(());
        }
        for d in &fx.assets {
            let class = match fx.created.iter().find(|(a, _)| a == d) {
                Some((_, m)) => Some((m.modality, m.subject_class, m.created_by)),
                None => state.class(d)?,
            };
            if let Some((m, s, by)) = class {
                if !self
                    .classes
                    .iter()
                    .any(|(m2, s2, _, _)| (*m2, *s2) == (m, s))
                {
                    self.classes.push((m, s, by, *d));
                }
            }
        }
        Ok(())
    }
}

/// `observe_event` is the part of [`observe`] about the event as a whole,
/// given `facts` of all its members; `fx` need hold only the event's own
/// effects.
///
/// # Errors
///
/// As [`observe`].
#[allow(clippy::too_many_arguments)]
pub fn observe_event(
    state: &dyn FindingsState,
    index: u64,
    event: &Event,
    integrated: Timestamp,
    registry: &Registry,
    fx: &Effects,
    facts: &MemberFacts,
) -> Result<FindingsDelta, Refusal> {
    let mut out = FindingsDelta::default();
    let t = event.event_time;
    let observed = observer(event, fx);
    // Late reporting and sequence gaps apply to every event; the deadline
    // is the one of the policy the log applies to this entry, whose entry
    // the finding cites.
    let (policy, published) = registry.policies().at(index);
    let deadline = policy.reporting_deadline;
    let delay = integrated.saturating_sub(t);
    if delay > deadline {
        let mut f = blank(
            Rule::LateReporting,
            index,
            Some(event.reporter.clone()),
            t.saturating_add(deadline),
            Reason::LateReporting { delay, deadline },
        );
        f.entries.extend(published);
        out.raised.push(f);
    }
    if event.reporter_seq != 0 {
        let last = state.last_seq(&event.reporter)?;
        if sequence_gap(last, event.reporter_seq).is_some() {
            out.raised.push(blank(
                Rule::SequenceGap,
                index,
                Some(event.reporter.clone()),
                t,
                Reason::SequenceGap {
                    seq: event.reporter_seq,
                    last,
                },
            ));
        }
        if event.reporter_seq > last {
            out.seq = Some((event.reporter.clone(), event.reporter_seq));
        }
    }
    // A party other than the data owner begins to hold data on a system.
    if let Some((system, party)) = &facts.opens {
        if *party != registry.owner() && !state.is_attesting(system)? {
            out.attesting.push((
                system.clone(),
                Attesting {
                    party: party.clone(),
                    since: t,
                    since_by: index,
                    attestations: Vec::new(),
                },
            ));
        }
    }

    match &event.body {
        EventBody::Custody(c) => match c.action {
            CustodyActionKind::Copy | CustodyActionKind::Move => {
                transfer_rules(&mut out, index, event, registry, c, facts, &observed)?;
                out.pending = Some((
                    index,
                    Pending {
                        at: t,
                        party: c.actor.clone(),
                        system: c.to_system.clone(),
                        asset: match c.asset {
                            Some(AssetRef::One(d)) => Some(d),
                            _ => None,
                        },
                        receipt: None,
                        observed: observed.clone(),
                    },
                ));
            }
            CustodyActionKind::Receipt => {
                if let Some(of) = c.receipt_of {
                    // `plan` admitted it, so the entry is a transfer.
                    if let Some(of_at) = state.transfer_time(of)? {
                        out.receipt = Some((of, of_at, t, index));
                    }
                }
            }
            CustodyActionKind::Access | CustodyActionKind::Use => {
                purpose_rule(&mut out, index, event, registry, c, &observed);
            }
            _ => {}
        },
        EventBody::CustodyAttestation(a) => {
            out.attestation = state
                .is_attesting(&a.system_id)?
                .then(|| (a.system_id.clone(), t, index));
        }
        EventBody::LegalHold(h) if !h.released && !fx.held_assets.is_empty() => {
            out.hold = Some(h.hold_id.clone());
        }
        _ => {}
    }
    Ok(out)
}

/// `observer` is who observed the event's action and on which system,
/// when the reporter reports another party's action it saw there.
fn observer(event: &Event, fx: &Effects) -> Observer {
    fx.observed_on
        .as_ref()
        .map(|s| (event.reporter.clone(), s.clone()))
}

/// `observe_members` is the part of [`observe`] about the members in
/// `fx` one by one: their unexplained custody, and the births of those
/// the event creates. The slices of a bulk event, observed in turn, raise
/// what the whole event would.
///
/// # Errors
///
/// As [`observe`].
pub fn observe_members(
    state: &dyn FindingsState,
    index: u64,
    event: &Event,
    fx: &Effects,
) -> Result<FindingsDelta, Refusal> {
    let mut out = FindingsDelta::default();
    let t = event.event_time;
    let observed = observer(event, fx);
    for (asset, system) in &fx.unexplained {
        out.raised.push(Finding {
            id: finding_id(Rule::UnexplainedCustody, index, Some(asset), Some(system)),
            system: Some(system.clone()),
            asset: Some(*asset),
            observed_by: observed.as_ref().map(|o| o.0.clone()),
            observed_on: observed.as_ref().map(|o| o.1.clone()),
            ..blank(
                Rule::UnexplainedCustody,
                index,
                match &event.body {
                    EventBody::Custody(c) => Some(c.actor.clone()),
                    _ => Some(event.reporter.clone()),
                },
                t,
                Reason::Unexplained,
            )
        });
    }
    // Births: a derived asset is as old as its oldest parent, and carries
    // its parents' classes too.
    for (d, m) in &fx.created {
        let mut classes = vec![(m.modality, m.subject_class)];
        let mut born = (t, index);
        if let EventBody::Custody(c) = &event.body {
            for p in &c.parents {
                if let Some((pt, pi, pc)) = state.birth(&p.digest)? {
                    if pt < born.0 {
                        born = (pt, pi);
                    }
                    classes.extend(pc.iter().copied());
                }
            }
        }
        classes.sort_by_key(|(m, s)| (m.code(), s.code()));
        classes.dedup();
        let derived = born != (t, index) || classes.len() > 1;
        out.births.push((*d, (born.0, born.1, classes), derived));
        out.classes
            .push((*d, (m.modality, m.subject_class, m.created_by)));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn transfer_rules(
    out: &mut FindingsDelta,
    index: u64,
    event: &Event,
    registry: &Registry,
    c: &crate::CustodyAction,
    facts: &MemberFacts,
    observed: &Observer,
) -> Result<(), Refusal> {
    let t = event.event_time;
    let asset = match c.asset {
        Some(AssetRef::One(d)) => Some(d),
        _ => None,
    };
    let (observed_by, observed_on) = match observed {
        Some((b, o)) => (Some(b.clone()), Some(o.clone())),
        None => (None, None),
    };
    let grant = (!c.grant_id.is_empty()).then(|| c.grant_id.clone());
    let dest = registry.system(&c.to_system);
    if let Some(d) = dest {
        let why = d.system.boundary_breaches();
        if !why.is_empty() {
            out.raised.push(Finding {
                entries: vec![index, d.registered_at],
                system: Some(c.to_system.clone()),
                asset,
                grant: grant.clone(),
                observed_by: observed_by.clone(),
                observed_on: observed_on.clone(),
                ..blank(
                    Rule::BoundaryViolation,
                    index,
                    Some(c.actor.clone()),
                    t,
                    Reason::Boundary(why),
                )
            });
        }
    }

    // The data owner's own agents moving data between the owner's own
    // systems need no grant.
    let internal = dest.is_some_and(|d| d.system.owner_party == registry.owner())
        && !is_vendor(registry, &c.actor);
    if internal {
        return Ok(());
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
                let classes = &facts.classes;
                let check = TransferCheck {
                    action: c.action,
                    recipient,
                    to_system: &c.to_system,
                    purpose: c.purpose,
                    at: t,
                    classes,
                };
                if let Some(r) = g.revoked_at.filter(|r| *r < index) {
                    entries.push(r);
                    Some(Reason::GrantRevoked(r))
                } else if let Some(u) = uncovered(|a, p| registry.acts_for(a, p), gr, &check) {
                    if let Uncovered::Modality(_, by, d) | Uncovered::SubjectClass(_, by, d) = &u {
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
        out.raised.push(Finding {
            entries,
            system: Some(c.to_system.clone()),
            asset: cited_asset,
            grant,
            observed_by,
            observed_on,
            ..blank(
                Rule::UnauthorizedTransfer,
                index,
                Some(c.actor.clone()),
                t,
                why,
            )
        });
    }
    Ok(())
}

fn purpose_rule(
    out: &mut FindingsDelta,
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
    let covered =
        grant.is_some_and(|g| g.grant.purposes.is_empty() || g.grant.purposes.contains(&purpose));
    if !covered {
        let mut entries = vec![index];
        if let Some(g) = grant {
            entries.push(g.issued_at);
        }
        out.raised.push(Finding {
            entries,
            system: Some(c.from_system.clone()),
            asset: match c.asset {
                Some(AssetRef::One(d)) => Some(d),
                _ => None,
            },
            grant: (!c.grant_id.is_empty()).then(|| c.grant_id.clone()),
            observed_by: observed.as_ref().map(|o| o.0.clone()),
            observed_on: observed.as_ref().map(|o| o.1.clone()),
            ..blank(
                Rule::PurposeDrift,
                index,
                Some(c.actor.clone()),
                event.event_time,
                Reason::PurposeNotGranted(purpose),
            )
        });
    }
}

/// `held_by_hold` says whether a legal hold in force at (`size`, `as_of`)
/// covers `asset` on `system`. A hold covers what it names: its system,
/// its assets (one digest or a manifest's members), or those assets on
/// that system when it names both.
fn held_by_hold(
    history: &dyn FindingsHistory,
    registry: &Registry,
    asset: &Digest,
    system: &str,
    size: u64,
    as_of: Timestamp,
) -> Result<bool, Refusal> {
    for h in registry.holds() {
        if h.placed_at >= size || h.placed_time > as_of {
            continue;
        }
        let released = h
            .released_at
            .zip(h.released_time)
            .is_some_and(|(i, t)| i < size && t <= as_of);
        if released {
            continue;
        }
        if !(h.hold.system_id.is_empty() || h.hold.system_id == system) {
            continue;
        }
        let names_asset = match &h.hold.assets {
            None => true,
            Some(AssetRef::One(d)) => d == asset,
            Some(AssetRef::Manifest(_)) => history.hold_names(h, asset)?,
        };
        if names_asset {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `findings_at` is every finding as of `as_of` that the log's first
/// `size` entries support (DESIGN §6): exactly what a replay of those
/// entries alone gives, however many entries `history` holds since.
/// Findings about single events that happened by then; retention, receipts
/// and attestations evaluated at `as_of` from the events among those
/// entries that happened by then, so that a later DELETE, a hold placed
/// later, a newer attestation or a later entry never changes the answer.
/// Ordered by time and id.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `history` cannot be read.
pub fn findings_at(
    history: &dyn FindingsHistory,
    registry: &Registry,
    size: u64,
    as_of: Timestamp,
) -> Result<Vec<Finding>, Refusal> {
    let mut out: Vec<Finding> = Vec::new();
    visit_findings_at(history, registry, size, as_of, &mut |f| out.push(f))?;
    out.sort_by(|a, b| a.order().cmp(&b.order()));
    Ok(out)
}

/// `visit_findings_at` hands every finding of [`findings_at`] to `sink`,
/// one at a time and in no particular order, holding none of them: a
/// caller that keeps only a page keeps memory bounded by the page.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `history` cannot be read.
pub fn visit_findings_at(
    history: &dyn FindingsHistory,
    registry: &Registry,
    size: u64,
    as_of: Timestamp,
    sink: &mut dyn FnMut(Finding),
) -> Result<(), Refusal> {
    history.raised(size, &mut |f| {
        if raised_in(&f, size, as_of) {
            sink(f);
        }
    })?;
    visit_timed_findings_at(history, registry, size, as_of, true, sink)
}

/// `unacknowledged` is the finding the transfer logged at `index` (made
/// as `t` says) raises as of (`size`, `as_of`) under the receipt window
/// `policies` apply to it, if its receipt is missing or late as the first
/// `size` entries show it then.
pub fn unacknowledged(
    policies: &Policies,
    size: u64,
    as_of: Timestamp,
    index: u64,
    t: Pending,
) -> Option<Finding> {
    let (policy, published) = policies.at(index);
    let due = t.at.saturating_add(policy.receipt_window);
    if index >= size || due >= as_of {
        return None;
    }
    // A receipt that happened after `as_of`, or is logged at or past
    // `size`, is not in the log as read then.
    let receipt = t.receipt.filter(|(rt, ri)| *rt <= as_of && *ri < size);
    if receipt.is_some_and(|(rt, _)| rt <= due) {
        return None;
    }
    let mut entries = vec![index];
    if let Some((_, ri)) = receipt {
        entries.push(ri);
    }
    entries.extend(published);
    Some(Finding {
        id: finding_id(Rule::UnacknowledgedTransfer, index, None, None),
        rule: Rule::UnacknowledgedTransfer,
        entries,
        party: Some(t.party),
        system: Some(t.system),
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
        observed_on: t.observed.map(|o| o.1),
    })
}

/// `visit_unacknowledged` hands `sink` every transfer without a receipt
/// in the window as of (`size`, `as_of`).
fn visit_unacknowledged<H: FindingsHistory + ?Sized>(
    policies: &Policies,
    history: &H,
    size: u64,
    as_of: Timestamp,
    sink: &mut dyn FnMut(Finding),
) -> Result<(), Refusal> {
    let shortest = policies.shortest_receipt_window(size);
    history.overdue_transfers(size, as_of, shortest, &mut |index, t| {
        if let Some(f) = unacknowledged(policies, size, as_of, index, t) {
            sink(f);
        }
    })
}

/// `unacknowledged_page_by_scan` is
/// [`FindingsHistory::unacknowledged_page`] read from every overdue
/// transfer: the default.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `history` cannot be read.
#[allow(clippy::too_many_arguments)]
pub fn unacknowledged_page_by_scan<H: FindingsHistory + ?Sized>(
    history: &H,
    policies: &Policies,
    size: u64,
    as_of: Timestamp,
    filter: &FindingsFilter,
    after: Option<&(Timestamp, String)>,
    limit: usize,
) -> Result<FindingsPage, Refusal> {
    let mut cut = PageCutter::new(filter.clone(), after.cloned(), limit);
    visit_unacknowledged(policies, history, size, as_of, &mut |f| cut.offer(f))?;
    Ok(cut.finish())
}

/// `find_finding` is the finding with id `id` among [`findings_at`]'s, if
/// there is one, reading what its id names: the entry that raised it, or
/// the transfer it is about, or (retention, attestations) the time-based
/// rules' own bounded reads.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `history` cannot be read.
pub fn find_finding(
    history: &dyn FindingsHistory,
    registry: &Registry,
    size: u64,
    as_of: Timestamp,
    id: &str,
) -> Result<Option<Finding>, Refusal> {
    let Some((rule, entry)) = super::finding_subject(id) else {
        return Ok(None);
    };
    let mut found = None;
    let mut keep = |f: Finding| {
        if found.is_none() && f.id == id {
            found = Some(f);
        }
    };
    match (rule, entry) {
        (Rule::UnacknowledgedTransfer, Some(index)) => {
            if let Some(t) = history.transfer(index)? {
                keep_some(
                    &mut keep,
                    unacknowledged(registry.policies(), size, as_of, index, t),
                );
            }
        }
        (Rule::RetentionOverdue | Rule::MissingAttestation, _) => {
            visit_timed_findings_at(history, registry, size, as_of, false, &mut keep)?;
        }
        (_, Some(index)) if index < size => {
            history.raised_by(index, &mut |f| {
                if raised_in(&f, size, as_of) {
                    keep(f)
                }
            })?;
        }
        _ => {}
    }
    Ok(found)
}

fn keep_some(keep: &mut dyn FnMut(Finding), f: Option<Finding>) {
    if let Some(f) = f {
        keep(f);
    }
}

/// `raised_in` is whether a finding an entry raised belongs to the answer
/// as of (`size`, `as_of`): every entry it cites is among the first `size`
/// (the raising entry is the greatest it cites), and it arose by `as_of`.
pub fn raised_in(f: &Finding, size: u64, as_of: Timestamp) -> bool {
    f.at <= as_of && f.entries.iter().all(|e| *e < size)
}

/// `raised_page_by_scan` is [`FindingsHistory::raised_page`] read from
/// every raised finding: the default, and a store's answer to a filter its
/// indexes do not serve.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `history` cannot be read.
pub fn raised_page_by_scan<H: FindingsHistory + ?Sized>(
    history: &H,
    size: u64,
    as_of: Timestamp,
    filter: &FindingsFilter,
    after: Option<&(Timestamp, String)>,
    limit: usize,
) -> Result<FindingsPage, Refusal> {
    let mut cut = PageCutter::new(filter.clone(), after.cloned(), limit);
    history.raised(size, &mut |f| {
        if raised_in(&f, size, as_of) {
            cut.offer(f);
        }
    })?;
    Ok(cut.finish())
}

/// `findings_page` is one page of [`findings_at`]: the findings matching
/// `filter` after the cursor `after`, at most `limit` of them, with the
/// counts of [`FindingsPage`]. The raised findings' part is
/// [`FindingsHistory::raised_page`], so a store that indexes them answers
/// in proportion to the page; the time-based rules are evaluated as
/// [`findings_at`] evaluates them, keeping one page.
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when `history` cannot be read.
#[allow(clippy::too_many_arguments)]
pub fn findings_page(
    history: &dyn FindingsHistory,
    registry: &Registry,
    size: u64,
    as_of: Timestamp,
    filter: &FindingsFilter,
    after: Option<&(Timestamp, String)>,
    limit: usize,
) -> Result<FindingsPage, Refusal> {
    let raised = history.raised_page(size, as_of, filter, after, limit)?;
    let unacknowledged =
        history.unacknowledged_page(registry.policies(), size, as_of, filter, after, limit)?;
    let mut cut = PageCutter::new(filter.clone(), after.cloned(), limit);
    visit_timed_findings_at(history, registry, size, as_of, false, &mut |f| cut.offer(f))?;
    Ok(raised
        .merge(unacknowledged, limit)
        .merge(cut.finish(), limit))
}

/// `visit_timed_findings_at` hands `sink` the findings of the time-based
/// rules (retention, receipts, attestations) of [`findings_at`].
fn visit_timed_findings_at(
    history: &dyn FindingsHistory,
    registry: &Registry,
    size: u64,
    as_of: Timestamp,
    with_unacknowledged: bool,
    sink: &mut dyn FnMut(Finding),
) -> Result<(), Refusal> {
    let out = sink;

    // Retention: intervals open at `as_of` past their rule's max age,
    // unless a hold in force then covers them. Without a rule in force
    // there is nothing to read.
    let rules: Vec<_> = registry
        .rules()
        .filter(|r| r.published_at < size && r.published_time <= as_of)
        .collect();
    if !rules.is_empty() {
        let mut err = None;
        // No interval whose retention start is this recent can be past
        // the shortest max age in force.
        let horizon = rules
            .iter()
            .map(|r| r.rule.max_age)
            .min()
            .map_or(Timestamp::MIN, |m| as_of.saturating_sub(m));
        history.held(size, as_of, horizon, &mut |h| {
            if err.is_some() || h.opened_by >= size || h.from > as_of {
                return;
            }
            let closed = h
                .closed_by
                .zip(h.to)
                .is_some_and(|(i, to)| i < size && to <= as_of);
            if closed {
                return;
            }
            let rule = rules
                .iter()
                .filter(|r| {
                    let rr = &r.rule;
                    (rr.system_id.is_empty() || rr.system_id == h.system)
                        && h.born.2.iter().any(|(m, s)| {
                            rr.modality.is_none_or(|x| x == *m)
                                && rr.subject_class.is_none_or(|x| x == *s)
                        })
                })
                .min_by_key(|r| (r.rule.max_age, r.rule.rule_id.clone()));
            let Some(rule) = rule else {
                return;
            };
            let start = match rule.rule.clock {
                crate::RetentionClock::Capture => h.born.0,
                crate::RetentionClock::CustodyStart => h.from,
            };
            let due = start.saturating_add(rule.rule.max_age);
            if due >= as_of {
                return;
            }
            match held_by_hold(history, registry, &h.asset, &h.system, size, as_of) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    err = Some(e);
                    return;
                }
            }
            let mut entries = vec![h.opened_by, rule.published_at];
            if h.born.1 != h.opened_by {
                entries.insert(0, h.born.1);
            }
            out(Finding {
                id: finding_id(
                    Rule::RetentionOverdue,
                    h.opened_by,
                    Some(&h.asset),
                    Some(&h.system),
                ),
                rule: Rule::RetentionOverdue,
                entries,
                party: Some(h.party),
                system: Some(h.system),
                asset: Some(h.asset),
                grant: None,
                retention_rule: Some(rule.rule.rule_id.clone()),
                at: due,
                detail: Reason::PastMaxAge(rule.rule.max_age).to_string(),
                observed_by: None,
                observed_on: None,
            });
        })?;
        if let Some(e) = err {
            return Err(e);
        }
    }

    // Transfers without a receipt in the window.
    if with_unacknowledged {
        visit_unacknowledged(registry.policies(), history, size, as_of, out)?;
    }

    // Parties holding data on their own systems must attest.
    history.attesting(&mut |system, a| {
        if a.since_by >= size || a.since > as_of {
            return;
        }
        let latest = a
            .attestations
            .iter()
            .filter(|(t, i)| *t <= as_of && *i < size)
            .max_by_key(|(t, i)| (*t, *i))
            .copied();
        // The period is the one the policy applies to the entry the duty
        // runs from: the last attestation, or the custody that began it.
        let (last, by) = latest.unwrap_or((a.since, a.since_by));
        let (policy, published) = registry.policies().at(by);
        let due = last.saturating_add(policy.attestation_period);
        if due >= as_of {
            return;
        }
        let mut entries = vec![a.since_by];
        if let Some((_, i)) = latest {
            entries.push(i);
        }
        entries.extend(published);
        out(Finding {
            id: finding_id(Rule::MissingAttestation, a.since_by, None, Some(&system)),
            rule: Rule::MissingAttestation,
            entries,
            party: Some(a.party),
            system: Some(system),
            asset: None,
            grant: None,
            retention_rule: None,
            at: due,
            detail: Reason::NoAttestation(as_of - last).to_string(),
            observed_by: None,
            observed_on: None,
        });
    })?;
    Ok(())
}

/// `After` is the findings' state after one more delta, read without
/// applying it: the births and classes the delta's event creates, over
/// the state before it. See [`FindingsDelta::after`].
pub struct After<'a, S: ?Sized> {
    delta: &'a FindingsDelta,
    base: &'a S,
    /// Where each asset's last birth and class are in the delta, for a
    /// delta of many (a bulk event's): a lookup per member must not scan
    /// every member.
    births: HashMap<Digest, usize>,
    classes: HashMap<Digest, usize>,
}

/// `AFTER_SCAN` is the largest delta [`After`] searches by scanning; a
/// larger one is indexed first.
const AFTER_SCAN: usize = 16;

/// `last_positions` maps each asset to the position of its last
/// occurrence in `assets`, or is empty for few enough to scan.
fn last_positions<'a>(assets: impl ExactSizeIterator<Item = &'a Digest>) -> HashMap<Digest, usize> {
    if assets.len() <= AFTER_SCAN {
        return HashMap::new();
    }
    assets.enumerate().map(|(n, d)| (*d, n)).collect()
}

impl FindingsDelta {
    /// `extend` adds `more`, what a later part of the same event's
    /// observation raised ([`observe_members`] after [`observe_event`]).
    pub fn extend(&mut self, more: FindingsDelta) {
        self.raised.extend(more.raised);
        self.births.extend(more.births);
        self.classes.extend(more.classes);
        self.attesting.extend(more.attesting);
        self.seq = more.seq.or(self.seq.take());
        self.attestation = more.attestation.or(self.attestation.take());
        self.pending = more.pending.or(self.pending.take());
        self.receipt = more.receipt.or(self.receipt.take());
        self.hold = more.hold.or(self.hold.take());
    }

    /// `after` reads `base` as it will be once this delta is applied, as
    /// far as births and classes go (what [`held_birth`] reads).
    pub fn after<'a, S: FindingsState + ?Sized>(&'a self, base: &'a S) -> After<'a, S> {
        After {
            delta: self,
            base,
            births: last_positions(self.births.iter().map(|(d, _, _)| d)),
            classes: last_positions(self.classes.iter().map(|(d, _)| d)),
        }
    }
}

impl<S: FindingsState + ?Sized> FindingsState for After<'_, S> {
    fn last_seq(&self, reporter: &str) -> Result<u64, Refusal> {
        match &self.delta.seq {
            Some((r, s)) if r == reporter => Ok(*s),
            _ => self.base.last_seq(reporter),
        }
    }
    fn birth(&self, asset: &Digest) -> Result<Option<Birth>, Refusal> {
        let found = if self.births.is_empty() {
            self.delta.births.iter().rev().find(|(a, _, _)| a == asset)
        } else {
            self.births
                .get(asset)
                .and_then(|n| self.delta.births.get(*n))
        };
        match found {
            Some((_, b, _)) => Ok(Some(b.clone())),
            None => self.base.birth(asset),
        }
    }
    fn class(&self, asset: &Digest) -> Result<Option<(Modality, SubjectClass, u64)>, Refusal> {
        let found = if self.classes.is_empty() {
            self.delta.classes.iter().rev().find(|(a, _)| a == asset)
        } else {
            self.classes
                .get(asset)
                .and_then(|n| self.delta.classes.get(*n))
        };
        match found {
            Some((_, c)) => Ok(Some(*c)),
            None => self.base.class(asset),
        }
    }
    fn is_attesting(&self, system: &str) -> Result<bool, Refusal> {
        Ok(self.delta.attesting.iter().any(|(s, _)| s == system)
            || self.base.is_attesting(system)?)
    }
    fn transfer_time(&self, index: u64) -> Result<Option<Timestamp>, Refusal> {
        match &self.delta.pending {
            Some((i, p)) if *i == index => Ok(Some(p.at)),
            _ => self.base.transfer_time(index),
        }
    }
}

/// `FindingsOverlay` is the findings' state changed by entries sequenced
/// but not yet committed, over a base view of what is committed (as
/// [`crate::Overlay`] is for custody state).
pub struct FindingsOverlay<V> {
    /// What is committed.
    pub base: V,
    seqs: std::collections::HashMap<String, u64>,
    births: std::collections::HashMap<Digest, Birth>,
    classes: std::collections::HashMap<Digest, (Modality, SubjectClass, u64)>,
    attesting: std::collections::HashSet<String>,
    transfers: std::collections::HashMap<u64, Timestamp>,
}

impl<V: FindingsState> FindingsOverlay<V> {
    /// `new` is an empty overlay on `base`.
    pub fn new(base: V) -> Self {
        Self {
            base,
            seqs: Default::default(),
            births: Default::default(),
            classes: Default::default(),
            attesting: Default::default(),
            transfers: Default::default(),
        }
    }

    /// `apply` records an event's delta.
    pub fn apply(&mut self, d: &FindingsDelta) {
        if let Some((r, s)) = &d.seq {
            self.seqs.insert(r.clone(), *s);
        }
        for (a, b, _) in &d.births {
            self.births.insert(*a, b.clone());
        }
        for (a, c) in &d.classes {
            self.classes.insert(*a, *c);
        }
        for (s, _) in &d.attesting {
            self.attesting.insert(s.clone());
        }
        if let Some((i, p)) = &d.pending {
            self.transfers.insert(*i, p.at);
        }
    }
}

impl<V: FindingsState> FindingsState for FindingsOverlay<V> {
    fn last_seq(&self, reporter: &str) -> Result<u64, Refusal> {
        match self.seqs.get(reporter) {
            Some(s) => Ok(*s),
            None => self.base.last_seq(reporter),
        }
    }
    fn birth(&self, asset: &Digest) -> Result<Option<Birth>, Refusal> {
        match self.births.get(asset) {
            Some(b) => Ok(Some(b.clone())),
            None => self.base.birth(asset),
        }
    }
    fn class(&self, asset: &Digest) -> Result<Option<(Modality, SubjectClass, u64)>, Refusal> {
        match self.classes.get(asset) {
            Some(c) => Ok(Some(*c)),
            None => self.base.class(asset),
        }
    }
    fn is_attesting(&self, system: &str) -> Result<bool, Refusal> {
        Ok(self.attesting.contains(system) || self.base.is_attesting(system)?)
    }
    fn transfer_time(&self, index: u64) -> Result<Option<Timestamp>, Refusal> {
        match self.transfers.get(&index) {
            Some(t) => Ok(Some(*t)),
            None => self.base.transfer_time(index),
        }
    }
}
