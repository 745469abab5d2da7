//! Verification of a finding bundle: the finding's fields against the
//! entries it cites, rule by rule, and a statement that says plainly what
//! the entries prove and what only a replay of the whole log can.
//!
//! A finding rests on two kinds of fact. Some are in the entries it cites
//! (who copied what where, under which grant, with which purpose, when it
//! was logged), and these are checked here. Others are absences (no
//! receipt, no attestation, no earlier transfer, no legal hold) or the
//! policy the log applies to an entry (its reporting deadline, receipt window
//! and attestation period, from the last POLICY_PUBLISHED before it); a
//! bundle does not prove those, and the statement says so.

use std::collections::BTreeSet;

use custody_domain::findings::{
    self as rules, finding_id, uncovered, Finding, Policy, Reason, Rule, TransferCheck, Uncovered,
};
use custody_domain::{
    hex, rfc3339, AssetRef, CustodyAction, CustodyActionKind as K, Event, EventBody,
    RetentionClock, Timestamp,
};

use crate::check::{counted, join_and, Claim};
use crate::evidence::{Used, VerifiedEvidence};
use crate::EvidenceError;

const SEC: i64 = 1_000_000_000;

/// `NO_REVOCATION` is what no bundle proves about its signing keys.
const NO_REVOCATION: &str = "that a signing key was not revoked after it signed";

/// `REPLAY` says how an absence is established.
const REPLAY: &str = "only a replay of the whole log, custody audit, establishes an absence";

/// `Ctx` is one finding being checked against the verified entries.
struct Ctx<'a> {
    f: &'a Finding,
    ev: &'a VerifiedEvidence,
    as_of: Timestamp,
    /// The POLICY_PUBLISHED a time-based finding cites last, with its
    /// entry; `f` then holds the rule's own entries, before it.
    policy: Option<(u64, Policy)>,
}

/// `split_policy` is a time-based finding without the POLICY_PUBLISHED it
/// cites last, and that policy with its entry (the engine cites the one
/// whose window it applies; none when the defaults apply).
fn split_policy(f: &Finding, ev: &VerifiedEvidence) -> (Finding, Option<(u64, Policy)>) {
    let timed = matches!(
        f.rule,
        Rule::LateReporting | Rule::UnacknowledgedTransfer | Rule::MissingAttestation
    );
    let mut view = f.clone();
    if let (true, [_, .., last]) = (timed, f.entries.as_slice()) {
        if let Some((
            Event {
                body: EventBody::PolicyPublished(p),
                ..
            },
            _,
        )) = ev.events.get(last)
        {
            view.entries.pop();
            return (view, Some((*last, *p)));
        }
    }
    (view, None)
}

/// `Cited` is one verified entry a finding cites.
struct Cited<'a> {
    index: u64,
    event: &'a Event,
    integrated: Timestamp,
}

impl Ctx<'_> {
    /// `window` is the window (`what`, chosen by `pick`) that the log's
    /// policy sets for entry `judged`: the cited POLICY_PUBLISHED's, which
    /// must come before it, or the default's. With it, the line that
    /// shows it, if an entry does, and what the bundle cannot show.
    fn window(
        &self,
        judged: u64,
        what: &str,
        pick: fn(&Policy) -> i64,
    ) -> Result<(i64, Option<String>, String), EvidenceError> {
        match self.policy {
            Some((i, p)) if i < judged => Ok((
                pick(&p),
                Some(format!(
                    "entry {i}: POLICY_PUBLISHED by the data owner, a {what} of {}",
                    secs(pick(&p))
                )),
                format!("that no other POLICY_PUBLISHED was logged between entries {i} and {judged} ({REPLAY})"),
            )),
            Some((i, _)) => Err(self.fail(format!(
                "it applies the policy of entry {i}, which is not before entry {judged}"
            ))),
            None => {
                let d = pick(&Policy::default());
                Ok((
                    d,
                    None,
                    format!(
                        "that no POLICY_PUBLISHED was logged before entry {judged}, so that the default {what} of {} applies ({REPLAY})",
                        secs(d)
                    ),
                ))
            }
        }
    }

    /// `applied` fails unless the finding applies `want`, the window its
    /// policy sets.
    fn applied(&self, what: &str, got: i64, want: i64) -> Result<(), EvidenceError> {
        if got == want {
            return Ok(());
        }
        Err(self.fail(format!(
            "it applies a {what} of {}, but the log's policy for it is {}",
            secs(got),
            secs(want)
        )))
    }
}

impl Cited<'_> {
    /// `custody` is the entry's custody action, if it is one of `kinds`.
    fn custody(&self, kinds: &[K]) -> Option<&CustodyAction> {
        match &self.event.body {
            EventBody::Custody(c) if kinds.contains(&c.action) => Some(c),
            _ => None,
        }
    }
}

impl<'a> Ctx<'a> {
    fn fail(&self, msg: impl std::fmt::Display) -> EvidenceError {
        EvidenceError::answer(format!("finding {}: {msg}", self.f.id))
    }

    /// `entry` is the `n`th cited entry (0-based).
    fn entry(&self, n: usize) -> Result<Cited<'a>, EvidenceError> {
        let index = *self
            .f
            .entries
            .get(n)
            .ok_or_else(|| self.fail(format!("it cites no entry {}", n + 1)))?;
        let (event, integrated) = self.ev.events.get(&index).ok_or_else(|| {
            self.fail(format!(
                "entry {index}, which it cites, is not in the bundle"
            ))
        })?;
        Ok(Cited {
            index,
            event,
            integrated: *integrated,
        })
    }

    /// `transfer` is the `n`th cited entry as a custody action of one of
    /// `kinds`.
    fn action(
        &self,
        n: usize,
        kinds: &[K],
    ) -> Result<(Cited<'a>, &'a CustodyAction), EvidenceError> {
        let e = self.entry(n)?;
        let c = match &e.event.body {
            EventBody::Custody(c) if kinds.contains(&c.action) => c,
            other => {
                return Err(self.fail(format!(
                    "entry {} is a {}, not a {}",
                    e.index,
                    other.code(),
                    join_or(kinds)
                )))
            }
        };
        Ok((e, c))
    }

    fn count(&self, allowed: std::ops::RangeInclusive<usize>) -> Result<(), EvidenceError> {
        let n = self.f.entries.len();
        if !allowed.contains(&n) {
            return Err(self.fail(format!(
                "it cites {}, but a {} finding cites {} to {}",
                counted(n as u64, "entry", "entries"),
                self.f.rule.name(),
                allowed.start(),
                allowed.end()
            )));
        }
        Ok(())
    }

    /// `same` requires a field of the finding to be what an entry says.
    fn same<T: PartialEq + std::fmt::Debug>(
        &self,
        field: &str,
        stated: &T,
        proven: &T,
        source: &str,
    ) -> Result<(), EvidenceError> {
        if stated != proven {
            return Err(self.fail(format!(
                "{field} is {stated:?}, but {source} says {proven:?}"
            )));
        }
        Ok(())
    }

    /// `none` requires the fields a rule never sets to be empty.
    fn none(&self, fields: &[(&str, bool)]) -> Result<(), EvidenceError> {
        for (name, set) in fields {
            if *set {
                return Err(self.fail(format!(
                    "{name} is set, but a {} finding has none",
                    self.f.rule.name()
                )));
            }
        }
        Ok(())
    }

    /// `single_asset` is the asset a custody action names directly.
    fn single_asset(c: &CustodyAction) -> Option<custody_domain::Digest> {
        match c.asset {
            Some(AssetRef::One(d)) => Some(d),
            _ => None,
        }
    }

    /// `transfer_fields` checks a finding about a COPY or MOVE: its party
    /// is the actor, its system the destination, its asset the one the
    /// entry names directly, its grant the one it names, and its time the
    /// event's.
    fn transfer_fields(
        &self,
        e: &Cited<'_>,
        c: &CustodyAction,
        class_asset: bool,
    ) -> Result<(), EvidenceError> {
        let src = format!("entry {}", e.index);
        let f = self.f;
        self.same("party", &f.party.as_deref(), &Some(c.actor.as_str()), &src)?;
        self.same(
            "system",
            &f.system.as_deref(),
            &Some(c.to_system.as_str()),
            &src,
        )?;
        if !class_asset {
            self.same(
                "asset",
                &f.asset.map(|a| hex(&a)),
                &Self::single_asset(c).map(|a| hex(&a)),
                &src,
            )?;
        }
        self.same(
            "grant",
            &f.grant.as_deref(),
            &(!c.grant_id.is_empty()).then_some(c.grant_id.as_str()),
            &src,
        )?;
        self.same("at", &rfc3339(f.at), &rfc3339(e.event.event_time), &src)
    }

    /// `grant` is the `n`th cited entry as the GRANT_ISSUED of `id`, logged
    /// before entry `before`.
    fn grant(
        &self,
        n: usize,
        id: &str,
        before: u64,
    ) -> Result<(Cited<'a>, &'a custody_domain::GrantIssued), EvidenceError> {
        let e = self.entry(n)?;
        match &e.event.body {
            EventBody::GrantIssued(g) if g.grant_id == id && e.index < before => Ok((e, g)),
            EventBody::GrantIssued(g) if g.grant_id == id => Err(self.fail(format!(
                "entry {} issues grant {id} only after entry {before}",
                e.index
            ))),
            other => Err(self.fail(format!(
                "entry {} is a {}, not the GRANT_ISSUED of grant {id}",
                e.index,
                other.code()
            ))),
        }
    }

    /// `owner` requires the bundle's registration of the finding's system
    /// to name the finding's party as owner, and records it as used.
    fn owner(&self, system: &str, party: &str, used: &mut Used) -> Result<u64, EvidenceError> {
        match self.ev.system_owner(system) {
            Some((owner, at)) if owner == party => {
                used.registry.insert(at);
                Ok(at)
            }
            Some((owner, at)) => Err(self.fail(format!(
                "party is {party}, but registry entry {at} registers system {system} to {owner}"
            ))),
            None => Err(self.fail(format!(
                "the bundle lacks the registration of system {system}, which shows its owner"
            ))),
        }
    }
}

fn join_or(kinds: &[K]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [head @ .., last] => format!("{} or {last}", head.join(", ")),
    }
}

/// `secs` is a duration in whole seconds, as findings state them.
fn secs(d: i64) -> String {
    format!("{} s", d / SEC)
}

/// `expected_id` is the id the engine gives a finding of these fields
/// ([`finding_id`], the engine's own constructor).
fn expected_id(f: &Finding) -> Option<String> {
    let first = *f.entries.first()?;
    let entry = match f.rule {
        // The interval's opening entry is the one before the rule's.
        Rule::RetentionOverdue => *f
            .entries
            .len()
            .checked_sub(2)
            .and_then(|n| f.entries.get(n))?,
        _ => first,
    };
    let (asset, system) = match f.rule {
        Rule::UnexplainedCustody | Rule::RetentionOverdue => {
            (Some(f.asset?), Some(f.system.as_deref()?))
        }
        Rule::MissingAttestation => (None, Some(f.system.as_deref()?)),
        _ => (None, None),
    };
    Some(finding_id(f.rule, entry, asset.as_ref(), system))
}

/// `check_finding` checks a finding answer against the verified entries
/// and says what it proves.
pub(crate) fn check_finding(
    id: &str,
    as_of: Timestamp,
    f: &Finding,
    ev: &VerifiedEvidence,
    used: &mut Used,
) -> Result<Claim, EvidenceError> {
    let (view, policy) = split_policy(f, ev);
    let whole = f;
    let f = &view;
    let cx = Ctx {
        f,
        ev,
        as_of,
        policy,
    };
    if f.id != id {
        return Err(EvidenceError::answer(format!(
            "the finding's id {:?} is not the question's id {id:?}",
            f.id
        )));
    }
    if f.entries.is_empty() {
        return Err(cx.fail("it cites no entry"));
    }
    let mut seen = BTreeSet::new();
    for i in &whole.entries {
        if !seen.insert(*i) {
            return Err(cx.fail(format!("it cites entry {i} twice")));
        }
        if !ev.events.contains_key(i) {
            return Err(cx.fail(format!("entry {i}, which it cites, is not in the bundle")));
        }
        used.entries.insert(*i);
    }
    match expected_id(f) {
        Some(want) if want == f.id => {}
        Some(want) => {
            return Err(cx.fail(format!(
                "a {} finding of these fields has id {want:?}",
                f.rule.name()
            )))
        }
        None => {
            return Err(cx.fail(format!(
                "it lacks a field a {} finding's id names",
                f.rule.name()
            )))
        }
    }
    if f.at > as_of {
        return Err(cx.fail(format!(
            "it arose at {}, after the question's time {}",
            rfc3339(f.at),
            rfc3339(as_of)
        )));
    }
    // A bulk event names the finding's asset through a membership proof.
    if let Some(asset) = &f.asset {
        for i in &f.entries {
            if let Some((
                Event {
                    body: EventBody::Custody(c),
                    ..
                },
                _,
            )) = ev.events.get(i)
            {
                if let Some(a @ AssetRef::Manifest(_)) = &c.asset {
                    ev.names_asset(a, asset, used);
                }
            }
        }
    }
    // An observed action: the reporter of the entry the finding is about
    // saw another party, the finding's party, act on one of its systems.
    let mut observed_line = None;
    match (&f.observed_by, &f.observed_on) {
        (None, None) => {}
        (Some(by), Some(on)) => {
            let e = cx.entry(0)?;
            let (actor, systems): (&str, Vec<&str>) = match &e.event.body {
                EventBody::Custody(c) => (&c.actor, vec![&c.from_system, &c.to_system]),
                EventBody::MaintenanceSession(m) => (&m.actor, vec![&m.system_id]),
                other => {
                    return Err(cx.fail(format!(
                        "it says entry {} was observed, but a {} has no actor",
                        e.index,
                        other.code()
                    )))
                }
            };
            if e.event.reporter != *by || actor == by.as_str() || !systems.contains(&on.as_str()) {
                return Err(cx.fail(format!(
                    "it says {by} observed the action on {on}, but entry {} was reported by {} about {actor} on {}",
                    e.index,
                    e.event.reporter,
                    systems.iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" and ")
                )));
            }
            if f.party.as_deref() != Some(actor) {
                return Err(cx.fail(format!(
                    "an observed action's finding is about its actor {actor}"
                )));
            }
            observed_line = Some(format!("reported by {by}, observed on system {on}"));
        }
        _ => {
            return Err(cx
                .fail("it names an observer without its system, or a system without its observer"))
        }
    }
    let (detail, mut limits) = match f.rule {
        Rule::UnauthorizedTransfer => unauthorized_transfer(&cx, used)?,
        Rule::BoundaryViolation => boundary_violation(&cx)?,
        Rule::PurposeDrift => purpose_drift(&cx)?,
        Rule::LateReporting => late_reporting(&cx)?,
        Rule::SequenceGap => sequence_gap(&cx)?,
        Rule::UnexplainedCustody => unexplained_custody(&cx, used)?,
        Rule::UnacknowledgedTransfer => unacknowledged_transfer(&cx)?,
        Rule::MissingAttestation => missing_attestation(&cx, used)?,
        Rule::RetentionOverdue => retention_overdue(&cx, used)?,
    };
    let mut about = Vec::new();
    if let Some(p) = &f.party {
        about.push(format!("party {p}"));
    }
    if let Some(s) = &f.system {
        about.push(format!("system {s}"));
    }
    if let Some(a) = &f.asset {
        about.push(format!("asset {}", hex(a)));
    }
    let mut lines = vec![format!(
        "as of {}, finding {} (rule {}) about {}: {} (arose {})",
        rfc3339(as_of),
        f.id,
        f.rule.name(),
        if about.is_empty() {
            "the log".to_owned()
        } else {
            join_and(&about)
        },
        f.detail,
        rfc3339(f.at)
    )];
    if let Some(o) = observed_line {
        lines.push(format!("  {o}"));
        limits.push(format!(
            "that {} owns or operates the system it observed on (party kinds and agency are in registry entries the bundle does not hold)",
            f.observed_by.as_deref().unwrap_or_default()
        ));
    }
    lines.extend(detail.into_iter().map(|l| format!("  {l}")));
    limits.push(NO_REVOCATION.into());
    Ok(Claim {
        lines,
        limits: match limits.split_last() {
            Some((last, head)) if !head.is_empty() => format!("{}, or {last}", head.join(", ")),
            _ => limits.join(""),
        },
    })
}

type Checked = (Vec<String>, Vec<String>);

fn action_line(e: &Cited<'_>, c: &CustodyAction) -> String {
    let mut s = format!("entry {}: {} by {}", e.index, c.action.name(), c.actor);
    if let Some(a) = &c.asset {
        match a {
            AssetRef::One(d) => s += &format!(" of asset {}", hex(d)),
            AssetRef::Manifest(m) => s += &format!(" of a manifest of {} assets", m.count),
        }
    }
    if !c.from_system.is_empty() {
        s += &format!(" from {}", c.from_system);
    }
    if !c.to_system.is_empty() {
        s += &format!(" to {}", c.to_system);
    }
    s += &format!(" at {}", rfc3339(e.event.event_time));
    if e.event.reporter != c.actor {
        s += &format!(", reported by {}", e.event.reporter);
    }
    match (c.grant_id.as_str(), c.purpose) {
        ("", None) => s += ", naming no grant and no purpose",
        ("", Some(p)) => s += &format!(", naming no grant, for purpose {}", p.name()),
        (g, None) => s += &format!(", under grant {g}, naming no purpose"),
        (g, Some(p)) => s += &format!(", under grant {g}, for purpose {}", p.name()),
    }
    s
}

const TRANSFERS: [K; 2] = [K::Copy, K::Move];

fn unauthorized_transfer(cx: &Ctx<'_>, used: &mut Used) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=3)?;
    cx.none(&[("retention_rule", f.retention_rule.is_some())])?;
    let (e, c) = cx.action(0, &TRANSFERS)?;
    // The reason is chosen from what the entries are, never from the
    // finding's words: a third entry is either the grant's revocation or
    // the entry that created the asset of an uncovered class.
    let revoked = match f.entries.len() {
        3 => {
            let third = cx.entry(2)?;
            matches!(third.event.body, EventBody::GrantRevoked(_)).then_some(third)
        }
        _ => None,
    };
    // A finding about a class names the asset of that class, which a bulk
    // transfer names through its manifest.
    let class_asset = f.entries.len() == 3 && revoked.is_none();
    cx.transfer_fields(&e, c, class_asset)?;
    // The destination's registration names the recipient a grant must
    // cover; the server cites it with every such finding.
    let recipient = cx.ev.system_owner(&c.to_system).map(|(o, at)| {
        used.registry.insert(at);
        o.to_owned()
    });
    let mut lines = vec![action_line(&e, c)];
    let mut limits = vec![format!(
        "that the transfer was not one the data owner's own agents made between its own systems, which needs no grant (party kinds and agency are in registry entries the bundle does not hold)"
    )];
    let src = format!("entry {}", e.index);
    let t = e.event.event_time;
    if f.entries.len() == 1 {
        if c.grant_id.is_empty() {
            cx.same("detail", &f.detail, &Reason::NoGrant.to_string(), &src)?;
            lines.push("the transfer names no grant".into());
        } else {
            let g = &c.grant_id;
            let why = Reason::GrantNeverIssued(g.clone()).to_string();
            cx.same("detail", &f.detail, &why, &src)?;
            lines.push(format!("the transfer names grant {g}"));
            limits.push(format!("that grant {g} was never issued ({REPLAY})"));
        }
        return Ok((lines, limits));
    }
    let (ge, g) = cx.grant(1, &c.grant_id, e.index)?;
    lines.push(format!(
        "entry {}: GRANT_ISSUED of grant {} to {}: actions {}, purposes {}, systems {}, valid from {}{}",
        ge.index,
        g.grant_id,
        g.grantee,
        list_or_any(g.actions.iter().map(|a| a.name().to_owned())),
        list_or_any(g.purposes.iter().map(|p| p.name().to_owned())),
        list_or_any(g.systems.iter().cloned()),
        rfc3339(g.valid_from),
        g.valid_to.map_or(String::new(), |to| format!(" to {}", rfc3339(to)))
    ));
    if let Some(re) = revoked {
        match &re.event.body {
            EventBody::GrantRevoked(gr) if gr.grant_id == g.grant_id && re.index < e.index => {}
            _ => {
                return Err(cx.fail(format!(
                    "entry {} is not a GRANT_REVOKED of grant {} logged before entry {}",
                    re.index, g.grant_id, e.index
                )))
            }
        }
        let why = Reason::GrantRevoked(re.index).to_string();
        cx.same("detail", &f.detail, &why, &format!("entry {}", re.index))?;
        lines.push(format!(
            "entry {}: GRANT_REVOKED of grant {}, logged before the transfer",
            re.index, g.grant_id
        ));
        return Ok((lines, limits));
    }
    // The reason is the domain's own (`findings::uncovered`), computed
    // again here from the cited grant, transfer and, for a class, the
    // entry that created the asset.
    let mut classes = Vec::new();
    if class_asset {
        let (b, bc) = cx.action(2, &[K::Capture, K::Derive])?;
        let asset = f
            .asset
            .ok_or_else(|| cx.fail("it names no asset for the class it cites"))?;
        if !bc
            .asset
            .is_some_and(|a| cx.ev.names_asset(&a, &asset, used))
            || !c.asset.is_some_and(|a| cx.ev.names_asset(&a, &asset, used))
        {
            return Err(cx.fail(format!(
                "entries {} and {} are not proven to name asset {}",
                e.index,
                b.index,
                hex(&asset)
            )));
        }
        let (Some(m), Some(sc)) = (bc.modality, bc.subject_class) else {
            return Err(cx.fail(format!("entry {} states no class", b.index)));
        };
        lines.push(action_line(&b, bc));
        classes.push((m, sc, b.index, asset));
    }
    let check = TransferCheck {
        action: c.action,
        recipient: recipient.as_deref().unwrap_or_default(),
        to_system: &c.to_system,
        purpose: c.purpose,
        at: t,
        classes: &classes,
    };
    // Agency is in registry entries the bundle does not hold. Taking the
    // recipient to be outside the grant unless it is the grantee gives
    // the first reason; taking it to act for the grantee gives the reason
    // any later check gives. The finding's must be one of the two.
    let strict = uncovered(|a, p| a == p, g, &check);
    let lenient = uncovered(|_, _| recipient.is_some(), g, &check);
    let onward = || (g.max_onward_transfers == 0 && !class_asset).then_some(Reason::OnwardTransfer);
    let reasons: Vec<Reason> = [
        strict.clone().map(Reason::Uncovered),
        lenient.map(Reason::Uncovered).or_else(onward),
    ]
    .into_iter()
    .flatten()
    .collect();
    let Some(why) = reasons.iter().find(|r| r.to_string() == f.detail) else {
        return Err(cx.fail(match reasons.last() {
            Some(r) => format!(
                "detail says {:?}, but the cited entries give {:?}",
                f.detail,
                r.to_string()
            ),
            None => format!(
                "detail says {:?}, but the cited grant covers the transfer{}",
                f.detail,
                if recipient.is_none() {
                    " (or the bundle lacks the destination's registration)"
                } else {
                    ""
                }
            ),
        }));
    };
    match why {
        Reason::Uncovered(Uncovered::Recipient { recipient, grantee }) => limits.push(format!(
            "that {recipient} does not act for {grantee} (agency is in PARTY_REGISTERED entries the bundle does not hold)"
        )),
        Reason::OnwardTransfer => {
            lines.push("the grant allows no onward transfer".into());
            limits.push(format!(
                "that the source system {} is a vendor's (party kinds are in registry entries the bundle does not hold)",
                c.from_system
            ));
            return Ok((lines, limits));
        }
        _ => {}
    }
    lines.push(format!("the grant does not cover it: {why}"));
    Ok((lines, limits))
}

fn list_or_any(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "any".into()
    } else {
        v.join(" ")
    }
}

fn boundary_violation(cx: &Ctx<'_>) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(2..=2)?;
    cx.none(&[("retention_rule", f.retention_rule.is_some())])?;
    let (e, c) = cx.action(0, &TRANSFERS)?;
    cx.transfer_fields(&e, c, false)?;
    let r = cx.entry(1)?;
    let s = match &r.event.body {
        EventBody::SystemRegistered(s) if s.system_id == c.to_system && r.index < e.index => s,
        _ => {
            return Err(cx.fail(format!(
                "entry {} is not the SYSTEM_REGISTERED of system {} logged before entry {}",
                r.index, c.to_system, e.index
            )))
        }
    };
    let why = s.boundary_breaches();
    if why.is_empty() {
        return Err(cx.fail(format!(
            "entry {} registers system {} inside the boundary, accredited, encrypted at rest and not removable",
            r.index, s.system_id
        )));
    }
    cx.same(
        "detail",
        &f.detail,
        &Reason::Boundary(why).to_string(),
        &format!("entry {}", r.index),
    )?;
    let flags = [
        (
            s.inside_boundary,
            "inside the boundary",
            "outside the boundary",
        ),
        (s.accredited, "accredited", "not accredited"),
        (
            s.encrypted_at_rest,
            "encrypted at rest",
            "not encrypted at rest",
        ),
        (!s.removable_media, "not removable media", "removable media"),
    ]
    .iter()
    .map(|(ok, yes, no)| if *ok { *yes } else { *no }.to_owned())
    .collect::<Vec<_>>();
    Ok((
        vec![
            action_line(&e, c),
            format!(
                "entry {}: SYSTEM_REGISTERED of {} (owner {}): {}",
                r.index,
                s.system_id,
                s.owner_party,
                join_and(&flags)
            ),
        ],
        Vec::new(),
    ))
}

fn purpose_drift(cx: &Ctx<'_>) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=2)?;
    cx.none(&[("retention_rule", f.retention_rule.is_some())])?;
    let (e, c) = cx.action(0, &[K::Access, K::Use])?;
    let src = format!("entry {}", e.index);
    cx.same("party", &f.party.as_deref(), &Some(c.actor.as_str()), &src)?;
    cx.same(
        "system",
        &f.system.as_deref(),
        &Some(c.from_system.as_str()),
        &src,
    )?;
    cx.same(
        "asset",
        &f.asset.map(|a| hex(&a)),
        &Ctx::single_asset(c).map(|a| hex(&a)),
        &src,
    )?;
    cx.same(
        "grant",
        &f.grant.as_deref(),
        &(!c.grant_id.is_empty()).then_some(c.grant_id.as_str()),
        &src,
    )?;
    cx.same("at", &rfc3339(f.at), &rfc3339(e.event.event_time), &src)?;
    let Some(p) = c.purpose else {
        return Err(cx.fail(format!("{src} names no purpose")));
    };
    cx.same(
        "detail",
        &f.detail,
        &Reason::PurposeNotGranted(p).to_string(),
        &src,
    )?;
    let mut lines = vec![action_line(&e, c)];
    let mut limits = Vec::new();
    if f.entries.len() == 2 {
        let (ge, g) = cx.grant(1, &c.grant_id, e.index)?;
        if g.purposes.is_empty() || g.purposes.contains(&p) {
            return Err(cx.fail(format!(
                "entry {} grants purposes {}, which cover {}",
                ge.index,
                list_or_any(g.purposes.iter().map(|p| p.name().to_owned())),
                p.name()
            )));
        }
        lines.push(format!(
            "entry {}: GRANT_ISSUED of grant {} to {} for purposes {}, not {}",
            ge.index,
            g.grant_id,
            g.grantee,
            list_or_any(g.purposes.iter().map(|p| p.name().to_owned())),
            p.name()
        ));
    } else if c.grant_id.is_empty() {
        lines.push(format!("the {} names no grant", c.action.name()));
        limits.push(format!(
            "that {} acts for a vendor, to whom the rule applies (party kinds are in registry entries the bundle does not hold)",
            c.actor
        ));
    } else {
        limits.push(format!(
            "that grant {} was never issued ({REPLAY})",
            c.grant_id
        ));
    }
    Ok((lines, limits))
}

fn event_line(e: &Cited<'_>) -> String {
    format!(
        "entry {}: {} reported by {} (event id {})",
        e.index,
        e.event.body.code(),
        e.event.reporter,
        e.event.event_id
    )
}

fn late_reporting(cx: &Ctx<'_>) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=1)?;
    cx.none(&[
        ("system", f.system.is_some()),
        ("asset", f.asset.is_some()),
        ("grant", f.grant.is_some()),
        ("retention_rule", f.retention_rule.is_some()),
    ])?;
    let e = cx.entry(0)?;
    let src = format!("entry {}", e.index);
    cx.same(
        "party",
        &f.party.as_deref(),
        &Some(e.event.reporter.as_str()),
        &src,
    )?;
    let t = e.event.event_time;
    let delay = e.integrated - t;
    let deadline = f.at - t;
    let (want, policy_line, unproven) =
        cx.window(e.index, "reporting deadline", |p| p.reporting_deadline)?;
    cx.applied("reporting deadline", deadline, want)?;
    if deadline < 0 || delay <= deadline {
        return Err(cx.fail(format!(
            "{src} was logged {} after it happened, within the {} the finding's time allows",
            secs(delay),
            secs(deadline.max(0))
        )));
    }
    cx.same(
        "detail",
        &f.detail,
        &Reason::LateReporting { delay, deadline }.to_string(),
        &src,
    )?;
    let mut lines = vec![
        event_line(&e),
        format!(
            "it happened at {} and was logged at {}, {} later; the finding applies a reporting deadline of {}",
            rfc3339(t),
            rfc3339(e.integrated),
            secs(delay),
            secs(deadline)
        ),
    ];
    lines.extend(policy_line);
    Ok((lines, vec![unproven]))
}

fn sequence_gap(cx: &Ctx<'_>) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=1)?;
    cx.none(&[
        ("system", f.system.is_some()),
        ("asset", f.asset.is_some()),
        ("grant", f.grant.is_some()),
        ("retention_rule", f.retention_rule.is_some()),
    ])?;
    let e = cx.entry(0)?;
    let src = format!("entry {}", e.index);
    cx.same(
        "party",
        &f.party.as_deref(),
        &Some(e.event.reporter.as_str()),
        &src,
    )?;
    cx.same("at", &rfc3339(f.at), &rfc3339(e.event.event_time), &src)?;
    let seq = e.event.reporter_seq;
    let last = f
        .detail
        .strip_prefix(&format!("sequence number {seq} follows "))
        .and_then(|r| r.split_once(';'))
        .and_then(|(l, _)| l.parse::<u64>().ok())
        .filter(|l| rules::sequence_gap(*l, seq).is_some())
        .ok_or_else(|| {
            cx.fail(format!(
                "detail {:?} does not state a gap before {src}'s sequence number {seq}",
                f.detail
            ))
        })?;
    cx.same(
        "detail",
        &f.detail,
        &Reason::SequenceGap { seq, last }.to_string(),
        &src,
    )?;
    Ok((
        vec![
            event_line(&e),
            format!("it carries reporter sequence number {seq}"),
        ],
        vec![format!(
            "that {last} was {}'s highest earlier sequence number and that no entry carries the {} missing ({REPLAY})",
            e.event.reporter,
            counted(
                rules::sequence_gap(last, seq).unwrap_or_default(),
                "number",
                "numbers"
            )
        )],
    ))
}

fn unexplained_custody(cx: &Ctx<'_>, used: &mut Used) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=1)?;
    cx.none(&[
        ("grant", f.grant.is_some()),
        ("retention_rule", f.retention_rule.is_some()),
    ])?;
    let e = cx.entry(0)?;
    let src = format!("entry {}", e.index);
    let Some(c) = e.custody(K::ALL) else {
        return Err(cx.fail(format!(
            "{src} is a {}, not a custody event",
            e.event.body.code()
        )));
    };
    cx.same("party", &f.party.as_deref(), &Some(c.actor.as_str()), &src)?;
    cx.same("at", &rfc3339(f.at), &rfc3339(e.event.event_time), &src)?;
    let (Some(asset), Some(system)) = (&f.asset, &f.system) else {
        return Err(cx.fail("it names no asset or no system"));
    };
    if c.from_system != *system && c.to_system != *system {
        return Err(cx.fail(format!("{src} does not act on system {system}")));
    }
    if !c.asset.is_some_and(|a| cx.ev.names_asset(&a, asset, used)) {
        return Err(cx.fail(format!("{src} is not proven to name asset {}", hex(asset))));
    }
    cx.same(
        "detail",
        &f.detail.as_str(),
        &Reason::Unexplained.to_string().as_str(),
        "the rule",
    )?;
    Ok((
        vec![action_line(&e, c)],
        vec![format!(
            "that the log never showed asset {} on {system} before entry {} ({REPLAY})",
            hex(asset),
            e.index
        )],
    ))
}

fn unacknowledged_transfer(cx: &Ctx<'_>) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=2)?;
    cx.none(&[("retention_rule", f.retention_rule.is_some())])?;
    let (e, c) = cx.action(0, &TRANSFERS)?;
    let src = format!("entry {}", e.index);
    cx.same("party", &f.party.as_deref(), &Some(c.actor.as_str()), &src)?;
    cx.same(
        "system",
        &f.system.as_deref(),
        &Some(c.to_system.as_str()),
        &src,
    )?;
    cx.same(
        "asset",
        &f.asset.map(|a| hex(&a)),
        &Ctx::single_asset(c).map(|a| hex(&a)),
        &src,
    )?;
    cx.none(&[("grant", f.grant.is_some())])?;
    let t = e.event.event_time;
    let window = f.at - t;
    let (want, policy_line, unproven) =
        cx.window(e.index, "receipt window", |p| p.receipt_window)?;
    cx.applied("receipt window", window, want)?;
    if window <= 0 || f.at >= cx.as_of {
        return Err(cx.fail(format!(
            "its receipt deadline {} is not after the transfer at {} and before the question's time",
            rfc3339(f.at),
            rfc3339(t)
        )));
    }
    let mut lines = vec![
        action_line(&e, c),
        format!(
            "the receipt window the finding applies ({}) ended at {}, before {}",
            secs(window),
            rfc3339(f.at),
            rfc3339(cx.as_of)
        ),
    ];
    lines.extend(policy_line);
    let mut limits = vec![unproven];
    // The reason follows from the entries: the transfer alone, or the
    // transfer and its late receipt.
    let why = if f.entries.len() == 1 {
        Reason::NoReceipt
    } else {
        Reason::ReceiptAfterWindow
    };
    cx.same(
        "detail",
        &f.detail,
        &why.to_string(),
        &format!("its {} cited entries", f.entries.len()),
    )?;
    match why {
        Reason::NoReceipt => {
            cx.count(1..=1)?;
            limits.insert(
                0,
                format!(
                    "that no RECEIPT of entry {} was logged by {} ({REPLAY})",
                    e.index,
                    rfc3339(cx.as_of)
                ),
            );
        }
        _ => {
            cx.count(2..=2)?;
            let r = cx.entry(1)?;
            let late = match r.custody(&[K::Receipt]) {
                Some(rc) if rc.receipt_of == Some(e.index) => {
                    r.event.event_time > f.at || r.event.event_time > cx.as_of
                }
                _ => {
                    return Err(cx.fail(format!(
                        "entry {} is not a RECEIPT of entry {}",
                        r.index, e.index
                    )))
                }
            };
            if !late {
                return Err(cx.fail(format!(
                    "entry {} acknowledges the transfer at {}, within the window",
                    r.index,
                    rfc3339(r.event.event_time)
                )));
            }
            lines.push(format!(
                "entry {}: RECEIPT of entry {} by {} at {}, after the window",
                r.index,
                e.index,
                r.event.reporter,
                rfc3339(r.event.event_time)
            ));
            limits.insert(
                0,
                format!(
                    "that no earlier RECEIPT of entry {} was logged ({REPLAY})",
                    e.index
                ),
            );
        }
    }
    Ok((lines, limits))
}

const OPENS: [K; 4] = [K::Capture, K::Copy, K::Move, K::Derive];

fn missing_attestation(cx: &Ctx<'_>, used: &mut Used) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(1..=2)?;
    cx.none(&[
        ("asset", f.asset.is_some()),
        ("grant", f.grant.is_some()),
        ("retention_rule", f.retention_rule.is_some()),
    ])?;
    let (Some(system), Some(party)) = (&f.system, &f.party) else {
        return Err(cx.fail("it names no system or no party"));
    };
    let (e, c) = cx.action(0, &OPENS)?;
    if c.to_system != *system {
        return Err(cx.fail(format!("entry {} puts nothing on system {system}", e.index)));
    }
    let reg = cx.owner(system, party, used)?;
    let since = e.event.event_time;
    let mut lines = vec![
        action_line(&e, c),
        format!("registry entry {reg}: system {system} is {party}'s"),
    ];
    let mut last = since;
    // The duty runs from the last attestation, or from the custody.
    let mut judged = e.index;
    if f.entries.len() == 2 {
        let a = cx.entry(1)?;
        match &a.event.body {
            EventBody::CustodyAttestation(x) if x.system_id == *system => {}
            _ => {
                return Err(cx.fail(format!(
                    "entry {} is not a CUSTODY_ATTESTATION of system {system}",
                    a.index
                )))
            }
        }
        if a.event.event_time <= cx.as_of {
            last = a.event.event_time;
            judged = a.index;
        }
        lines.push(format!(
            "entry {}: CUSTODY_ATTESTATION of {system} by {} at {}",
            a.index,
            a.event.reporter,
            rfc3339(a.event.event_time)
        ));
    }
    let period = f.at - last;
    let (want, policy_line, unproven) =
        cx.window(judged, "attestation period", |p| p.attestation_period)?;
    cx.applied("attestation period", period, want)?;
    if period <= 0 || f.at >= cx.as_of {
        return Err(cx.fail(format!(
            "its deadline {} is not after {} and before the question's time",
            rfc3339(f.at),
            rfc3339(last)
        )));
    }
    cx.same(
        "detail",
        &f.detail,
        &Reason::NoAttestation(cx.as_of - last).to_string(),
        "the cited entries",
    )?;
    lines.push(format!(
        "from {} to {}, {} passed; the attestation period the finding applies is {}",
        rfc3339(last),
        rfc3339(cx.as_of),
        secs(cx.as_of - last),
        secs(period)
    ));
    lines.extend(policy_line);
    Ok((
        lines,
        vec![
            format!(
                "that no CUSTODY_ATTESTATION of {system} was logged between {} and {} ({REPLAY})",
                rfc3339(last),
                rfc3339(cx.as_of)
            ),
            unproven,
        ],
    ))
}

fn retention_overdue(cx: &Ctx<'_>, used: &mut Used) -> Result<Checked, EvidenceError> {
    let f = cx.f;
    cx.count(2..=3)?;
    cx.none(&[("grant", f.grant.is_some())])?;
    let (Some(system), Some(party), Some(asset), Some(rule_id)) =
        (&f.system, &f.party, &f.asset, &f.retention_rule)
    else {
        return Err(cx.fail("it names no system, party, asset or retention rule"));
    };
    let n = f.entries.len();
    let (o, oc) = cx.action(n - 2, &OPENS)?;
    if oc.to_system != *system || !oc.asset.is_some_and(|a| cx.ev.names_asset(&a, asset, used)) {
        return Err(cx.fail(format!(
            "entry {} is not proven to put asset {} on system {system}",
            o.index,
            hex(asset)
        )));
    }
    let r = cx.entry(n - 1)?;
    let rule = match &r.event.body {
        EventBody::RetentionRulePublished(x) if x.rule_id == *rule_id => x,
        other => {
            return Err(cx.fail(format!(
                "entry {} is a {}, not the RETENTION_RULE_PUBLISHED of rule {rule_id}",
                r.index,
                other.code()
            )))
        }
    };
    if !rule.system_id.is_empty() && rule.system_id != *system {
        return Err(cx.fail(format!(
            "rule {rule_id} applies to system {}, not {system}",
            rule.system_id
        )));
    }
    let reg = cx.owner(system, party, used)?;
    let mut lines = vec![action_line(&o, oc)];
    let mut limits = Vec::new();
    let born = if n == 3 {
        let (b, bc) = cx.action(0, &[K::Capture, K::Derive])?;
        if b.index >= o.index {
            return Err(cx.fail(format!(
                "entry {} cannot create the asset after entry {} put it on the system",
                b.index, o.index
            )));
        }
        lines.insert(0, action_line(&b, bc));
        // A CAPTURE of the asset states its class; a rule must select it.
        let names = bc.asset.is_some_and(|a| cx.ev.names_asset(&a, asset, used));
        if bc.action == K::Capture && names {
            let (m, s) = (bc.modality, bc.subject_class);
            if rule.modality.is_some_and(|x| Some(x) != m)
                || rule.subject_class.is_some_and(|x| Some(x) != s)
            {
                return Err(cx.fail(format!(
                    "rule {rule_id} does not select the class entry {} states",
                    b.index
                )));
            }
        } else if !names {
            limits.push(format!(
                "that asset {} derives from what entry {} created (the DERIVE entries between them are not in the bundle)",
                hex(asset),
                b.index
            ));
        }
        b.event.event_time
    } else {
        o.event.event_time
    };
    let start = match rule.clock {
        RetentionClock::Capture => born,
        RetentionClock::CustodyStart => o.event.event_time,
    };
    let due = start.saturating_add(rule.max_age);
    cx.same(
        "at",
        &rfc3339(f.at),
        &rfc3339(due),
        "the cited entries and rule",
    )?;
    if due >= cx.as_of {
        return Err(cx.fail(format!(
            "it falls due at {}, not before the question's time",
            rfc3339(due)
        )));
    }
    cx.same(
        "detail",
        &f.detail,
        &Reason::PastMaxAge(rule.max_age).to_string(),
        &format!("entry {}", r.index),
    )?;
    lines.push(format!(
        "entry {}: RETENTION_RULE_PUBLISHED of rule {rule_id}: max_age {}, counted from {}{}{}",
        r.index,
        secs(rule.max_age),
        match rule.clock {
            RetentionClock::Capture => "capture",
            RetentionClock::CustodyStart => "the start of custody",
        },
        match (rule.modality, rule.subject_class) {
            (None, None) => String::new(),
            (m, s) => format!(
                ", for {}{}",
                m.map_or("any modality".to_owned(), |m| m.name().to_owned()),
                s.map_or(String::new(), |s| format!(" {}", s.name()))
            ),
        },
        if rule.system_id.is_empty() {
            String::new()
        } else {
            format!(", on {}", rule.system_id)
        }
    ));
    lines.push(format!(
        "registry entry {reg}: system {system} is {party}'s"
    ));
    lines.push(format!(
        "{} + {} = {}, before {}",
        rfc3339(start),
        secs(rule.max_age),
        rfc3339(due),
        rfc3339(cx.as_of)
    ));
    limits.insert(
        0,
        format!(
            "that the asset was still on {system} at {} (the bundle holds no later DELETE or MOVE), that no legal hold covers it, that no other rule applies ({REPLAY})",
            rfc3339(cx.as_of)
        ),
    );
    Ok((lines, limits))
}
