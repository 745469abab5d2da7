//! The `custody.v1.CustodyQuery` service and the manifest RPCs: custody
//! answers from the indexes, each with [`v1::Evidence`] against the latest
//! checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use custody_domain::findings::FindingsFilter;
use custody_domain::{
    AssetRef, CustodyActionKind, CustodyView as _, Digest, EventBody, Interval, ManifestRef,
    Registry, MAX_MANIFEST_MEMBERS,
};
use custody_log::{
    append_leaves, leaf_hash, prove_inclusion, tree_root, Hash, HashSource, MemoryHashes,
};
use custody_proto::v1::{self, custody_query_server::CustodyQuery};
use custody_proto::{decode_entry, decode_event, finding_to_proto, interval_to_proto, Entry};
use custody_store::index::{self, StoreView};
use custody_store::{LogStore, StoreError};
use tonic::{Request, Response, Status, Streaming};

use crate::query::{AsOf, HoldingsCursor};
use crate::state::LogState;

/// Default and largest page sizes.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Largest page of manifest members.
const MAX_MEMBERS_PAGE: u32 = 10_000;

pub(crate) fn internal(context: &str, e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "{context}");
    Status::internal(format!("{context}: {e}"))
}

pub(crate) fn digest(field: &str, b: &[u8]) -> Result<Digest, Status> {
    b.try_into().map_err(|_| {
        Status::invalid_argument(format!(
            "{field}: want a 32-byte SHA-256 digest, got {} bytes",
            b.len()
        ))
    })
}

fn page_size(n: u32) -> Result<usize, Status> {
    match n {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n <= MAX_PAGE => Ok(n as usize),
        n => Err(Status::invalid_argument(format!(
            "page_size: at most {MAX_PAGE}, got {n}"
        ))),
    }
}

use crate::findings::{quoted, MAX_FINDING_ID};

fn bad_token() -> Status {
    Status::invalid_argument("page_token: not a token this server issued; start again without one")
}

/// `ManifestHashes` is a stored manifest's tree, for the log core's proofs.
struct ManifestHashes<'a> {
    store: &'a dyn LogStore,
    root: Digest,
}

impl HashSource for ManifestHashes<'_> {
    type Error = StoreError;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        Ok(index::manifest_hashes(self.store, &self.root, indexes)?
            .into_iter()
            .map(Hash)
            .collect())
    }
}

/// `membership` proves that `asset` is in manifest `m`, or says it is not.
fn membership(
    store: &dyn LogStore,
    m: &ManifestRef,
    asset: &Digest,
) -> Result<Option<v1::MembershipProof>, Status> {
    // Members are stored sorted by ordinal: binary search them.
    let (mut lo, mut hi) = (0u64, m.count);
    let mut found = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let d = index::manifest_member(store, &m.root, mid)
            .map_err(|e| internal("read manifest", e))?
            .ok_or_else(|| internal("read manifest", "member missing"))?;
        match d.cmp(asset) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                found = Some(mid);
                break;
            }
        }
    }
    let Some(ordinal) = found else {
        return Ok(None);
    };
    let proof = prove_inclusion(
        m.count,
        ordinal,
        &ManifestHashes {
            store,
            root: m.root,
        },
    )
    .map_err(|e| internal("manifest proof", e))?;
    Ok(Some(v1::MembershipProof {
        manifest_root: m.root.to_vec(),
        count: m.count,
        asset: asset.to_vec(),
        index: ordinal,
        proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
    }))
}

/// `Pinned` is the checkpoint an answer is computed and proven at. Page
/// tokens carry its size, so every page of one listing is proven against
/// the same checkpoint.
pub(crate) struct Pinned {
    /// The checkpoint's tree size.
    pub(crate) size: u64,
    /// The signed checkpoint note.
    pub(crate) note: Vec<u8>,
}

/// `Token` is a page token: the pinned tree size, then the listing's own
/// cursor.
fn split_token(t: &[u8]) -> Result<(Option<u64>, &[u8]), Status> {
    if t.is_empty() {
        return Ok((None, t));
    }
    if t.len() < 8 {
        return Err(bad_token());
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&t[..8]);
    Ok((Some(u64::from_be_bytes(s)), &t[8..]))
}

fn join_token(size: u64, cursor: &[u8]) -> Vec<u8> {
    let mut t = size.to_be_bytes().to_vec();
    t.extend_from_slice(cursor);
    t
}

/// `pin` is the latest checkpoint, or the stored one of `size`. It reads
/// storage for an older size: call it from a blocking task.
pub(crate) fn pin(state: &LogState, size: Option<u64>) -> Result<Pinned, Status> {
    let latest = state.answerable();
    match size {
        None => Ok(Pinned {
            size: latest.size,
            note: latest.note.clone(),
        }),
        Some(s) if s == latest.size => Ok(Pinned {
            size: s,
            note: latest.note.clone(),
        }),
        Some(s) if s > *state.indexed.borrow() => Err(Status::unavailable(format!(
            "entries from {} on are still being indexed (a bulk event's members are applied in slices); ask as of tree size {} or retry shortly",
            *state.indexed.borrow(),
            latest.size
        ))),
        Some(s) => {
            let note = state
                .store
                .checkpoint(s)
                .map_err(|e| internal("read checkpoint", e))?
                .ok_or_else(bad_token)?;
            Ok(Pinned { size: s, note })
        }
    }
}

/// `Cited` is a cited entry: its bytes, the asset or manifest it names,
/// the keys that signed it, whether it creates its asset (CAPTURE, DERIVE)
/// and, for a RECEIPT, the transfer it acknowledges.
struct Cited {
    bytes: Vec<u8>,
    asset: Option<AssetRef>,
    keys: Vec<custody_domain::KeyId>,
    creates: bool,
    receipt_of: Option<u64>,
}

/// `EvidenceBuilder` collects what an answer cites, then proves it all
/// against one checkpoint.
pub(crate) struct EvidenceBuilder<'a> {
    state: &'a LogState,
    store: &'a dyn LogStore,
    cp: &'a Pinned,
    registry: &'a Registry,
    /// Cited entries, decoded once.
    entries: BTreeMap<u64, Cited>,
    /// (asset, manifest) pairs needing a membership proof.
    members: BTreeSet<(Digest, [u8; 32], u64)>,
    /// Systems whose registration (and so owner) the answer relies on.
    systems: BTreeSet<String>,
}

impl<'a> EvidenceBuilder<'a> {
    pub(crate) fn new(state: &'a LogState, cp: &'a Pinned, registry: &'a Registry) -> Self {
        Self {
            state,
            store: state.store.as_ref(),
            cp,
            registry,
            entries: BTreeMap::new(),
            members: BTreeSet::new(),
            systems: BTreeSet::new(),
        }
    }

    /// `cite` adds entry `index`, and the membership of `asset` if the entry
    /// is a bulk event.
    pub(crate) fn cite(&mut self, index: u64, asset: Option<&Digest>) -> Result<(), Status> {
        if index >= self.cp.size {
            return Ok(());
        }
        if !self.entries.contains_key(&index) {
            let bytes = self
                .store
                .read_entries(index, index + 1)
                .map_err(|e| internal("read entry", e))?
                .pop()
                .unwrap_or_default();
            let (asset_ref, keys, creates, receipt_of) = match decode_entry(&bytes) {
                Ok(Entry::Event { envelope, .. }) => {
                    let keys = envelope.signatures.iter().map(|s| s.key_id).collect();
                    match decode_event(&envelope.body).map(|e| e.body) {
                        Ok(EventBody::Custody(c)) => (
                            c.asset,
                            keys,
                            matches!(
                                c.action,
                                CustodyActionKind::Capture | CustodyActionKind::Derive
                            ),
                            c.receipt_of
                                .filter(|_| c.action == CustodyActionKind::Receipt),
                        ),
                        _ => (None, keys, false, None),
                    }
                }
                _ => (None, Vec::new(), false, None),
            };
            self.entries.insert(
                index,
                Cited {
                    bytes,
                    asset: asset_ref,
                    keys,
                    creates,
                    receipt_of,
                },
            );
        }
        if let (
            Some(asset),
            Some(Cited {
                asset: Some(AssetRef::Manifest(m)),
                ..
            }),
        ) = (asset, self.entries.get(&index))
        {
            self.members.insert((*asset, m.root, m.count));
        }
        Ok(())
    }

    /// `cite_history` adds entry `index` of `asset`'s history and, for a
    /// RECEIPT, the transfer it acknowledges, which shows what it is about.
    pub(crate) fn cite_history(&mut self, index: u64, asset: &Digest) -> Result<(), Status> {
        self.cite(index, Some(asset))?;
        if let Some(of) = self.entries.get(&index).and_then(|c| c.receipt_of) {
            if of < index {
                self.cite(of, Some(asset))?;
            }
        }
        Ok(())
    }

    /// `cite_class` adds, for an interval whose class the log knows but
    /// whose opening entry does not create the asset (a COPY or MOVE), the
    /// entry that created it, which states the class. Call it after
    /// [`Self::cite_interval`].
    pub(crate) fn cite_class(&mut self, i: &Interval) -> Result<(), Status> {
        if i.modality.is_none() || self.entries.get(&i.opened_by).is_none_or(|c| c.creates) {
            return Ok(());
        }
        let meta =
            index::asset_meta(self.store, &i.asset).map_err(|e| internal("read asset", e))?;
        if let Some(m) = meta.filter(|m| m.created_by < i.opened_by) {
            self.cite(m.created_by, Some(&i.asset))?;
        }
        Ok(())
    }

    /// `cite_system` adds the registration of `system`, which names its
    /// owner.
    pub(crate) fn cite_system(&mut self, system: &str) {
        if !self.systems.contains(system) {
            self.systems.insert(system.to_owned());
        }
    }

    /// `cited` is how many entries are cited so far.
    pub(crate) fn cited(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn cite_interval(&mut self, i: &Interval) -> Result<(), Status> {
        if !self.systems.contains(&i.system) {
            self.systems.insert(i.system.clone());
        }
        self.cite(i.opened_by, Some(&i.asset))?;
        if let Some(c) = i.closed_by {
            self.cite(c, Some(&i.asset))?;
        }
        Ok(())
    }

    fn proven(&self, index: u64, entry: Vec<u8>) -> Result<v1::ProvenEntry, Status> {
        let proof = prove_inclusion(self.cp.size, index, &self.state.hashes())
            .map_err(|e| internal("inclusion proof", e))?;
        Ok(v1::ProvenEntry {
            index,
            entry,
            proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
        })
    }

    pub(crate) fn build(self) -> Result<v1::Evidence, Status> {
        // The registry entries behind every signature: genesis (the owner's
        // key) and the KEY_ADDED of each signing key; and the registration
        // of each system cited, which names its owner (the holder).
        let mut registry: BTreeSet<u64> = BTreeSet::from([0]);
        for s in &self.systems {
            if let Some(r) = self.registry.system(s) {
                registry.insert(r.registered_at);
            }
        }
        for c in self.entries.values() {
            for k in &c.keys {
                if let Some(r) = self.registry.key(k) {
                    registry.insert(r.added_at);
                }
            }
        }
        let mut out = v1::Evidence {
            checkpoint: self.cp.note.clone(),
            tree_size: self.cp.size,
            ..Default::default()
        };
        // Registry entries are signed too (by the data owner's keys): add
        // the KEY_ADDED entry of each of their keys, until none is missing.
        let mut todo: Vec<u64> = registry.iter().copied().collect();
        let mut read: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        while let Some(i) = todo.pop() {
            if i >= self.cp.size || read.contains_key(&i) {
                continue;
            }
            let e = self
                .store
                .read_entries(i, i + 1)
                .map_err(|e| internal("read registry entry", e))?
                .pop()
                .unwrap_or_default();
            if let Ok(Entry::Event { envelope, .. }) = decode_entry(&e) {
                for s in &envelope.signatures {
                    if let Some(r) = self.registry.key(&s.key_id) {
                        if registry.insert(r.added_at) {
                            todo.push(r.added_at);
                        }
                    }
                }
            }
            read.insert(i, e);
        }
        for (i, e) in read {
            out.registry.push(self.proven(i, e)?);
        }
        for (i, c) in &self.entries {
            out.entries.push(self.proven(*i, c.bytes.clone())?);
        }
        for (asset, root, count) in &self.members {
            let m = ManifestRef {
                root: *root,
                count: *count,
            };
            if let Some(p) = membership(self.store, &m, asset)? {
                out.memberships.push(p);
            }
        }
        Ok(out)
    }
}

/// `CustodyQueryService` answers custody queries.
pub struct CustodyQueryService {
    /// Shared state.
    state: Arc<LogState>,
    /// The findings stage, which Findings reads.
    findings: Arc<crate::findings::Findings>,
}

impl CustodyQueryService {
    /// `new` makes the service.
    pub fn new(state: Arc<LogState>, findings: Arc<crate::findings::Findings>) -> Self {
        Self { state, findings }
    }
}

#[tonic::async_trait]
impl CustodyQuery for CustodyQueryService {
    async fn asset_history(
        &self,
        request: Request<v1::AssetHistoryRequest>,
    ) -> Result<Response<v1::AssetHistoryResponse>, Status> {
        let r = request.into_inner();
        let asset = digest("asset", &r.asset)?;
        let limit = page_size(r.page_size)?;
        let (pinned, cursor) = split_token(&r.page_token)?;
        let after = match cursor.len() {
            0 => None,
            8 => Some(u64::from_be_bytes(
                cursor.try_into().map_err(|_| bad_token())?,
            )),
            _ => return Err(bad_token()),
        };
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let cp = pin(&state, pinned)?;
            let registry = state.registry();
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let (indexes, more) = q
                .asset_history(&asset, after, limit)
                .map_err(|e| internal("asset history", e))?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &indexes {
                ev.cite_history(*i, &asset)?;
            }
            Ok(Response::new(v1::AssetHistoryResponse {
                next_page_token: match (more, indexes.last()) {
                    (true, Some(l)) => join_token(cp.size, &l.to_be_bytes()),
                    _ => Vec::new(),
                },
                indexes,
                evidence: Some(ev.build()?),
            }))
        })
        .await
        .map_err(|e| internal("query task", e))?
    }

    async fn holders_at(
        &self,
        request: Request<v1::HoldersAtRequest>,
    ) -> Result<Response<v1::HoldersAtResponse>, Status> {
        let r = request.into_inner();
        let asset = digest("asset", &r.asset)?;
        let state = self.state.clone();
        let size = (r.tree_size != 0).then_some(r.tree_size);
        tokio::task::spawn_blocking(move || {
            let cp = pin(&state, size).map_err(|s| {
                if s.code() != tonic::Code::InvalidArgument {
                    return s;
                }
                Status::invalid_argument(format!(
                    "tree_size: the log keeps no checkpoint of size {}; ask as of a checkpoint it published, or 0 for the latest",
                    r.tree_size
                ))
            })?;
            let registry = state.registry();
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let intervals = q
                .holders_at(&asset, r.time_unix_nanos)
                .map_err(|e| internal("holders", e))?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &intervals {
                ev.cite_interval(i)?;
            }
            Ok(Response::new(v1::HoldersAtResponse {
                intervals: intervals.iter().map(interval_to_proto).collect(),
                evidence: Some(ev.build()?),
            }))
        })
        .await
        .map_err(|e| internal("query task", e))?
    }

    async fn holdings(
        &self,
        request: Request<v1::HoldingsRequest>,
    ) -> Result<Response<v1::HoldingsResponse>, Status> {
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let registry = self.state.registry();
        let systems: Vec<String> = match r.holder {
            Some(v1::holdings_request::Holder::SystemId(s)) => {
                if registry.system(&s).is_none() {
                    return Err(Status::not_found(format!("system {s} is not registered")));
                }
                vec![s]
            }
            Some(v1::holdings_request::Holder::Party(p)) => {
                if registry.party(&p).is_none() {
                    return Err(Status::not_found(format!("party {p} is not registered")));
                }
                let mut v: Vec<String> = registry
                    .systems()
                    .filter(|(_, s)| s.system.owner_party == p)
                    .map(|(id, _)| id.clone())
                    .collect();
                v.sort();
                v
            }
            None => return Err(Status::invalid_argument("holder: set party or system_id")),
        };
        let (pinned, cursor) = split_token(&r.page_token)?;
        let after = decode_holdings_token(cursor)?;
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let cp = pin(&state, pinned)?;
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let (intervals, next) = q
                .holdings(&systems, r.time_unix_nanos, after, limit)
                .map_err(|e| internal("holdings", e))?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &intervals {
                ev.cite_interval(i)?;
            }
            Ok(Response::new(v1::HoldingsResponse {
                intervals: intervals.iter().map(interval_to_proto).collect(),
                evidence: Some(ev.build()?),
                next_page_token: next
                    .map(|n| join_token(cp.size, &encode_holdings_token(n)))
                    .unwrap_or_default(),
            }))
        })
        .await
        .map_err(|e| internal("query task", e))?
    }

    async fn breach_scope(
        &self,
        request: Request<v1::BreachScopeRequest>,
    ) -> Result<Response<v1::BreachScopeResponse>, Status> {
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        if r.to_unix_nanos < r.from_unix_nanos {
            return Err(Status::invalid_argument(
                "to: the window ends before it starts",
            ));
        }
        let registry = self.state.registry();
        if registry.system(&r.system_id).is_none() {
            return Err(Status::not_found(format!(
                "system {} is not registered",
                r.system_id
            )));
        }
        let (pinned, cursor) = split_token(&r.page_token)?;
        let after = match cursor.len() {
            0 => None,
            32 => Some(digest("page_token", cursor)?),
            _ => return Err(bad_token()),
        };
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let cp = pin(&state, pinned)?;
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let scope = q
                .breach_scope(
                    &state.scopes,
                    &r.system_id,
                    r.from_unix_nanos,
                    r.to_unix_nanos,
                    after,
                    limit,
                )
                .map_err(|e| internal("breach scope", e))?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &scope.intervals {
                ev.cite_interval(i)?;
            }
            Ok(Response::new(v1::BreachScopeResponse {
                asset_count: scope.asset_count,
                by_class: scope
                    .by_class
                    .iter()
                    .map(|((m, s), n)| v1::ScopeCount {
                        modality: m.map_or(0, |m| m.code() as i32),
                        subject_class: s.map_or(0, |s| s.code() as i32),
                        count: *n,
                    })
                    .collect(),
                intervals: scope.intervals.iter().map(interval_to_proto).collect(),
                evidence: Some(ev.build()?),
                next_page_token: scope
                    .next
                    .map(|d| join_token(cp.size, &d))
                    .unwrap_or_default(),
            }))
        })
        .await
        .map_err(|e| internal("query task", e))?
    }

    async fn findings(
        &self,
        request: Request<v1::FindingsRequest>,
    ) -> Result<Response<v1::FindingsResponse>, Status> {
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let rule = match r.rule.as_str() {
            "" => None,
            name => Some(
                custody_domain::findings::Rule::from_name(name).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "rule: {} is not a rule; use one of {}",
                        quoted(name),
                        custody_domain::findings::Rule::ALL
                            .iter()
                            .map(|r| r.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
            ),
        };
        // The token pins the checkpoint, the time the findings are
        // evaluated as of, and the last finding listed: a question asked
        // "as of now" keeps the "now" of its first page, so its pages do
        // not shift, and each page resumes after the one before.
        let (pinned, cursor) = split_token(&r.page_token)?;
        let (pinned_as_of, after) = match cursor.len() {
            0 => (None, None),
            16.. if cursor.len() <= 16 + MAX_FINDING_ID => {
                let (t, rest) = cursor.split_at(8);
                let (at, id) = rest.split_at(8);
                let t = i64::from_be_bytes(t.try_into().map_err(|_| bad_token())?);
                let at = i64::from_be_bytes(at.try_into().map_err(|_| bad_token())?);
                let id = String::from_utf8(id.to_vec()).map_err(|_| bad_token())?;
                (Some(t), Some((at, id)))
            }
            _ => return Err(bad_token()),
        };
        let as_of = match (pinned_as_of, r.as_of_unix_nanos) {
            (Some(t), 0) => t,
            (Some(t), asked) if asked != t => {
                return Err(Status::invalid_argument(
                    "as_of_unix_nanos: differs from the one this page token was issued for; start again without a token",
                ))
            }
            (_, 0) => crate::init::now_nanos(),
            (_, t) => t,
        };
        let cp = {
            // An older pinned size reads its stored checkpoint.
            let state = self.state.clone();
            tokio::task::spawn_blocking(move || pin(&state, pinned))
                .await
                .map_err(|e| internal("query task", e))??
        };
        let filter = FindingsFilter {
            rule,
            party: (!r.party.is_empty()).then(|| r.party.clone()),
            system: (!r.system_id.is_empty()).then(|| r.system_id.clone()),
            from: if r.from_unix_nanos == 0 {
                i64::MIN
            } else {
                r.from_unix_nanos
            },
            to: if r.to_unix_nanos == 0 {
                i64::MAX
            } else {
                r.to_unix_nanos
            },
        };
        let found = self
            .findings
            .page(cp.size, as_of, filter, after, limit)
            .await
            .map_err(Status::unavailable)?;
        let total = found.total;
        let next_token = match (found.more, found.rows.last()) {
            (true, Some(last)) => {
                let mut cursor = as_of.to_be_bytes().to_vec();
                cursor.extend_from_slice(&last.at.to_be_bytes());
                cursor.extend_from_slice(last.id.as_bytes());
                join_token(cp.size, &cursor)
            }
            _ => Vec::new(),
        };
        let page = found.rows;
        let state = self.state.clone();
        let registry = state.registry();
        tokio::task::spawn_blocking(move || {
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for f in &page {
                for e in &f.entries {
                    ev.cite(*e, f.asset.as_ref())?;
                }
            }
            Ok(Response::new(v1::FindingsResponse {
                findings: page.iter().map(finding_to_proto).collect(),
                total,
                evidence: Some(ev.build()?),
                next_page_token: next_token,
            }))
        })
        .await
        .map_err(|e| internal("query task", e))?
    }

    async fn export_evidence(
        &self,
        request: Request<v1::ExportEvidenceRequest>,
    ) -> Result<Response<v1::ExportEvidenceResponse>, Status> {
        crate::export::export_evidence(
            self.state.clone(),
            Some(self.findings.clone()),
            request.into_inner(),
        )
        .await
        .map(Response::new)
    }
}

fn encode_holdings_token((system, (asset, opened_by)): HoldingsCursor) -> Vec<u8> {
    let mut t = (system as u32).to_be_bytes().to_vec();
    t.extend_from_slice(&asset);
    t.extend_from_slice(&opened_by.to_be_bytes());
    t
}

fn decode_holdings_token(t: &[u8]) -> Result<Option<HoldingsCursor>, Status> {
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() != 44 {
        return Err(bad_token());
    }
    let mut s = [0u8; 4];
    s.copy_from_slice(&t[..4]);
    let mut a = [0u8; 32];
    a.copy_from_slice(&t[4..36]);
    let mut o = [0u8; 8];
    o.copy_from_slice(&t[36..]);
    Ok(Some((
        u32::from_be_bytes(s) as usize,
        (a, u64::from_be_bytes(o)),
    )))
}

/// `MANIFEST_WRITE_CHUNK` is how many members (or tree hashes) of an
/// uploaded manifest are written at once.
const MANIFEST_WRITE_CHUNK: usize = 65_536;

/// `put_manifest` receives a manifest upload, checks it, computes its tree
/// and stores it.
///
/// # Errors
///
/// `INVALID_ARGUMENT` for unsorted, duplicate or malformed members, a root
/// other than `expected_root`, or too many members.
pub async fn put_manifest(
    state: Arc<LogState>,
    mut chunks: Streaming<v1::PutManifestRequest>,
) -> Result<v1::PutManifestResponse, Status> {
    let mut members: Vec<Digest> = Vec::new();
    let mut expected: Option<Digest> = None;
    while let Some(chunk) = chunks.message().await? {
        if !chunk.expected_root.is_empty() {
            expected = Some(digest("expected_root", &chunk.expected_root)?);
        }
        for m in chunk.members {
            let d = digest("members", &m)?;
            if let Some(last) = members.last() {
                if *last >= d {
                    return Err(Status::invalid_argument(format!(
                        "members: member {} is not greater than the one before it; send distinct digests in ascending order",
                        members.len()
                    )));
                }
            }
            if members.len() as u64 >= MAX_MANIFEST_MEMBERS {
                return Err(Status::invalid_argument(format!(
                    "members: a manifest has at most {MAX_MANIFEST_MEMBERS} members"
                )));
            }
            members.push(d);
        }
    }
    if members.is_empty() {
        return Err(Status::invalid_argument(
            "members: a manifest has at least one member",
        ));
    }
    tokio::task::spawn_blocking(move || {
        let leaves: Vec<Hash> = members.iter().map(|d| leaf_hash(d)).collect();
        let memory = MemoryHashes::default();
        let hashes =
            append_leaves(0, &leaves, &memory).map_err(|e| internal("manifest tree", e))?;
        let mut memory = MemoryHashes::default();
        memory.insert_all(hashes.iter().copied());
        let root = tree_root(leaves.len() as u64, &memory)
            .map_err(|e| internal("manifest root", e))?
            .0;
        if let Some(want) = expected {
            if want != root {
                return Err(Status::invalid_argument(format!(
                    "expected_root: the members hash to {}, not {}",
                    custody_domain::hex(&root),
                    custody_domain::hex(&want)
                )));
            }
        }
        let count = members.len() as u64;
        let m = ManifestRef { root, count };
        let known = StoreView(state.store.as_ref())
            .manifest_members(&m, 0..0)
            .map_err(|e| internal("read manifest", e))?;
        if known.is_none() {
            drop(memory);
            drop(leaves);
            let stored: Vec<(u64, [u8; 32])> = hashes.into_iter().map(|(i, h)| (i, h.0)).collect();
            // In pieces, so a million members are never a million writes
            // in memory at once; the count, which makes the manifest
            // known, comes last (a failed upload leaves members no event
            // can name).
            for (k, part) in members.chunks(MANIFEST_WRITE_CHUNK).enumerate() {
                let first = (k * MANIFEST_WRITE_CHUNK) as u64;
                state
                    .store
                    .index_write(&index::manifest_member_writes(&root, first, part))
                    .map_err(|e| internal("store manifest", e))?;
            }
            for part in stored.chunks(MANIFEST_WRITE_CHUNK) {
                state
                    .store
                    .index_write(&index::manifest_hash_writes(&root, part))
                    .map_err(|e| internal("store manifest", e))?;
            }
            state
                .store
                .index_write(&[index::manifest_meta_write(&root, count)])
                .map_err(|e| internal("store manifest", e))?;
        }
        Ok(v1::PutManifestResponse {
            manifest: Some(v1::Manifest {
                root: root.to_vec(),
                count,
            }),
        })
    })
    .await
    .map_err(|e| internal("manifest task", e))?
}

/// `get_manifest` serves a page of a manifest and, on request, one asset's
/// membership proof.
///
/// # Errors
///
/// `NOT_FOUND` for an unknown manifest or an asset not in it;
/// `INVALID_ARGUMENT` for malformed fields.
pub async fn get_manifest(
    state: Arc<LogState>,
    r: v1::GetManifestRequest,
) -> Result<v1::GetManifestResponse, Status> {
    let root = digest("root", &r.root)?;
    if r.limit > MAX_MEMBERS_PAGE {
        return Err(Status::invalid_argument(format!(
            "limit: at most {MAX_MEMBERS_PAGE}"
        )));
    }
    let asset = if r.asset.is_empty() {
        None
    } else {
        Some(digest("asset", &r.asset)?)
    };
    tokio::task::spawn_blocking(move || {
        let store = state.store.as_ref();
        let count = index::manifest_count(store, &root)
            .map_err(|e| internal("read manifest", e))?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "manifest {} was never uploaded",
                    custody_domain::hex(&root)
                ))
            })?;
        let members = if r.limit == 0 {
            Vec::new()
        } else {
            index::manifest_members(store, &root, r.start, r.limit as usize)
                .map_err(|e| internal("read manifest", e))?
        };
        let m = ManifestRef { root, count };
        let membership = match asset {
            None => None,
            Some(a) => Some(membership(store, &m, &a)?.ok_or_else(|| {
                Status::not_found(format!(
                    "asset {} is not a member of manifest {}",
                    custody_domain::hex(&a),
                    custody_domain::hex(&root)
                ))
            })?),
        };
        Ok(v1::GetManifestResponse {
            manifest: Some(v1::Manifest {
                root: root.to_vec(),
                count,
            }),
            members: members.into_iter().map(|d| d.to_vec()).collect(),
            membership,
        })
    })
    .await
    .map_err(|e| internal("manifest task", e))?
}
