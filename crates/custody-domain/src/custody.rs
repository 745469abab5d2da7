//! Custody state: custody intervals, and the rules a custody event must
//! meet to be logged.
//!
//! A custody interval is (asset, party, system, from, to): the asset rested
//! on the system, held by the system's owner, from one event until another.
//! CAPTURE, COPY, MOVE and DERIVE open intervals at their destination;
//! DELETE and MOVE close them at their source. Bulk events act on every
//! member of their manifest.
//!
//! [`plan`] decides whether an event may be logged and what it changes. It
//! refuses only what is malformed or contradicts the log (a DELETE of a
//! copy that is not there, a RECEIPT of a transfer that never happened).
//! What breaks *policy* (no grant, a system outside the boundary) is
//! accepted: it is the evidence that findings are made from.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use crate::{
    AssetRef, Attribution, CustodyAction, CustodyActionKind, Digest, Event, EventBody, ManifestRef,
    Modality, Refusal, Registry, SubjectClass, Timestamp,
};

/// `Interval` is one custody interval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// The asset.
    pub asset: Digest,
    /// Where it rested.
    pub system: String,
    /// Who held it: the system's owner.
    pub party: String,
    /// Event time of the opening event.
    pub from: Timestamp,
    /// Event time of the closing event; `None` while open.
    pub to: Option<Timestamp>,
    /// Log index of the opening event.
    pub opened_by: u64,
    /// Log index of the closing event.
    pub closed_by: Option<u64>,
    /// The asset's modality, if the log knows it.
    pub modality: Option<Modality>,
    /// The asset's subject class, if the log knows it.
    pub subject_class: Option<SubjectClass>,
}

impl Interval {
    /// `holds_at` is whether the interval covers time `t`: `from <= t < to`.
    pub fn holds_at(&self, t: Timestamp) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }

    /// `overlaps` is whether the interval covers any moment of the closed
    /// window `[a, b]`.
    pub fn overlaps(&self, a: Timestamp, b: Timestamp) -> bool {
        self.from <= b && self.to.is_none_or(|to| to > a)
    }
}

/// `AssetMeta` is what the log knows about an asset from its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssetMeta {
    /// Its modality.
    pub modality: Modality,
    /// Its subject class.
    pub subject_class: SubjectClass,
    /// Log index of the CAPTURE or DERIVE that created it.
    pub created_by: u64,
    /// Event time of its creation.
    pub created_at: Timestamp,
}

/// `Transfer` is a logged COPY or MOVE, as a RECEIPT needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// The destination system.
    pub to_system: String,
    /// The destination's owner: the party that must acknowledge.
    pub recipient: String,
    /// What was transferred.
    pub asset: AssetRef,
    /// Log index of the RECEIPT, once acknowledged.
    pub receipt: Option<u64>,
}

/// `CustodyView` is read access to custody state, as of the entries
/// sequenced so far.
pub trait CustodyView {
    /// `open_interval` is the open interval of `asset` on `system`, if any.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn open_interval(&self, asset: &Digest, system: &str) -> Result<Option<Interval>, Refusal>;

    /// `asset_meta` is what is known of an asset's creation.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn asset_meta(&self, asset: &Digest) -> Result<Option<AssetMeta>, Refusal>;

    /// `transfer` is the COPY or MOVE logged at `index`, if that entry is one.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn transfer(&self, index: u64) -> Result<Option<Transfer>, Refusal>;

    /// `manifest` is the members of an uploaded manifest, if its root and
    /// count were uploaded.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn manifest(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal>;

    /// `manifest_members` is the members of an uploaded manifest within
    /// `range` (clamped to its count), if its root and count were
    /// uploaded: what a slice of a bulk event reads, without the rest.
    ///
    /// # Errors
    ///
    /// A `ResourceExhausted` [`Refusal`] when storage fails.
    fn manifest_members(
        &self,
        m: &ManifestRef,
        range: Range<usize>,
    ) -> Result<Option<Vec<Digest>>, Refusal> {
        Ok(self.manifest(m)?.map(|all| slice(&all, &range).to_vec()))
    }
}

/// `Effects` is what one accepted event changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// The assets the entry is about (for the asset → entries index).
    pub assets: Vec<Digest>,
    /// The parties it names (for the party → entries index).
    pub parties: Vec<String>,
    /// Intervals it opens.
    pub opened: Vec<Interval>,
    /// Intervals it closes, with `to` and `closed_by` set.
    pub closed: Vec<Interval>,
    /// Assets it creates.
    pub created: Vec<(Digest, AssetMeta)>,
    /// The transfer it records (COPY, MOVE), or the transfer it
    /// acknowledges with its receipt set (RECEIPT), keyed by log index.
    pub transfer: Option<(u64, Transfer)>,
    /// Assets acted on from a system where the log shows no custody of
    /// them (a COPY or MOVE from, or an ACCESS or USE on, that system):
    /// evidence of unexplained custody.
    pub unexplained: Vec<(Digest, String)>,
    /// The system on which the reporter observed another party's action
    /// (see [`Registry::attribute`]); `None` when the reporter reports its
    /// own action or its agent's.
    pub observed_on: Option<String>,
    /// The members of the manifest a LEGAL_HOLD names, for the retention
    /// rule (a hold naming one digest needs no expansion).
    pub held_assets: Vec<Digest>,
    /// The uploaded manifest the event names ([`EventBody::manifest`]),
    /// which is then no longer an upload waiting to be named.
    pub manifest: Option<ManifestRef>,
}

/// `plan` checks an event whose signatures and registry rules were already
/// checked, against custody state, and says what it changes if logged at
/// `index`.
///
/// # Errors
///
/// `InvalidArgument` for a malformed event, `PermissionDenied` when the
/// reporter may not report for the actor or acknowledge the transfer,
/// `FailedPrecondition` when it contradicts the log (unregistered parties
/// or systems, a manifest not uploaded, a DELETE of a copy that is not
/// there, a RECEIPT of no transfer), `ResourceExhausted` when storage fails.
pub fn plan(
    event: &Event,
    index: u64,
    registry: &Registry,
    view: &dyn CustodyView,
) -> Result<Effects, Refusal> {
    plan_members(event, index, registry, view, ALL_MEMBERS)
}

/// `ALL_MEMBERS` is every member of a manifest, for [`plan_members`].
pub const ALL_MEMBERS: Range<usize> = 0..usize::MAX;

/// `plan_members` is [`plan`] over the members `members` of the manifest
/// the event acts on one by one ([`bulk_manifest`]) and no others, so a
/// bulk event of a million members can be planned and logged in bounded
/// slices: the effects of the whole event are the union of its slices'
/// (the event's own effects, which every slice repeats, once). An event
/// that names a single digest has the one member `0`.
///
/// # Errors
///
/// As [`plan`], for the members in `members` and the event itself.
pub fn plan_members(
    event: &Event,
    index: u64,
    registry: &Registry,
    view: &dyn CustodyView,
    range: Range<usize>,
) -> Result<Effects, Refusal> {
    let mut fx = Effects {
        manifest: event.body.manifest(),
        ..Effects::default()
    };
    push_party(&mut fx, &event.reporter);
    match &event.body {
        EventBody::Custody(c) => {
            plan_custody(event, c, index, registry, view, &range, &mut fx)?;
        }
        EventBody::MaintenanceSession(m) => {
            registry.require_party("actor", &m.actor)?;
            if !m.on_behalf_of.is_empty() {
                registry.require_party("on_behalf_of", &m.on_behalf_of)?;
                push_party(&mut fx, &m.on_behalf_of);
            }
            let sys = registry.require_system("maintained system", &m.system_id)?;
            // The device being maintained reports the session (observed),
            // or the vendor itself does.
            if let Attribution::Observed { system } =
                registry.attribute(&event.reporter, &m.actor, &[&m.system_id])?
            {
                fx.observed_on = Some(system);
            }
            push_party(&mut fx, &m.actor);
            push_party(&mut fx, &sys.system.owner_party);
        }
        EventBody::CustodyAttestation(a) => {
            let sys = registry.require_system("attested system", &a.system_id)?;
            if !registry.operates(&event.reporter, &a.system_id) {
                return Err(Refusal::denied(format!(
                    "only the owner of system {} ({}) or its device or software agent may attest its holdings, not {}",
                    a.system_id, sys.system.owner_party, event.reporter
                )));
            }
            if a.holdings.count > 0 {
                // Uploaded, that is all.
                members(view, &AssetRef::Manifest(a.holdings), &(0..0))?;
            }
        }
        EventBody::PartyRegistered(p) => push_party(&mut fx, &p.party_id),
        EventBody::KeyAdded(k) => push_party(&mut fx, &k.party_id),
        EventBody::KeyRevoked(k) => push_party(&mut fx, &k.party_id),
        EventBody::SystemRegistered(s) => push_party(&mut fx, &s.owner_party),
        EventBody::GrantIssued(g) => push_party(&mut fx, &g.grantee),
        EventBody::GrantRevoked(_)
        | EventBody::RetentionRulePublished(_)
        | EventBody::PolicyPublished(_) => {}
        EventBody::LegalHold(h) => {
            if let (false, Some(m @ AssetRef::Manifest(_))) = (h.released, &h.assets) {
                fx.held_assets = members(view, m, &ALL_MEMBERS)?;
            }
        }
    }
    Ok(fx)
}

fn push_party(fx: &mut Effects, p: &str) {
    if !p.is_empty() && !fx.parties.iter().any(|q| q == p) {
        fx.parties.push(p.to_owned());
    }
}

fn require<T>(v: Option<T>, field: &'static str, what: &str) -> Result<T, Refusal> {
    v.ok_or_else(|| Refusal::invalid(field, what.to_owned()))
}

/// `bulk_manifest` is the manifest whose members `event` acts on one by
/// one, if it names one: a custody action on a manifest, or a RECEIPT of
/// a transfer of one. Its count is what planning the event costs, and
/// [`plan_members`] plans it a slice at a time. (A LEGAL_HOLD or an
/// attestation names its manifest as a whole.)
///
/// # Errors
///
/// A `ResourceExhausted` [`Refusal`] when storage fails.
pub fn bulk_manifest(
    event: &Event,
    view: &dyn CustodyView,
) -> Result<Option<ManifestRef>, Refusal> {
    let EventBody::Custody(c) = &event.body else {
        return Ok(None);
    };
    let asset = if c.action == CustodyActionKind::Receipt {
        match c.receipt_of {
            Some(of) => view.transfer(of)?.map(|t| t.asset),
            None => None,
        }
    } else {
        c.asset
    };
    Ok(match asset {
        Some(AssetRef::Manifest(m)) => Some(m),
        _ => None,
    })
}

/// `slice` is the members of `all` within `range`, clamped to `all`.
fn slice<'a>(all: &'a [Digest], range: &Range<usize>) -> &'a [Digest] {
    let end = range.end.min(all.len());
    all.get(range.start.min(end)..end).unwrap_or(&[])
}

fn members(
    view: &dyn CustodyView,
    a: &AssetRef,
    range: &Range<usize>,
) -> Result<Vec<Digest>, Refusal> {
    match a {
        AssetRef::One(d) => Ok(slice(&[*d], range).to_vec()),
        AssetRef::Manifest(m) => view.manifest_members(m, range.clone())?.ok_or_else(|| {
            Refusal::precondition(format!(
                "manifest {} with {} members was not uploaded: send its members with PutManifest first",
                hex(&m.root),
                m.count
            ))
        }),
    }
}

/// `hex` is lower-case hex, for messages.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn plan_custody(
    event: &Event,
    c: &CustodyAction,
    index: u64,
    registry: &Registry,
    view: &dyn CustodyView,
    range: &Range<usize>,
    fx: &mut Effects,
) -> Result<(), Refusal> {
    use CustodyActionKind as K;
    registry.require_party("actor", &c.actor)?;
    push_party(fx, &c.actor);
    if !c.on_behalf_of.is_empty() {
        registry.require_party("on_behalf_of", &c.on_behalf_of)?;
        push_party(fx, &c.on_behalf_of);
    }
    if !c.attested_by.is_empty() {
        registry.require_party("attested_by", &c.attested_by)?;
        push_party(fx, &c.attested_by);
    }
    let from = if c.from_system.is_empty() {
        None
    } else {
        Some(registry.require_system("from_system", &c.from_system)?)
    };
    let to = if c.to_system.is_empty() {
        None
    } else {
        Some(registry.require_system("to_system", &c.to_system)?)
    };
    for s in [from, to].into_iter().flatten() {
        push_party(fx, &s.system.owner_party);
    }
    if let Attribution::Observed { system } =
        registry.attribute(&event.reporter, &c.actor, &[c.observation_system()])?
    {
        fx.observed_on = Some(system);
    }
    // Closing a holder's copy (DELETE, MOVE) needs the word of whoever
    // holds or operates the system it leaves: the actor, or the reporter
    // that observed the action there. Anyone else is refused, so a vendor
    // cannot make the owner's copies vanish from the log.
    if matches!(c.action, K::Delete | K::Move) && !c.from_system.is_empty() {
        let vouched = registry.operates(&c.actor, &c.from_system)
            || fx.observed_on.as_deref() == Some(c.from_system.as_str());
        if !vouched {
            return Err(Refusal::denied(format!(
                "{} from system {} must be made by its owner or operator, or reported by one of them as observed; {} is neither, and neither is the reporter {}",
                c.action.name(),
                c.from_system,
                c.actor,
                event.reporter
            )));
        }
    }
    let t = event.event_time;

    match c.action {
        K::Capture | K::Derive => {
            let asset = require(
                c.asset,
                "custody.asset_digest",
                "a CAPTURE or DERIVE names the new asset: set asset_digest (or a manifest)",
            )?;
            let to = require(
                to,
                "custody.to_system",
                "a new asset must rest somewhere: set to_system",
            )?;
            if from.is_some() {
                return Err(Refusal::invalid(
                    "custody.from_system",
                    format!(
                        "{} creates an asset; it has no from_system",
                        c.action.name()
                    ),
                ));
            }
            let modality = require(
                c.modality,
                "custody.modality",
                "set the new asset's modality",
            )?;
            let subject_class = require(
                c.subject_class,
                "custody.subject_class",
                "set the new asset's subject class",
            )?;
            if c.action == K::Derive {
                if c.parents.is_empty() {
                    return Err(Refusal::invalid(
                        "custody.parents",
                        "DERIVE names the parents the asset was made from",
                    ));
                }
                if matches!(asset, AssetRef::Manifest(_)) {
                    return Err(Refusal::invalid(
                        "custody.manifest",
                        "DERIVE makes one asset; name it by asset_digest",
                    ));
                }
                fx.assets.extend(c.parents.iter().map(|p| p.digest));
            } else if !c.parents.is_empty() {
                return Err(Refusal::invalid(
                    "custody.parents",
                    "only DERIVE has parents",
                ));
            }
            for d in &members(view, &asset, range)? {
                fx.assets.push(*d);
                let known = view.asset_meta(d)?;
                if let Some(m) = known {
                    if (m.modality, m.subject_class) != (modality, subject_class) {
                        // Not which class, nor which entry: a reporter may
                        // not read other parties' entries (DESIGN §8).
                        return Err(Refusal::precondition(format!(
                            "asset {} is already logged with another modality or subject class; the same bytes cannot be {} {}",
                            hex(d),
                            modality.name(),
                            subject_class.name()
                        )));
                    }
                }
                if known.is_none() {
                    fx.created.push((
                        *d,
                        AssetMeta {
                            modality,
                            subject_class,
                            created_by: index,
                            created_at: t,
                        },
                    ));
                }
                if view.open_interval(d, &to.system.system_id)?.is_none() {
                    fx.opened.push(Interval {
                        asset: *d,
                        system: to.system.system_id.clone(),
                        party: to.system.owner_party.clone(),
                        from: t,
                        to: None,
                        opened_by: index,
                        closed_by: None,
                        modality: Some(modality),
                        subject_class: Some(subject_class),
                    });
                }
            }
        }
        K::Copy | K::Move => {
            let asset = require(
                c.asset,
                "custody.asset_digest",
                "name the asset or manifest transferred",
            )?;
            let from = require(
                from,
                "custody.from_system",
                "a transfer has a source: set from_system",
            )?;
            let to = require(
                to,
                "custody.to_system",
                "a transfer has a destination: set to_system",
            )?;
            if from.system.system_id == to.system.system_id {
                return Err(Refusal::invalid(
                    "custody.to_system",
                    "from_system and to_system are the same system",
                ));
            }
            for d in &members(view, &asset, range)? {
                fx.assets.push(*d);
                let meta = view.asset_meta(d)?;
                if view.open_interval(d, &to.system.system_id)?.is_none() {
                    fx.opened.push(Interval {
                        asset: *d,
                        system: to.system.system_id.clone(),
                        party: to.system.owner_party.clone(),
                        from: t,
                        to: None,
                        opened_by: index,
                        closed_by: None,
                        modality: meta.map(|m| m.modality),
                        subject_class: meta.map(|m| m.subject_class),
                    });
                }
                match view.open_interval(d, &from.system.system_id)? {
                    Some(open) if c.action == K::Move => fx.closed.push(close(open, t, index)?),
                    Some(_) => {}
                    None => fx.unexplained.push((*d, from.system.system_id.clone())),
                }
            }
            fx.transfer = Some((
                index,
                Transfer {
                    to_system: to.system.system_id.clone(),
                    recipient: to.system.owner_party.clone(),
                    asset,
                    receipt: None,
                },
            ));
        }
        K::Receipt => {
            let of = require(
                c.receipt_of,
                "custody.receipt_of",
                "RECEIPT names the log index of the COPY or MOVE it acknowledges",
            )?;
            // One refusal for "no transfer there" and "a transfer to
            // someone else": a reporter may not read other parties'
            // entries (DESIGN §8), so neither the answer nor its code
            // may tell which, or where a transfer went.
            let nothing = || {
                Refusal::precondition(format!(
                    "entry {of} is not a logged COPY or MOVE to a system {} operates, so there is nothing for it to acknowledge",
                    event.reporter
                ))
            };
            let Some(mut tr) = view.transfer(of)? else {
                return Err(nothing());
            };
            if !registry.operates(&event.reporter, &tr.to_system) {
                return Err(nothing());
            }
            // A receipt by this very entry is one a slice before this one
            // recorded ([`plan_members`]).
            if let Some(r) = tr.receipt.filter(|r| *r != index) {
                return Err(Refusal::precondition(format!(
                    "the transfer at entry {of} was already acknowledged by entry {r}"
                )));
            }
            if let Some(a) = c.asset {
                if a != tr.asset {
                    return Err(Refusal::invalid(
                        "custody.asset_digest",
                        format!("entry {of} transferred other assets than this RECEIPT names"),
                    ));
                }
            }
            fx.assets.extend(members(view, &tr.asset, range)?);
            push_party(fx, &tr.recipient);
            tr.receipt = Some(index);
            fx.transfer = Some((of, tr));
        }
        K::Access | K::Use => {
            let asset = require(
                c.asset,
                "custody.asset_digest",
                "name the asset or manifest used",
            )?;
            let from = require(
                from,
                "custody.from_system",
                &format!("{} happens on a system: set from_system", c.action.name()),
            )?;
            require(
                c.purpose,
                "custody.purpose",
                "an access or use states its purpose",
            )?;
            for d in &members(view, &asset, range)? {
                fx.assets.push(*d);
                if view.open_interval(d, &from.system.system_id)?.is_none() {
                    fx.unexplained.push((*d, from.system.system_id.clone()));
                }
            }
        }
        K::Delete => {
            let asset = require(
                c.asset,
                "custody.asset_digest",
                "name the asset or manifest deleted",
            )?;
            let from = require(
                from,
                "custody.from_system",
                "a DELETE names the system the copy was on: set from_system",
            )?;
            require(
                c.delete_method,
                "custody.delete_method",
                "a DELETE records its method",
            )?;
            for d in &members(view, &asset, range)? {
                let Some(open) = view.open_interval(d, &from.system.system_id)? else {
                    return Err(Refusal::precondition(format!(
                        "asset {} has no open custody interval on system {}: nothing to delete",
                        hex(d),
                        from.system.system_id
                    )));
                };
                fx.assets.push(*d);
                fx.closed.push(close(open, t, index)?);
            }
        }
    }
    Ok(())
}

fn close(mut open: Interval, t: Timestamp, index: u64) -> Result<Interval, Refusal> {
    if t < open.from {
        return Err(Refusal::precondition(format!(
            "asset {} came to system {} at {} ns (entry {}); it cannot leave earlier, at {t} ns",
            hex(&open.asset),
            open.system,
            open.from,
            open.opened_by
        )));
    }
    open.to = Some(t);
    open.closed_by = Some(index);
    Ok(open)
}

/// `Overlay` is custody state changed by entries sequenced but not yet
/// committed, over a base view of what is committed.
pub struct Overlay<V> {
    /// What is committed.
    pub base: V,
    /// Open intervals opened (`Some`) or closed (`None`) since.
    open: HashMap<(Digest, String), Option<Interval>>,
    /// Assets created since.
    assets: HashMap<Digest, AssetMeta>,
    /// Transfers recorded or acknowledged since.
    transfers: HashMap<u64, Transfer>,
}

impl<V: CustodyView> Overlay<V> {
    /// `new` is an empty overlay on `base`.
    pub fn new(base: V) -> Self {
        Self {
            base,
            open: HashMap::new(),
            assets: HashMap::new(),
            transfers: HashMap::new(),
        }
    }

    /// `apply` records an accepted event's effects.
    pub fn apply(&mut self, fx: &Effects) {
        for i in &fx.closed {
            self.open.insert((i.asset, i.system.clone()), None);
        }
        for i in &fx.opened {
            self.open
                .insert((i.asset, i.system.clone()), Some(i.clone()));
        }
        for (d, m) in &fx.created {
            self.assets.insert(*d, *m);
        }
        if let Some((i, t)) = &fx.transfer {
            self.transfers.insert(*i, t.clone());
        }
    }
}

impl<V: CustodyView> CustodyView for Overlay<V> {
    fn open_interval(&self, asset: &Digest, system: &str) -> Result<Option<Interval>, Refusal> {
        match self.open.get(&(*asset, system.to_owned())) {
            Some(v) => Ok(v.clone()),
            None => self.base.open_interval(asset, system),
        }
    }

    fn asset_meta(&self, asset: &Digest) -> Result<Option<AssetMeta>, Refusal> {
        match self.assets.get(asset) {
            Some(m) => Ok(Some(*m)),
            None => self.base.asset_meta(asset),
        }
    }

    fn transfer(&self, index: u64) -> Result<Option<Transfer>, Refusal> {
        match self.transfers.get(&index) {
            Some(t) => Ok(Some(t.clone())),
            None => self.base.transfer(index),
        }
    }

    fn manifest(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        self.base.manifest(m)
    }

    fn manifest_members(
        &self,
        m: &ManifestRef,
        range: Range<usize>,
    ) -> Result<Option<Vec<Digest>>, Refusal> {
        self.base.manifest_members(m, range)
    }
}
