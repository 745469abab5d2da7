//! The `custody.v1.CustodyLog` gRPC service. Wire types are converted to
//! domain types here and nowhere deeper.

use std::pin::Pin;
use std::sync::Arc;

use custody_domain::{Refusal, RefusalKind};
use custody_log::{prove_consistency, prove_inclusion};
use custody_proto::envelope_from_proto;
use custody_proto::v1::{self, custody_log_server::CustodyLog};
use custody_store::LogStore;
use futures::{Stream, StreamExt as _};
use tonic::codegen::http;
use tonic::{Request, Response, Status, Streaming};

use crate::access::{reporter_of, Caller};
use crate::answer::error::bad_request_status;
use crate::answer::{self, AnswerError};
use crate::sequencer::SequencerHandle;
use crate::state::LogState;

/// Most entries one `GetEntries` call returns.
pub const MAX_ENTRIES_PER_CALL: u64 = 1000;
/// Most requests of one `AppendStream` in flight at once.
pub const STREAM_WINDOW: usize = 1024;

/// `status_of` is the one mapping from domain refusals to gRPC statuses.
/// `INVALID_ARGUMENT` carries the offending field as a `google.rpc.BadRequest`
/// field violation, so clients can point at it without parsing text.
pub fn status_of(r: Refusal) -> Status {
    let msg = crate::answer::status_message(&match r.field {
        Some(f) if !r.message.contains(f) => format!("{f}: {}", r.message),
        _ => r.message.clone(),
    });
    match r.kind {
        RefusalKind::InvalidArgument => match r.field {
            Some(field) => bad_request_status(field, &r.message),
            None => Status::invalid_argument(msg),
        },
        RefusalKind::PermissionDenied => Status::permission_denied(msg),
        RefusalKind::FailedPrecondition => Status::failed_precondition(msg),
        RefusalKind::AlreadyExists => Status::already_exists(msg),
        RefusalKind::ResourceExhausted => Status::resource_exhausted(msg),
        _ => Status::internal(msg),
    }
}

/// `caller` is who sent `request`, by its `authorization` metadata or
/// its connection's client certificate ([`crate::access`]).
///
/// # Errors
///
/// `UNAUTHENTICATED` for a missing or unknown token on a server with an
/// access list.
pub fn caller<T>(state: &LogState, request: &Request<T>) -> Result<Caller, Status> {
    state
        .admit(authorization(request).as_deref(), peer(request).as_ref())
        .map_err(Status::from)
}

/// `peer` is who is at the other end of `request`'s connection.
fn peer<T>(request: &Request<T>) -> Option<crate::tls::Peer> {
    request.extensions().get::<crate::tls::Peer>().cloned()
}

/// `authorization` is a request's `authorization` metadata, kept by a
/// stream so that each of its messages is checked against the access
/// list as it is then: a token revoked while a stream is open stops
/// working at its next message.
fn authorization<T>(request: &Request<T>) -> Option<Vec<u8>> {
    request
        .metadata()
        .get("authorization")
        .map(|v| v.as_bytes().to_vec())
}

/// `CustodyLogService` implements the gRPC service.
pub struct CustodyLogService {
    /// Shared state.
    state: Arc<LogState>,
    /// Where appends go.
    sequencer: SequencerHandle,
}

impl CustodyLogService {
    /// `new` makes the service.
    pub fn new(state: Arc<LogState>, sequencer: SequencerHandle) -> Self {
        Self { state, sequencer }
    }
}

/// `turned_away` answers an append turned away unread
/// ([`crate::rate::TurnedAway`]), after holding the answer back until the
/// client has budget again (at most [`crate::rate::TARPIT_MAX`]). The
/// request is dropped before the wait, so waiting answers hold no
/// client's bytes.
async fn turned_away(state: &LogState, t: crate::rate::TurnedAway) -> Status {
    tokio::time::sleep(t.wait.min(crate::rate::TARPIT_MAX)).await;
    let status = Status::from(t.error);
    state.metrics.refused(status.code(), None);
    status
}

/// The path of the unary `Append`.
const APPEND_PATH: &str = "/custody.v1.CustodyLog/Append";

/// `AppendDoorLayer` puts an [`AppendDoor`] in front of the gRPC server.
#[derive(Clone)]
pub struct AppendDoorLayer {
    /// Shared state: the refusal budget and the access list.
    state: Arc<LogState>,
}

impl AppendDoorLayer {
    /// `new` makes the layer.
    pub fn new(state: Arc<LogState>) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for AppendDoorLayer {
    type Service = AppendDoor<S>;

    fn layer(&self, inner: S) -> AppendDoor<S> {
        AppendDoor {
            state: self.state.clone(),
            inner,
        }
    }
}

/// `AtTheDoor` is what the [`AppendDoor`] saw of a unary `Append`, for
/// its handler: whom it counted the request against, with what
/// credentials, and a mark the handler sets when it runs (a refusal
/// without it is tonic's own: over the message limit, not protobuf,
/// compressed as the server does not take).
#[derive(Clone)]
pub struct AtTheDoor {
    /// The client the budget was checked for.
    client: Arc<str>,
    /// The `authorization` header it was sent with.
    authorization: Option<Arc<[u8]>>,
    /// Set by the handler.
    handled: Arc<std::sync::atomic::AtomicBool>,
}

/// `AppendDoor` keeps the refusal budget for the unary `Append` before
/// tonic reads the message: a client over its budget is turned away with
/// the message unread and answered late ([`turned_away`]), and what
/// tonic refuses before the service sees it (a message over the decoding
/// limit, OUT_OF_RANGE; not protobuf, INTERNAL; compressed, UNIMPLEMENTED)
/// is charged like any other refusal. The request runs as a task of its
/// own, so a client that resets it once it is read cannot cancel its
/// charge. (An `AppendStream` checks each message as it reads it, in its
/// gate.)
#[derive(Clone)]
pub struct AppendDoor<S> {
    /// Shared state.
    state: Arc<LogState>,
    /// The gRPC server.
    inner: S,
}

type DoorFuture<E> =
    Pin<Box<dyn std::future::Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for AppendDoor<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = DoorFuture<S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The service made ready is the one called; a fresh clone waits
        // for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if req.uri().path() != APPEND_PATH {
            return Box::pin(inner.call(req));
        }
        let state = self.state.clone();
        Box::pin(async move {
            let mut req = req;
            let peer = req.extensions().get::<crate::tls::Peer>().cloned();
            let token: Option<Arc<[u8]>> = req
                .headers()
                .get("authorization")
                .map(|v| v.as_bytes().into());
            let client: Arc<str> = state.client(token.as_deref(), peer.as_ref()).into();
            let place = match state.may_append(&client) {
                Ok(place) => place,
                Err(t) => {
                    drop(req);
                    return Ok(turned_away(&state, t).await.into_http());
                }
            };
            let handled = Arc::new(std::sync::atomic::AtomicBool::new(false));
            req.extensions_mut().insert(AtTheDoor {
                client: client.clone(),
                authorization: token,
                handled: handled.clone(),
            });
            let call = tokio::spawn(async move {
                let resp = inner.call(req).await?;
                // A refusal the handler did not make is tonic's own;
                // its status is in the response. A reset is no charge.
                let refused = resp
                    .extensions()
                    .get::<Status>()
                    .map(Status::code)
                    .filter(|c| !matches!(c, tonic::Code::Ok | tonic::Code::Cancelled));
                if let Some(code) = refused {
                    if !handled.load(std::sync::atomic::Ordering::Relaxed) {
                        state.metrics.refused(code, None);
                        state.refused(&client, code);
                    }
                }
                // The verdict (and any charge) is in: free its place.
                drop(place);
                Ok(resp)
            });
            match call.await {
                Ok(resp) => resp,
                Err(e) => Ok(Status::from(AnswerError::internal("append", e)).into_http()),
            }
        })
    }
}

/// A message of an `AppendStream`, past the gate that ends the stream of
/// a client over its refusal budget.
enum Gated {
    /// The message, to be appended, and its place in the client's
    /// refusal budget.
    Read(
        Result<v1::AppendRequest, Status>,
        Option<crate::rate::Pending>,
    ),
    /// Turned away unread, answered late; the stream's last.
    TurnedAway(Status),
}

async fn append_one(
    state: Arc<LogState>,
    sequencer: SequencerHandle,
    caller: &Caller,
    client: &str,
    req: v1::AppendRequest,
) -> Result<v1::AppendResponse, Status> {
    // Every refusal is counted, by code and the field at fault, and
    // charged to the client's budget when it is the client's doing.
    let refuse = |r: Refusal| {
        let field = r.field;
        let status = status_of(r);
        state.metrics.refused(status.code(), field);
        state.refused(client, status.code());
        status
    };
    let Some(event) = req.event else {
        return Err(refuse(Refusal::invalid("event", "missing signed event")));
    };
    let envelope = envelope_from_proto(event).map_err(refuse)?;
    // A reporter reports only its own party's events. (An open server
    // skips the second decode.)
    if *caller != Caller::Open {
        let event = custody_proto::decode_event(&envelope.body).map_err(refuse)?;
        caller.report_as(&event.reporter).map_err(|e| {
            let status = Status::from(e);
            state.metrics.refused(status.code(), Some("reporter"));
            state.refused(client, status.code());
            status
        })?;
    }
    let appended = sequencer.submit(envelope).await.map_err(refuse)?;
    let mut resp = v1::AppendResponse {
        index: appended.index,
        duplicate: appended.duplicate,
        ..Default::default()
    };
    if req.wait_for_checkpoint {
        let mut rx = state.checkpoint.subscribe();
        let cp = rx
            .wait_for(|cp| cp.size > appended.index)
            .await
            .map_err(|_| {
                Status::from(AnswerError::Unavailable(format!(
                    "entry {} is durable, but the server is shutting down before its checkpoint; ask GetInclusionProof later",
                    appended.index
                )))
            })?
            .clone();
        let (size, index) = (cp.size, appended.index);
        let proof = blocking(move || {
            prove_inclusion(size, index, &state.hashes())
                .map_err(|e| AnswerError::internal("inclusion proof", e))
        })
        .await?;
        resp.checkpoint = cp.note.clone();
        resp.inclusion_proof = proof.into_iter().map(|h| h.0.to_vec()).collect();
    }
    Ok(resp)
}

type AppendStreamOut = Pin<Box<dyn Stream<Item = Result<v1::AppendResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CustodyLog for CustodyLogService {
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let peer = peer(&request);
        // The refusal budget was checked at the door ([`AppendDoor`]),
        // before tonic read the message, against the client the door
        // saw; refusals are charged to that client. The credentials may
        // not change after the door: tonic merges request trailers into
        // the metadata, and an `authorization` there would otherwise name
        // a client whose budget the door never checked.
        let door = request.extensions().get::<AtTheDoor>().cloned();
        if let Some(d) = &door {
            d.handled.store(true, std::sync::atomic::Ordering::Relaxed);
            if authorization(&request).as_deref() != d.authorization.as_deref() {
                let status = Status::from(AnswerError::bad(
                    "authorization",
                    "send it in the request's headers; trailers may not add or change it",
                ));
                self.state
                    .metrics
                    .refused(status.code(), Some("authorization"));
                self.state.refused(&d.client, status.code());
                return Err(status);
            }
        }
        let charged = |caller: Option<&Caller>| match &door {
            Some(d) => d.client.to_string(),
            None => crate::rate::client_of(caller, peer.as_ref()),
        };
        let caller = caller(&self.state, &request).inspect_err(|s| {
            self.state.metrics.refused(s.code(), None);
            self.state.refused(&charged(None), s.code());
        })?;
        let client = charged(Some(&caller));
        append_one(
            self.state.clone(),
            self.sequencer.clone(),
            &caller,
            &client,
            request.into_inner(),
        )
        .await
        .map(Response::new)
    }

    type AppendStreamStream = AppendStreamOut;

    async fn append_stream(
        &self,
        request: Request<Streaming<v1::AppendRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        // Refused at once if the token is unknown now; then checked again
        // for every message.
        let first = caller(&self.state, &request)?;
        let auth = Arc::new((authorization(&request), peer(&request)));
        let client: Arc<str> = crate::rate::client_of(Some(&first), auth.1.as_ref()).into();
        let state = self.state.clone();
        let gate = self.state.clone();
        let sequencer = self.sequencer.clone();
        // One response per request, in request order; refusals are
        // reported in-band so one bad event does not end the stream.
        // The gate reads one message at a time. Once the client is over
        // its refusal budget, the message is dropped, its answer is held
        // back until the budget refills with nothing more read (HTTP/2
        // flow control stops the client once the stream's window is
        // full, as for any stream the server is slow to read), and then
        // the rest of the request stream is dropped unread and the stream
        // ends with that answer. The client opens another when it may.
        let inbound = request.into_inner();
        let out = futures::stream::unfold(Some(inbound), move |inbound| {
            let state = gate.clone();
            let client = client.clone();
            async move {
                let mut inbound = inbound?;
                let req = inbound.next().await?;
                match state.may_append(&client) {
                    Ok(place) => Some((Gated::Read(req, place), Some(inbound))),
                    Err(t) => {
                        // Held back with the stream unread, so flow
                        // control stops the client sending (at most a
                        // window's worth waits); then the stream ends.
                        drop(req);
                        let answer = turned_away(&state, t).await;
                        drop(inbound);
                        Some((Gated::TurnedAway(answer), None))
                    }
                }
            }
        })
        .map(move |gated| {
            let state = state.clone();
            let sequencer = sequencer.clone();
            let auth = auth.clone();
            // Not a task of its own: `buffered` polls these in order, so
            // a stream's events reach the sequencer in the order sent.
            async move {
                let (req, place) = match gated {
                    Gated::Read(Ok(r), place) => (r, place),
                    Gated::Read(Err(s), _) => {
                        // A message the stream could not read: over the
                        // message limit or not protobuf is the client's
                        // doing (charged); a reset stream is not.
                        if matches!(s.code(), tonic::Code::OutOfRange | tonic::Code::Internal) {
                            state.metrics.refused(s.code(), None);
                            let (token, peer) = auth.as_ref();
                            state.refused(&state.client(token.as_deref(), peer.as_ref()), s.code());
                        }
                        return Err(s);
                    }
                    Gated::TurnedAway(s) => {
                        return Ok(v1::AppendResponse {
                            error_code: s.code() as i32,
                            error_message: s.message().to_owned(),
                            ..Default::default()
                        });
                    }
                };
                let (token, peer) = auth.as_ref();
                let appended = match state.admit(token.as_deref(), peer.as_ref()) {
                    Ok(caller) => {
                        let client = crate::rate::client_of(Some(&caller), peer.as_ref());
                        append_one(state, sequencer, &caller, &client, req).await
                    }
                    Err(e) => {
                        let status = Status::from(e);
                        state.metrics.refused(status.code(), None);
                        state.refused(&crate::rate::client_of(None, peer.as_ref()), status.code());
                        Err(status)
                    }
                };
                // The verdict (and any charge) is in: free its place.
                drop(place);
                Ok(match appended {
                    Ok(r) => r,
                    Err(s) => v1::AppendResponse {
                        error_code: s.code() as i32,
                        error_message: s.message().to_owned(),
                        ..Default::default()
                    },
                })
            }
        })
        .buffered(STREAM_WINDOW);
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_checkpoint(
        &self,
        request: Request<v1::GetCheckpointRequest>,
    ) -> Result<Response<v1::GetCheckpointResponse>, Status> {
        // Checkpoints hold no custody data: any caller the server knows.
        caller(&self.state, &request)?;
        let size = request.into_inner().tree_size;
        let state = self.state.clone();
        blocking(move || {
            let latest = state.latest();
            let (_, note) = checkpoint_of(state.store.as_ref(), (latest.size, &latest.note), size)?;
            Ok(v1::GetCheckpointResponse { checkpoint: note })
        })
        .await
        .map(Response::new)
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::GetEntriesResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        let r = request.into_inner();
        let state = self.state.clone();
        blocking(move || {
            let entries =
                entries_within(state.store.as_ref(), state.latest().size, r.start, r.end)?;
            if caller.read_all().is_err() {
                for (i, e) in (r.start..).zip(&entries) {
                    caller.read_entry(i, reporter_of(e).as_deref())?;
                }
            }
            Ok(v1::GetEntriesResponse { entries })
        })
        .await
        .map(Response::new)
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::GetInclusionProofRequest>,
    ) -> Result<Response<v1::GetInclusionProofResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        let r = request.into_inner();
        let state = self.state.clone();
        blocking(move || {
            let latest = state.latest();
            let at = checkpoint_of(
                state.store.as_ref(),
                (latest.size, &latest.note),
                r.tree_size,
            )?;
            let answer = inclusion(state.store.as_ref(), &state.hashes(), at, r.index)?;
            caller.read_entry(r.index, reporter_of(&answer.entry).as_deref())?;
            Ok(answer)
        })
        .await
        .map(Response::new)
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::GetConsistencyProofRequest>,
    ) -> Result<Response<v1::GetConsistencyProofResponse>, Status> {
        caller(&self.state, &request)?;
        let r = request.into_inner();
        let state = self.state.clone();
        blocking(move || {
            let latest = state.latest();
            let (new_size, _) = checkpoint_of(
                state.store.as_ref(),
                (latest.size, &latest.note),
                r.new_size,
            )?;
            consistency(&state.hashes(), r.old_size, new_size)
        })
        .await
        .map(Response::new)
    }

    async fn put_manifest(
        &self,
        request: Request<Streaming<v1::PutManifestRequest>>,
    ) -> Result<Response<v1::PutManifestResponse>, Status> {
        let who = caller(&self.state, &request)?;
        who.upload()?;
        // Quotas are per party, or on an open server per address.
        let who = crate::rate::client_of(Some(&who), peer(&request).as_ref());
        // Checked again before the upload is stored: a token revoked
        // while it streamed stores nothing.
        let (state, auth, peer) = (self.state.clone(), authorization(&request), peer(&request));
        let still = move || -> Result<(), AnswerError> {
            state
                .access
                .caller(auth.as_deref(), peer.as_ref())?
                .upload()
        };
        crate::grpc_query::put_manifest(self.state.clone(), request.into_inner(), &who, still)
            .await
            .map(Response::new)
    }

    async fn get_manifest(
        &self,
        request: Request<v1::GetManifestRequest>,
    ) -> Result<Response<v1::GetManifestResponse>, Status> {
        let caller = caller(&self.state, &request)?;
        if caller.upload().is_err() {
            caller.read_all()?;
        }
        crate::grpc_query::get_manifest(self.state.clone(), request.into_inner())
            .await
            .map(Response::new)
    }
}

/// `blocking` runs storage work on a blocking thread, never on the async
/// runtime's, so a slow read cannot stall other requests.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AnswerError> + Send + 'static,
) -> Result<T, Status> {
    answer::blocking(f).await.map_err(Status::from)
}

/// `checkpoint_of` is the latest checkpoint (size 0 or its size), or the
/// stored one of `size`: for the server and a read replica.
///
/// # Errors
///
/// [`AnswerError::NotFound`] if no checkpoint of `size` was published.
pub fn checkpoint_of(
    store: &dyn LogStore,
    (latest, note): (u64, &[u8]),
    size: u64,
) -> Result<(u64, Vec<u8>), AnswerError> {
    if size == 0 || size == latest {
        return Ok((latest, note.to_vec()));
    }
    let note = store.checkpoint(size)?.ok_or_else(|| {
        AnswerError::NotFound(format!(
            "no checkpoint of size {size} was published; the latest is {latest}"
        ))
    })?;
    Ok((size, note))
}

/// `entries_within` reads entries `start..end` (at most
/// [`MAX_ENTRIES_PER_CALL`]) of a tree of `size`: GetEntries, for the
/// server and a read replica.
///
/// # Errors
///
/// [`AnswerError::PastEnd`] for a range not within `size`; a store error.
pub fn entries_within(
    store: &dyn LogStore,
    size: u64,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, AnswerError> {
    if start >= end || end > size {
        return Err(AnswerError::PastEnd(format!(
            "entries {start}..{end} are not within the latest checkpoint of size {size}"
        )));
    }
    let end = end.min(start + MAX_ENTRIES_PER_CALL);
    Ok(store.read_entries(start, end)?)
}

/// `inclusion` is GetInclusionProof's answer for entry `index` in the
/// tree of checkpoint `(size, note)`, for the server and a read replica.
/// The caller checks that its caller may read the entry.
///
/// # Errors
///
/// [`AnswerError::PastEnd`] for an index not in the tree; a store error.
pub fn inclusion(
    store: &dyn LogStore,
    hashes: &impl custody_log::HashSource,
    (size, note): (u64, Vec<u8>),
    index: u64,
) -> Result<v1::GetInclusionProofResponse, AnswerError> {
    if index >= size {
        return Err(AnswerError::PastEnd(format!(
            "index {index} is not in the tree of size {size}"
        )));
    }
    let proof = prove_inclusion(size, index, hashes)
        .map_err(|e| AnswerError::internal("inclusion proof", e))?;
    let entry = store
        .read_entries(index, index + 1)?
        .pop()
        .unwrap_or_default();
    Ok(v1::GetInclusionProofResponse {
        index,
        tree_size: size,
        proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
        entry,
        checkpoint: note,
    })
}

/// `consistency` is GetConsistencyProof's answer from `old_size` to a
/// published `new_size`, for the server and a read replica.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] unless `1 <= old_size <= new_size`.
pub fn consistency(
    hashes: &impl custody_log::HashSource,
    old_size: u64,
    new_size: u64,
) -> Result<v1::GetConsistencyProofResponse, AnswerError> {
    if old_size == 0 || old_size > new_size {
        return Err(AnswerError::bad(
            "old_size",
            format!("must be between 1 and the new size {new_size}; got {old_size}"),
        ));
    }
    let proof = prove_consistency(old_size, new_size, hashes)
        .map_err(|e| AnswerError::internal("consistency proof", e))?;
    Ok(v1::GetConsistencyProofResponse {
        old_size,
        new_size,
        proof: proof.into_iter().map(|h| h.0.to_vec()).collect(),
    })
}
