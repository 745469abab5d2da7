//! Replaying entries as the server's sequencer admitted them: decode,
//! check each signature's key against the registry as it stood at the
//! entry's index and integrated time (`custody_domain::check_signers`), queue
//! the signature for batch verification, and apply the event to a
//! `custody_domain::replay::Replay` (registry rules, custody rules,
//! findings), keeping every custody interval on the side.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::anyhow;
use custody_domain::findings::Policy;
use custody_domain::replay::{manifest_of, ManifestSource, Replay};
use custody_domain::{hex, Digest, Effects, Interval, KeyId, ManifestRef, Refusal};
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::{decode_entry, decode_event, v1, Entry};
use ed25519_dalek::Signature;
use tonic::transport::Channel;

use super::signatures::{SigBatch, Verdicts, Verifier, BATCH};
use super::state::SavedState;
use super::tree::Frontier;

/// `Failure` is the first entry the audit could not accept.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The entry's index.
    pub index: u64,
    /// What is wrong with it.
    pub message: String,
}

/// `Stopped` is where the custody replay stopped because a bulk event's
/// manifest could not be checked.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The bulk event's index.
    pub index: u64,
    /// The manifest it names.
    pub manifest: ManifestRef,
}

/// `event_key` is an exact, compact key for an event id: a UUID's 32 hex
/// digits as a number, and which of them were upper case (ids that differ
/// only in case are different ids to the server's dedup).
pub fn event_key(id: &str) -> (u128, u32) {
    let mut v: u128 = 0;
    let mut upper: u32 = 0;
    let mut digits = 0u32;
    for b in id.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => {
                upper |= 1 << digits.min(31);
                b - b'A' + 10
            }
            _ => continue,
        };
        v = (v << 4) | u128::from(d);
        digits += 1;
    }
    (v, upper)
}

/// `Manifests` holds the manifests checked so far and, with `--server`,
/// fetches more from the server's `GetManifest`.
pub struct Manifests {
    /// Checked manifests, by reference.
    cache: HashMap<ManifestRef, Arc<Vec<Digest>>>,
    /// The server to fetch members from, and the runtime to do it on.
    server: Option<(tokio::runtime::Handle, CustodyLogClient<Channel>)>,
    /// Distinct manifests fetched and checked in this run.
    pub fetched: u64,
}

/// Members per `GetManifest` page (the server's largest).
const MEMBERS_PAGE: u32 = 10_000;

impl Manifests {
    /// `new` is an empty cache; `server` is where to fetch from, if any.
    pub fn new(server: Option<(tokio::runtime::Handle, CustodyLogClient<Channel>)>) -> Self {
        Self {
            cache: HashMap::new(),
            server,
            fetched: 0,
        }
    }

    /// `ensure` makes `m`'s members available, fetching and checking them
    /// if needed. It returns `Ok(Ok(true))` when they are, `Ok(Ok(false))`
    /// when there is no server to fetch from, and `Ok(Err(why))` when the
    /// server's members are not the manifest's.
    ///
    /// # Errors
    ///
    /// When the server cannot be asked.
    fn ensure(&mut self, m: &ManifestRef) -> anyhow::Result<Result<bool, String>> {
        if self.cache.contains_key(m) {
            return Ok(Ok(true));
        }
        let Some((rt, client)) = &self.server else {
            return Ok(Ok(false));
        };
        let mut client = client.clone();
        let fetched = rt.block_on(async move {
            let mut members: Vec<Digest> = Vec::new();
            loop {
                let r = client
                    .get_manifest(v1::GetManifestRequest {
                        root: m.root.to_vec(),
                        start: members.len() as u64,
                        limit: MEMBERS_PAGE,
                        asset: Vec::new(),
                    })
                    .await;
                let r = match r {
                    Ok(r) => r.into_inner(),
                    Err(s) if s.code() == tonic::Code::NotFound => {
                        return Ok(Err(format!("the server does not have it: {}", s.message())))
                    }
                    Err(s) => {
                        return Err(anyhow!(
                            "fetch manifest {} ({:?}): {}",
                            hex(&m.root),
                            s.code(),
                            s.message()
                        ))
                    }
                };
                let count = r.manifest.map_or(0, |x| x.count);
                if count != m.count {
                    return Ok(Err(format!(
                        "the server says it has {count} members, the entry says {}",
                        m.count
                    )));
                }
                if r.members.is_empty() {
                    break;
                }
                for d in r.members {
                    let Ok(d) = <Digest>::try_from(d.as_slice()) else {
                        return Ok(Err("the server sent a member that is not 32 bytes".into()));
                    };
                    members.push(d);
                }
                if members.len() as u64 >= m.count {
                    break;
                }
            }
            Ok(Ok(members))
        })?;
        let members = match fetched {
            Ok(members) => members,
            Err(why) => return Ok(Err(why)),
        };
        if let Err(why) = check_manifest(m, &members) {
            return Ok(Err(why));
        }
        self.fetched += 1;
        self.cache.insert(*m, Arc::new(members));
        Ok(Ok(true))
    }
}

/// `check_manifest` checks that `members` are `m`'s: `m.count` distinct
/// digests in ascending order whose RFC 6962 root, with leaves
/// `SHA-256(0x00 ‖ digest)`, is `m.root`.
fn check_manifest(m: &ManifestRef, members: &[Digest]) -> Result<(), String> {
    if members.len() as u64 != m.count {
        return Err(format!(
            "the server sent {} members, the entry says {}",
            members.len(),
            m.count
        ));
    }
    if members.windows(2).any(|w| w[0] >= w[1]) {
        return Err("the server's members are not distinct and sorted".into());
    }
    let mut tree = Frontier::default();
    for d in members {
        tree.push(custody_log::leaf_hash(d));
    }
    if tree.root().0 != m.root {
        return Err(format!(
            "the server's members hash to {}, not to the root the entry names",
            hex(&tree.root().0)
        ));
    }
    Ok(())
}

struct Cached<'a>(&'a HashMap<ManifestRef, Arc<Vec<Digest>>>);

impl ManifestSource for Cached<'_> {
    fn members(&self, m: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        Ok(self.0.get(m).cloned())
    }
}

/// `Replayer` replays entries in log order.
pub struct Replayer {
    /// The replay; `None` until the genesis entry is read.
    pub replay: Option<Replay>,
    /// Every custody interval, open or closed, by asset.
    pub history: HashMap<Digest, Vec<Interval>>,
    /// Every event id seen.
    pub event_ids: HashSet<(u128, u32)>,
    /// Integrated time of the last entry.
    pub last_integrated: i64,
    /// Signatures verified before this run.
    pub signatures_before: u64,
    /// Bulk events whose manifests were checked.
    pub bulk_events: u64,
    /// The findings policy for a replay started here.
    policy: Policy,
    /// The origin the genesis entry must name.
    origin: String,
    /// Manifests.
    pub manifests: Manifests,
    /// The first entry that could not be accepted; the replay stops there.
    pub failure: Option<Failure>,
    /// A manifest the server served wrongly: entry index and why.
    pub manifest_failure: Option<Failure>,
    /// Where the custody replay stopped for want of a manifest.
    pub stopped: Option<Stopped>,
    /// Bulk events whose manifests were not checked (after `stopped`).
    pub unchecked_bulk: Vec<u64>,
    /// Signatures waiting for the verifier.
    batch: SigBatch,
    /// The verifier thread.
    verifier: Verifier,
}

impl Replayer {
    /// `new` starts a replay from entry 0.
    pub fn new(origin: &str, policy: Policy, manifests: Manifests) -> Self {
        Self {
            replay: None,
            history: HashMap::new(),
            event_ids: HashSet::new(),
            last_integrated: 0,
            signatures_before: 0,
            bulk_events: 0,
            policy,
            origin: origin.to_owned(),
            manifests,
            failure: None,
            manifest_failure: None,
            stopped: None,
            unchecked_bulk: Vec::new(),
            batch: SigBatch::default(),
            verifier: Verifier::start(),
        }
    }

    /// `resume` continues a saved replay.
    pub fn resume(origin: &str, saved: SavedState, manifests: Manifests) -> Self {
        let policy = saved.replay.findings.policy();
        Self {
            replay: Some(saved.replay),
            history: saved.history,
            event_ids: saved.event_ids,
            last_integrated: saved.last_integrated,
            signatures_before: saved.signatures,
            bulk_events: saved.bulk_events,
            ..Self::new(origin, policy, manifests)
        }
    }

    fn fail(&mut self, index: u64, message: String) {
        if self.failure.is_none() {
            self.failure = Some(Failure { index, message });
        }
    }

    /// `process` replays entry `index`, whose bytes are `bytes`.
    ///
    /// # Errors
    ///
    /// When a manifest cannot be fetched (an operational failure; a
    /// proven problem is recorded in `failure` instead).
    pub fn process(&mut self, index: u64, bytes: &[u8]) -> anyhow::Result<()> {
        if self.failure.is_some() || self.manifest_failure.is_some() {
            return Ok(());
        }
        let entry = match decode_entry(bytes) {
            Ok(e) => e,
            Err(r) => {
                self.fail(index, format!("is not a well-formed log entry: {r}"));
                return Ok(());
            }
        };
        let (envelope, integrated) = match entry {
            Entry::Genesis(g) if index == 0 => {
                if g.origin != self.origin {
                    self.fail(
                        0,
                        format!(
                            "the genesis entry names origin {:?}, not the log key's {:?}",
                            g.origin, self.origin
                        ),
                    );
                    return Ok(());
                }
                match Replay::new(&g, self.policy) {
                    Ok(r) => self.replay = Some(r),
                    Err(r) => self.fail(0, format!("is a malformed genesis entry: {r}")),
                }
                return Ok(());
            }
            Entry::Genesis(_) => {
                self.fail(index, "is a second genesis entry".into());
                return Ok(());
            }
            Entry::Event {
                envelope,
                integrated_time,
            } => (envelope, integrated_time),
        };
        if self.replay.is_none() {
            self.fail(
                index,
                "is an event, but the log has no genesis entry".into(),
            );
            return Ok(());
        }
        if integrated < self.last_integrated {
            let msg = format!(
                "was integrated at {integrated} ns, before the entry before it ({} ns)",
                self.last_integrated
            );
            self.fail(index, msg);
            return Ok(());
        }
        let event = match decode_event(&envelope.body) {
            Ok(e) => e,
            Err(r) => {
                self.fail(index, format!("holds an event that does not decode: {r}"));
                return Ok(());
            }
        };
        if !self.event_ids.insert(event_key(&event.event_id)) {
            let msg = format!(
                "repeats event id {}, which the log had already logged",
                event.event_id
            );
            self.fail(index, msg);
            return Ok(());
        }

        self.last_integrated = integrated;

        let manifest = manifest_of(&event);
        if self.stopped.is_none() {
            if let Some(m) = &manifest {
                match self.manifests.ensure(m)? {
                    Ok(true) => self.bulk_events += 1,
                    Ok(false) => {
                        self.stopped = Some(Stopped {
                            index,
                            manifest: *m,
                        })
                    }
                    Err(why) => {
                        self.manifest_failure = Some(Failure {
                            index,
                            message: format!(
                                "names manifest {} of {} members, and {why}",
                                hex(&m.root),
                                m.count
                            ),
                        });
                        return Ok(());
                    }
                }
            }
        }
        let Some(replay) = self.replay.as_mut() else {
            return Ok(());
        };
        // The sequencer's own rule (`custody_domain::admit`): signers, the
        // registry's rules, then custody.
        let signers: Vec<KeyId> = envelope.signatures.iter().map(|s| s.key_id).collect();
        let keys = if self.stopped.is_some() {
            // The custody replay stopped: keep only the registry, which
            // signatures need and which no manifest affects.
            if manifest.is_some() {
                self.unchecked_bulk.push(index);
            }
            replay.apply_registry_only(index, &event, &signers, integrated)
        } else {
            replay
                .apply(
                    index,
                    &event,
                    &signers,
                    integrated,
                    &Cached(&self.manifests.cache),
                )
                .map(|a| {
                    record(&mut self.history, a.effects);
                    a.keys
                })
        };
        match keys {
            Ok(keys) => {
                let sigs: Vec<_> = envelope
                    .signatures
                    .iter()
                    .zip(keys)
                    .map(|(s, k)| (s.key_id, Signature::from_bytes(&s.sig), k))
                    .collect();
                self.batch
                    .push(index, &envelope.payload_type, &envelope.body, sigs);
                if self.batch.len() >= BATCH {
                    self.verifier.submit(std::mem::take(&mut self.batch));
                }
            }
            Err(r) => self.fail(index, format!("is refused by the log's own rules: {r}")),
        }
        Ok(())
    }

    /// `finish` waits for every signature to be checked.
    ///
    /// # Errors
    ///
    /// If the verifier thread failed.
    pub fn finish(&mut self) -> anyhow::Result<Verdicts> {
        self.verifier.submit(std::mem::take(&mut self.batch));
        let verifier = std::mem::replace(&mut self.verifier, Verifier::idle());
        verifier.finish()
    }
}

/// `record` adds an event's effects to the interval history: closed
/// intervals replace their open form, opened ones are added.
fn record(history: &mut HashMap<Digest, Vec<Interval>>, fx: Effects) {
    for c in fx.closed {
        if let Some(slot) = history.get_mut(&c.asset).and_then(|v| {
            v.iter_mut()
                .find(|i| i.system == c.system && i.opened_by == c.opened_by)
        }) {
            *slot = c;
        }
    }
    for o in fx.opened {
        history.entry(o.asset).or_default().push(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_exact() {
        let a = "0f0e0d0c-0b0a-4908-8706-050403020100";
        assert_eq!(event_key(a), event_key(a));
        assert_ne!(event_key(a), event_key(&a.to_uppercase()));
        assert_ne!(
            event_key(a),
            event_key("0f0e0d0c-0b0a-4908-8706-050403020101")
        );
    }

    #[test]
    fn manifests_are_checked_against_their_root() {
        let members: Vec<Digest> = (0u8..5).map(|i| [i; 32]).collect();
        let mut tree = Frontier::default();
        for d in &members {
            tree.push(custody_log::leaf_hash(d));
        }
        let m = ManifestRef {
            root: tree.root().0,
            count: 5,
        };
        assert!(check_manifest(&m, &members).is_ok());
        assert!(check_manifest(&m, &members[..4]).is_err());
        let mut swapped = members.clone();
        swapped.swap(1, 2);
        assert!(check_manifest(&m, &swapped).is_err());
        let mut other = members.clone();
        other[4] = [9; 32];
        assert!(check_manifest(&m, &other).is_err());
    }
}
