//! Replaying entries through the server's own admission path: entries are
//! admitted in batches, each at its own integration time, by
//! `custody_admission`'s two stages: `check_batch` (decoding, and
//! signatures verified in batches on all cores) on a thread of its own a
//! batch ahead, then `admit_checked` (dedup, the registry's rules,
//! custody, findings) into the audit's store, which must accept each
//! entry exactly where the log has it.
//! An entry it refuses is one the log should not hold.
//!
//! When a bulk event's manifest cannot be had (no `--server`), the custody
//! replay stops there; later entries still go through the registry's
//! rules (`custody_domain::admit_to_registry`), so every signature is
//! checked against the key the registry allowed, off this thread.

use std::sync::{mpsc, Arc};

use crate::net::Grpc;
use anyhow::anyhow;
use custody_admission::{admit_checked, check_batch, grow_tree, CheckedBatch, StoreHashes};
use custody_domain::replay::manifest_of;
use custody_domain::{
    admit_to_registry, hex, Digest, Event, KeyId, ManifestRef, RefusalKind, Registry,
    SignedEnvelope,
};
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::{decode_entry, decode_event, v1, Entry};
use custody_store::index::{manifest_count, manifest_writes};
use custody_store::{Commit, LogStore};
use custody_store_rocks::RocksStore;
use ed25519_dalek::Signature;

use super::signatures::{SigBatch, Verdicts, Verifier, BATCH};
use super::state::totals_writes;
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

/// `Manifests` fetches manifests from the server's `GetManifest`, with
/// `--server`, into the audit's store once they are checked.
pub struct Manifests {
    /// The server to fetch members from, and the runtime to do it on.
    server: Option<(tokio::runtime::Handle, CustodyLogClient<Grpc>)>,
    /// Without a server, the tile API: a mirror keeps manifests beside
    /// its tiles.
    tiles: Option<super::fetch::TileApi>,
    /// Distinct manifests fetched and checked in this run.
    pub fetched: u64,
}

/// Members per `GetManifest` page (the server's largest).
const MEMBERS_PAGE: u32 = 10_000;

impl Manifests {
    /// `new` is an empty cache; `server` is where to fetch from, if any,
    /// else `tiles`.
    pub fn new(
        server: Option<(tokio::runtime::Handle, CustodyLogClient<Grpc>)>,
        tiles: Option<super::fetch::TileApi>,
    ) -> Self {
        Self {
            server,
            tiles,
            fetched: 0,
        }
    }

    /// `fetch_from_tiles` is [`Manifests::ensure`] from the tile API: the
    /// members beside the tiles, checked against the root the entry
    /// names. None there: `Ok(Ok(false))`, as with no server.
    fn fetch_from_tiles(
        &mut self,
        store: &dyn LogStore,
        m: &ManifestRef,
    ) -> anyhow::Result<Result<bool, String>> {
        let Some(api) = &self.tiles else {
            return Ok(Ok(false));
        };
        let Some(body) = api.manifest(&m.root)? else {
            return Ok(Ok(false));
        };
        if body.len() as u64 != m.count.saturating_mul(32) {
            return Ok(Err(format!(
                "the tile API's manifest file is {} bytes, not {} members",
                body.len(),
                m.count
            )));
        }
        let members: Vec<Digest> = body
            .chunks_exact(32)
            .filter_map(|c| <Digest>::try_from(c).ok())
            .collect();
        if let Err(why) = check_manifest(m, &members) {
            return Ok(Err(why));
        }
        store.index_write(&manifest_writes(&m.root, &members, &[]))?;
        self.fetched += 1;
        Ok(Ok(true))
    }

    /// `ensure` makes `m`'s members available in `store`, fetching and
    /// checking them if needed. It returns `Ok(Ok(true))` when they are,
    /// `Ok(Ok(false))` when there is no server to fetch from, and
    /// `Ok(Err(why))` when the server's members are not the manifest's.
    /// Only checked members are stored.
    ///
    /// # Errors
    ///
    /// When the server cannot be asked or the store fails.
    fn ensure(
        &mut self,
        store: &dyn LogStore,
        m: &ManifestRef,
    ) -> anyhow::Result<Result<bool, String>> {
        if manifest_count(store, &m.root)? == Some(m.count) {
            return Ok(Ok(true));
        }
        let Some((rt, client)) = &self.server else {
            return self.fetch_from_tiles(store, m);
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
        store.index_write(&manifest_writes(&m.root, &members, &[]))?;
        self.fetched += 1;
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

/// Entries admitted together at most: one `check_batch`, one
/// `admit_checked` and one commit.
const ADMIT_BATCH: usize = 4096;

/// `Waiting` is an entry read but not yet admitted.
struct Waiting {
    index: u64,
    time: i64,
    /// Whether it names a manifest, checked and stored.
    bulk: bool,
    bytes: Vec<u8>,
    envelope: SignedEnvelope,
    event_id: String,
}

/// A batch for the checker, with the registry to check it with.
type ToCheck = (Vec<Waiting>, Arc<Registry>);

/// `Checker` runs admission's parallel stage (`check_batch`: decoding
/// and batch signature verification on all cores) on a thread of its
/// own, a batch ahead of admission, and hands batches back in order.
struct Checker {
    tx: Option<mpsc::Sender<ToCheck>>,
    rx: mpsc::Receiver<(Vec<Waiting>, CheckedBatch)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Batches sent and not yet taken back.
    in_flight: usize,
}

impl Checker {
    fn start() -> Self {
        let (tx, rx_in) = mpsc::channel::<ToCheck>();
        let (tx_out, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for (batch, registry) in rx_in {
                let envelopes: Vec<&SignedEnvelope> = batch.iter().map(|w| &w.envelope).collect();
                let checked = check_batch(&registry, &envelopes);
                drop(envelopes);
                if tx_out.send((batch, checked)).is_err() {
                    return;
                }
            }
        });
        Self {
            tx: Some(tx),
            rx,
            thread: Some(thread),
            in_flight: 0,
        }
    }

    fn send(&mut self, batch: Vec<Waiting>, registry: Arc<Registry>) -> anyhow::Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send((batch, registry)).ok())
            .ok_or_else(|| anyhow!("the audit's signature checker stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// `next` is the oldest batch sent, checked, or `None` if none is out.
    fn next(&mut self) -> anyhow::Result<Option<(Vec<Waiting>, CheckedBatch)>> {
        if self.in_flight == 0 {
            return Ok(None);
        }
        let got = self
            .rx
            .recv()
            .map_err(|_| anyhow!("the audit's signature checker stopped"))?;
        self.in_flight -= 1;
        Ok(Some(got))
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `Replayer` replays entries in log order into the audit's store.
pub struct Replayer<'s> {
    /// The audit's store.
    store: &'s RocksStore,
    /// The registry after the entries admitted; `None` before genesis.
    registry: Option<Registry>,
    /// Entries admitted into the store.
    size: u64,
    /// Entries waiting for their batch.
    waiting: Vec<Waiting>,
    /// The parallel stage, a batch ahead of admission.
    checker: Checker,
    /// The origin the genesis entry must name.
    origin: String,
    /// Integrated time of the last entry read.
    pub last_integrated: i64,
    /// Signatures verified before this run.
    pub signatures_before: u64,
    /// Signatures verified by admission in this run.
    pub signatures_admitted: u64,
    /// Bulk events whose manifests were checked, over every run.
    pub bulk_events: u64,
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
    /// Signatures of entries past `stopped`, waiting for the verifier.
    batch: SigBatch,
    /// The verifier of signatures past `stopped`.
    verifier: Verifier,
}

impl<'s> Replayer<'s> {
    /// `new` continues the replay in `store` (from entry 0 if it is
    /// empty).
    ///
    /// # Errors
    ///
    /// If the store cannot be read.
    pub fn new(
        store: &'s RocksStore,
        origin: &str,
        manifests: Manifests,
        last_integrated: i64,
        (signatures_before, bulk_events): (u64, u64),
    ) -> anyhow::Result<Self> {
        let size = store.tree_size()?;
        let registry = if size > 0 {
            Some(custody_admission::load_registry(store)?)
        } else {
            None
        };
        Ok(Self {
            store,
            registry,
            size,
            waiting: Vec::new(),
            checker: Checker::start(),
            origin: origin.to_owned(),
            last_integrated,
            signatures_before,
            signatures_admitted: 0,
            bulk_events,
            manifests,
            failure: None,
            manifest_failure: None,
            stopped: None,
            unchecked_bulk: Vec::new(),
            batch: SigBatch::default(),
            verifier: Verifier::start(),
        })
    }

    /// `size` is the number of entries admitted into the store.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `registry` is the registry after the entries replayed.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
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
    /// When a manifest cannot be fetched or the store fails (operational
    /// failures; a proven problem is recorded in `failure` instead).
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
                match Registry::new(&g) {
                    Ok(r) => {
                        let mut commit = Commit {
                            first_index: 0,
                            entries: vec![bytes.to_vec()],
                            ..Commit::default()
                        };
                        grow_tree(&mut commit, &StoreHashes(self.store))?;
                        self.store.commit(&commit)?;
                        self.size = 1;
                        self.registry = Some(r);
                    }
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
        if self.registry.is_none() {
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
        self.last_integrated = integrated;
        let event = match decode_event(&envelope.body) {
            Ok(e) => e,
            Err(r) => {
                self.fail(index, format!("holds an event that does not decode: {r}"));
                return Ok(());
            }
        };
        if self.stopped.is_some() {
            return self.registry_only(index, &envelope, &event, integrated);
        }
        let bulk = manifest_of(&event);
        if let Some(m) = bulk {
            // Admission reads the members from the store.
            match self.manifests.ensure(self.store, &m)? {
                Ok(true) => {}
                Ok(false) => {
                    // Everything before it is admitted first, so the
                    // registry is the one this entry was checked against.
                    self.flush()?;
                    if self.failure.is_some() {
                        return Ok(());
                    }
                    self.stopped = Some(Stopped { index, manifest: m });
                    return self.registry_only(index, &envelope, &event, integrated);
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
        // Each entry is admitted at its own integration time, in batches
        // of the audit's own: fewer, larger batches than the sequencer's,
        // so signatures are verified in large batches and commits are few.
        if self.waiting.len() >= ADMIT_BATCH {
            self.send()?;
            if self.failure.is_some() {
                return Ok(());
            }
        }
        self.waiting.push(Waiting {
            index,
            time: integrated,
            bulk: bulk.is_some(),
            bytes: bytes.to_vec(),
            envelope,
            event_id: event.event_id,
        });
        Ok(())
    }

    /// `send` hands the waiting entries to the checker, with the registry
    /// as it stands, and admits the batch sent before, which the checker
    /// has checked meanwhile: one batch's signatures are verified while
    /// the one before it is admitted.
    fn send(&mut self) -> anyhow::Result<()> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        let batch = std::mem::take(&mut self.waiting);
        self.checker.send(batch, Arc::new(registry.clone()))?;
        if self.checker.in_flight > 1 {
            if let Some((w, c)) = self.checker.next()? {
                self.admit(w, c)?;
            }
        }
        Ok(())
    }

    /// `flush` admits every entry read: the batches at the checker, then
    /// those still waiting.
    fn flush(&mut self) -> anyhow::Result<()> {
        while let Some((w, c)) = self.checker.next()? {
            self.admit(w, c)?;
        }
        let waiting = std::mem::take(&mut self.waiting);
        if let Some(registry) = &self.registry {
            let envelopes: Vec<&SignedEnvelope> = waiting.iter().map(|w| &w.envelope).collect();
            let checked = check_batch(registry, &envelopes);
            drop(envelopes);
            self.admit(waiting, checked)?;
        }
        Ok(())
    }

    /// `admit` admits a checked batch with `admit_checked`, as the
    /// sequencer did, and commits it to the store if every entry is
    /// admitted exactly where the log has it, in exactly its bytes.
    fn admit(&mut self, waiting: Vec<Waiting>, checked: CheckedBatch) -> anyhow::Result<()> {
        if self.failure.is_some() || waiting.is_empty() {
            return Ok(());
        }
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        let envelopes: Vec<&SignedEnvelope> = waiting.iter().map(|w| &w.envelope).collect();
        let seq = admit_checked(self.store, registry, self.size, &envelopes, checked, &|k| {
            waiting[k].time
        });
        for (w, v) in waiting.iter().zip(&seq.verdicts) {
            let why = match v {
                Ok(a) if !a.duplicate && a.index == w.index => continue,
                Ok(a) if a.duplicate => format!(
                    "repeats event id {}, which the log had already logged at index {}",
                    w.event_id, a.index
                ),
                Ok(a) => format!(
                    "is admitted by the log's own rules at index {}, not where the log has it",
                    a.index
                ),
                // Admission refuses with RESOURCE_EXHAUSTED only when
                // its store fails: the audit's, not the log's, fault.
                Err(r) if r.kind == RefusalKind::ResourceExhausted => {
                    return Err(anyhow!(
                        "the audit's state failed while admitting entry {}: {r}",
                        w.index
                    ))
                }
                Err(r) => format!("is refused by the log's own rules: {r}"),
            };
            self.fail(w.index, why);
            return Ok(());
        }
        let mut commit = seq.commit;
        // What the sequencer would have logged is these very bytes: an
        // entry that carries more (fields the parser skips) is not one it
        // wrote.
        for (e, w) in commit.entries.iter().zip(&waiting) {
            if *e != w.bytes {
                self.fail(
                    w.index,
                    "is not in the form the log writes: its bytes are not the encoding of the event they decode to".into(),
                );
                return Ok(());
            }
        }
        grow_tree(&mut commit, &StoreHashes(self.store))?;
        self.signatures_admitted += waiting
            .iter()
            .map(|w| w.envelope.signatures.len() as u64)
            .sum::<u64>();
        self.bulk_events += waiting.iter().filter(|w| w.bulk).count() as u64;
        commit.index.extend(totals_writes(
            self.signatures_before + self.signatures_admitted,
            self.bulk_events,
        ));
        self.store.commit(&commit)?;
        self.size += waiting.len() as u64;
        if let Some(r) = seq.registry {
            self.registry = Some(r);
        }
        Ok(())
    }

    /// `registry_only` checks an entry past `stopped` against the
    /// registry's rules and queues its signatures for the verifier.
    fn registry_only(
        &mut self,
        index: u64,
        envelope: &SignedEnvelope,
        event: &Event,
        integrated: i64,
    ) -> anyhow::Result<()> {
        if manifest_of(event).is_some() {
            self.unchecked_bulk.push(index);
        }
        let Some(registry) = self.registry.as_mut() else {
            return Ok(());
        };
        let signers: Vec<KeyId> = envelope.signatures.iter().map(|s| s.key_id).collect();
        match admit_to_registry(registry, &signers, event, index, integrated) {
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

    /// `finish` admits the entries still waiting and waits for every
    /// signature past `stopped` to be checked.
    ///
    /// # Errors
    ///
    /// If the store or the verifier thread failed.
    pub fn finish(&mut self) -> anyhow::Result<Verdicts> {
        if self.failure.is_none() && self.manifest_failure.is_none() {
            self.flush()?;
        }
        self.verifier.submit(std::mem::take(&mut self.batch));
        let verifier = std::mem::replace(&mut self.verifier, Verifier::idle());
        verifier.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
