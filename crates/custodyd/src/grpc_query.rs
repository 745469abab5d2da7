//! The `custody.v1.CustodyQuery` service and the manifest RPCs: custody
//! answers from the indexes, each with [`v1::Evidence`] against one
//! pinned checkpoint. Everything but the wire conversion is the answer
//! layer's ([`crate::answer`]): fields, pinning, page tokens, holders'
//! systems, the findings filter and the evidence's citation closure.

use std::sync::Arc;

use custody_domain::{CustodyView as _, Digest, ManifestRef, MAX_MANIFEST_MEMBERS};
use custody_evidence::Holder;
use custody_log::{append_leaves, leaf_hash, tree_root, Hash, MemoryHashes};
use custody_proto::v1::{self, custody_query_server::CustodyQuery};
use custody_proto::{finding_to_proto, interval_to_proto};
use custody_store::index::{self, StoreView};
use tonic::{Request, Response, Status, Streaming};

use crate::answer::evidence::{membership, EvidenceBuilder};
use crate::answer::token::{self, FindingsCursor};
use crate::answer::{self, blocking, fields, pin, AnswerError};
use crate::query::{AsOf, HoldingsCursor};
use crate::state::LogState;

/// Largest page of manifest members.
const MAX_MEMBERS_PAGE: u32 = 10_000;

/// `respond` runs an answer off the async threads and maps its error once.
async fn respond<T, F>(f: F) -> Result<Response<T>, Status>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AnswerError> + Send + 'static,
{
    blocking(f).await.map(Response::new).map_err(Status::from)
}

/// `nonzero` is a proto3 field's value, with its default taken as absent.
fn nonzero<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// `nonempty` is a proto3 string field, with "" taken as absent.
fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
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
        // Custody answers are for auditors (DESIGN §8).
        crate::grpc::caller(&self.state, &request)?.read_all()?;
        let r = request.into_inner();
        let asset = fields::digest("asset", &r.asset)?;
        let limit = fields::page_size(r.page_size)?;
        let (pinned, after) = token::read::<u64>(&r.page_token)?;
        let state = self.state.clone();
        respond(move || {
            let cp = pin(&state, pinned, "page_token")?;
            let registry = state.registry();
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let (indexes, more) = q.asset_history(&asset, after, limit)?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &indexes {
                ev.cite_history(*i, &asset)?;
            }
            Ok(v1::AssetHistoryResponse {
                next_page_token: match (more, indexes.last()) {
                    (true, Some(l)) => token::write(cp.size, l),
                    _ => Vec::new(),
                },
                indexes,
                evidence: Some(ev.build()?),
            })
        })
        .await
    }

    async fn holders_at(
        &self,
        request: Request<v1::HoldersAtRequest>,
    ) -> Result<Response<v1::HoldersAtResponse>, Status> {
        // Custody answers are for auditors (DESIGN §8).
        crate::grpc::caller(&self.state, &request)?.read_all()?;
        let r = request.into_inner();
        let asset = fields::digest("asset", &r.asset)?;
        let state = self.state.clone();
        respond(move || {
            let cp = pin(&state, nonzero(r.tree_size), "tree_size")?;
            let registry = state.registry();
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let intervals = q.holders_at(&asset, r.time_unix_nanos)?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &intervals {
                ev.cite_interval(i)?;
            }
            Ok(v1::HoldersAtResponse {
                intervals: intervals.iter().map(interval_to_proto).collect(),
                evidence: Some(ev.build()?),
            })
        })
        .await
    }

    async fn holdings(
        &self,
        request: Request<v1::HoldingsRequest>,
    ) -> Result<Response<v1::HoldingsResponse>, Status> {
        // Custody answers are for auditors (DESIGN §8).
        crate::grpc::caller(&self.state, &request)?.read_all()?;
        let r = request.into_inner();
        let limit = fields::page_size(r.page_size)?;
        let holder = match r.holder {
            Some(v1::holdings_request::Holder::SystemId(s)) => Holder::System(s),
            Some(v1::holdings_request::Holder::Party(p)) => Holder::Party(p),
            None => return Err(AnswerError::bad("holder", "set party or system_id").into()),
        };
        let (pinned, after) = token::read::<HoldingsCursor>(&r.page_token)?;
        let state = self.state.clone();
        respond(move || {
            let cp = pin(&state, pinned, "page_token")?;
            let registry = state.registry();
            let systems = answer::holder_systems(&registry, &holder, cp.size)?;
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let (intervals, next) = q.holdings(&systems, r.time_unix_nanos, after, limit)?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &intervals {
                ev.cite_interval(i)?;
            }
            Ok(v1::HoldingsResponse {
                intervals: intervals.iter().map(interval_to_proto).collect(),
                evidence: Some(ev.build()?),
                next_page_token: next.map(|n| token::write(cp.size, &n)).unwrap_or_default(),
            })
        })
        .await
    }

    async fn breach_scope(
        &self,
        request: Request<v1::BreachScopeRequest>,
    ) -> Result<Response<v1::BreachScopeResponse>, Status> {
        // Custody answers are for auditors (DESIGN §8).
        crate::grpc::caller(&self.state, &request)?.read_all()?;
        let r = request.into_inner();
        let limit = fields::page_size(r.page_size)?;
        fields::window(r.from_unix_nanos, r.to_unix_nanos)?;
        let registry = self.state.registry();
        answer::registered_system(&registry, &r.system_id)?;
        let (pinned, after) = token::read::<Digest>(&r.page_token)?;
        let state = self.state.clone();
        respond(move || {
            let cp = pin(&state, pinned, "page_token")?;
            let q = AsOf {
                store: state.store.as_ref(),
                size: cp.size,
            };
            let scope = q.breach_scope(
                &state.scopes,
                &r.system_id,
                r.from_unix_nanos,
                r.to_unix_nanos,
                after,
                limit,
            )?;
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for i in &scope.intervals {
                ev.cite_interval(i)?;
            }
            Ok(v1::BreachScopeResponse {
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
                    .map(|d| token::write(cp.size, &d))
                    .unwrap_or_default(),
            })
        })
        .await
    }

    async fn findings(
        &self,
        request: Request<v1::FindingsRequest>,
    ) -> Result<Response<v1::FindingsResponse>, Status> {
        // Custody answers are for auditors (DESIGN §8).
        crate::grpc::caller(&self.state, &request)?.read_all()?;
        let r = request.into_inner();
        let limit = fields::page_size(r.page_size)?;
        let filter = answer::findings_filter(
            nonempty(&r.rule),
            nonempty(&r.party),
            nonempty(&r.system_id),
            nonzero(r.from_unix_nanos),
            nonzero(r.to_unix_nanos),
        )?;
        // The token pins the checkpoint, the time the findings are
        // evaluated as of, and the last finding listed.
        let (pinned, cursor) = token::read::<FindingsCursor>(&r.page_token)?;
        let as_of = answer::findings_as_of(
            cursor.as_ref().map(|c| c.as_of),
            nonzero(r.as_of_unix_nanos),
            "as_of_unix_nanos",
        )?;
        let cp = {
            let state = self.state.clone();
            blocking(move || pin(&state, pinned, "page_token")).await?
        };
        let after = cursor.map(|c| (c.at, c.id));
        let found = self
            .findings
            .page(cp.size, as_of, filter, after, limit)
            .await?;
        let next_page_token = match (found.more, found.rows.last()) {
            (true, Some(last)) => token::write(
                cp.size,
                &FindingsCursor {
                    as_of,
                    at: last.at,
                    id: last.id.clone(),
                },
            ),
            _ => Vec::new(),
        };
        let state = self.state.clone();
        respond(move || {
            let registry = state.registry();
            let mut ev = EvidenceBuilder::new(&state, &cp, &registry);
            for f in &found.rows {
                ev.cite_finding(f)?;
            }
            Ok(v1::FindingsResponse {
                findings: found.rows.iter().map(finding_to_proto).collect(),
                total: found.total,
                evidence: Some(ev.build()?),
                next_page_token,
            })
        })
        .await
    }

    async fn export_evidence(
        &self,
        request: Request<v1::ExportEvidenceRequest>,
    ) -> Result<Response<v1::ExportEvidenceResponse>, Status> {
        // Custody answers are for auditors (DESIGN §8).
        crate::grpc::caller(&self.state, &request)?.read_all()?;
        crate::export::export_evidence(
            self.state.clone(),
            Some(self.findings.clone()),
            request.into_inner(),
        )
        .await
        .map(Response::new)
        .map_err(Status::from)
    }
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
    who: &str,
    still_allowed: impl Fn() -> Result<(), AnswerError> + Send + 'static,
) -> Result<v1::PutManifestResponse, Status> {
    let mut slot = state.uploads.begin(who)?;
    let (idle, deadline) = (
        state.uploads.idle(),
        tokio::time::Instant::now() + state.uploads.timeout(),
    );
    let mut members: Vec<Digest> = Vec::new();
    let mut expected: Option<Digest> = None;
    loop {
        let next = tokio::time::timeout(idle, chunks.message());
        let chunk = match tokio::time::timeout_at(deadline, next).await {
            Ok(Ok(Ok(Some(c)))) => c,
            Ok(Ok(Ok(None))) => break,
            Ok(Ok(Err(s))) => return Err(s),
            Ok(Err(_)) => {
                return Err(AnswerError::Exhausted(format!(
                    "no message of the upload for {} s; an upload must keep sending (--upload-idle-secs)",
                    idle.as_secs()
                ))
                .into())
            }
            Err(_) => {
                return Err(AnswerError::Exhausted(format!(
                    "the upload took more than {} s; send the members faster, or fewer (--upload-timeout-secs)",
                    state.uploads.timeout().as_secs()
                ))
                .into())
            }
        };
        if !chunk.expected_root.is_empty() {
            expected = Some(fields::digest("expected_root", &chunk.expected_root)?);
        }
        slot.hold(chunk.members.len() as u64)?;
        for m in chunk.members {
            let d = fields::digest("members", &m)?;
            if let Some(last) = members.last() {
                if *last >= d {
                    return Err(AnswerError::bad(
                        "members",
                        format!(
                            "member {} is not greater than the one before it; send distinct digests in ascending order",
                            members.len()
                        ),
                    )
                    .into());
                }
            }
            if members.len() as u64 >= MAX_MANIFEST_MEMBERS {
                return Err(AnswerError::bad(
                    "members",
                    format!("a manifest has at most {MAX_MANIFEST_MEMBERS} members"),
                )
                .into());
            }
            members.push(d);
        }
    }
    if members.is_empty() {
        return Err(AnswerError::bad("members", "a manifest has at least one member").into());
    }
    still_allowed()?;
    blocking(move || {
        // Held until stored: the slot's place and memory, and the gate
        // that keeps unnamed manifests from being removed meanwhile.
        let slot = slot;
        let _shared = state.uploads.gate.read().unwrap_or_else(|e| e.into_inner());
        let leaves: Vec<Hash> = members.iter().map(|d| leaf_hash(d)).collect();
        let memory = MemoryHashes::default();
        let hashes = append_leaves(0, &leaves, &memory)
            .map_err(|e| AnswerError::internal("manifest tree", e))?;
        let mut memory = MemoryHashes::default();
        memory.insert_all(hashes.iter().copied());
        let root = tree_root(leaves.len() as u64, &memory)
            .map_err(|e| AnswerError::internal("manifest root", e))?
            .0;
        if let Some(want) = expected {
            if want != root {
                return Err(AnswerError::bad(
                    "expected_root",
                    format!(
                        "the members hash to {}, not {}",
                        custody_domain::hex(&root),
                        custody_domain::hex(&want)
                    ),
                ));
            }
        }
        let count = members.len() as u64;
        let m = ManifestRef { root, count };
        let known = StoreView(state.store.as_ref())
            .manifest_members(&m, 0..0)
            .map_err(|e| AnswerError::internal("read manifest", e))?;
        let pending = crate::uploads::admit_pending(
            state.store.as_ref(),
            &state.uploads.limits,
            &root,
            count,
            slot.who(),
            known.is_some(),
            crate::init::now_nanos(),
        )?;
        if known.is_some() {
            if let Some(w) = pending {
                state
                    .store
                    .index_write(&[w])
                    .map_err(|e| AnswerError::internal("store manifest", e))?;
            }
        } else {
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
                    .map_err(|e| AnswerError::internal("store manifest", e))?;
            }
            for part in stored.chunks(MANIFEST_WRITE_CHUNK) {
                state
                    .store
                    .index_write(&index::manifest_hash_writes(&root, part))
                    .map_err(|e| AnswerError::internal("store manifest", e))?;
            }
            let mut last = vec![index::manifest_meta_write(&root, count)];
            last.extend(pending);
            state
                .store
                .index_write(&last)
                .map_err(|e| AnswerError::internal("store manifest", e))?;
        }
        Ok(v1::PutManifestResponse {
            manifest: Some(v1::Manifest {
                root: root.to_vec(),
                count,
            }),
        })
    })
    .await
    .map_err(Status::from)
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
    let root = fields::digest("root", &r.root)?;
    if r.limit > MAX_MEMBERS_PAGE {
        return Err(AnswerError::bad("limit", format!("at most {MAX_MEMBERS_PAGE}")).into());
    }
    let asset = if r.asset.is_empty() {
        None
    } else {
        Some(fields::digest("asset", &r.asset)?)
    };
    blocking(move || {
        let store = state.store.as_ref();
        let count = index::manifest_count(store, &root)
            .map_err(|e| AnswerError::internal("read manifest", e))?
            .ok_or_else(|| {
                AnswerError::NotFound(format!(
                    "manifest {} was never uploaded",
                    custody_domain::hex(&root)
                ))
            })?;
        let members = if r.limit == 0 {
            Vec::new()
        } else {
            index::manifest_members(store, &root, r.start, r.limit as usize)
                .map_err(|e| AnswerError::internal("read manifest", e))?
        };
        let m = ManifestRef { root, count };
        let membership = match asset {
            None => None,
            Some(a) => Some(membership(store, &m, &a)?.ok_or_else(|| {
                AnswerError::NotFound(format!(
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
    .map_err(Status::from)
}
