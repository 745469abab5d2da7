//! [`Submitter`]: sends what a [`Spool`] holds over `AppendStream`, in
//! order, and records each answer in it.
//!
//! One session is one `AppendStream`: a feeder sends the pending events
//! in sequence order (and, in [`Submitter::run`], each event as it is
//! spooled), a reader takes the answers, which come one per event in
//! the order sent, and records them in the spool in batches, one fsync
//! each. A session ends when the stream breaks or the server ends it, or
//! on any refusal that can pass (come back later, a revoked token, a
//! fault of the server: see `is_final`); the next starts after a back-off with jitter,
//! from the oldest event still pending. Events that were logged but whose
//! answers were lost are answered as duplicates, with their original
//! index. An event refused for what it is (INVALID_ARGUMENT,
//! PERMISSION_DENIED, FAILED_PRECONDITION, ALREADY_EXISTS, OUT_OF_RANGE:
//! a bad signature, a reporter it may not report for, ...) is recorded
//! as refused and not sent again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody_proto::v1::{self, custody_log_client::CustodyLogClient};
use futures::StreamExt as _;
use rand::Rng as _;
use tokio::sync::{watch, Notify};
use tonic::transport::{Channel, Endpoint};

use crate::spool::{Ack, Outcome, Spool, SpoolError};
use crate::Reporter;

/// Most events sent and not yet answered on one stream: the server's own
/// window (`custodyd::grpc::STREAM_WINDOW`).
pub const WINDOW: usize = 1024;
/// Answers recorded with one fsync, at most.
const RECORD_BATCH: usize = 512;
/// Events taken from the spool at a time by the feeder.
const FEED_BATCH: usize = 256;

/// `RetryPolicy` is how long to wait between sessions: `initial`, doubled
/// after each session that got no answer, up to `max`, each wait drawn
/// between half and all of it (jitter, so that reporters cut off together
/// do not come back together).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// `wait` is the wait after `failures` sessions in a row got no answer.
    pub fn wait(&self, failures: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1u32 << failures.min(20))
            .min(self.max);
        full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// `SubmitError` is why submission stopped.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The spool could not be written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The server address is not one.
    #[error("server address {0}: {1}")]
    Address(String, String),
    /// The server answered more than it was sent: not a Custody Ledger.
    #[error("the server sent an answer for an event it was not sent")]
    Protocol,
}

/// Why a session ended, when it did not end with everything answered.
enum SessionEnd {
    /// Everything sent was answered and the feeder had nothing more.
    Done,
    /// The stream broke or was ended, or the server said to come back.
    Retry(String),
}

/// `Submitter` owns a [`Spool`] and sends it to one server.
pub struct Submitter {
    pub(crate) spool: Arc<Mutex<Spool>>,
    spooled: Arc<Notify>,
    pub(crate) channel: Channel,
    pub(crate) token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    policy: RetryPolicy,
    /// The party whose events the spool holds, once one was pushed.
    party: Mutex<Option<String>>,
}

impl Submitter {
    /// `new` sends `spool` to the server at `endpoint` (connected lazily,
    /// and again after each failure).
    pub fn new(spool: Spool, endpoint: Endpoint) -> Self {
        Self {
            spool: Arc::new(Mutex::new(spool)),
            spooled: Arc::new(Notify::new()),
            channel: endpoint.connect_lazy(),
            token: None,
            policy: RetryPolicy::default(),
            party: Mutex::new(None),
        }
    }

    /// `connect_to` is [`Submitter::new`] for a URL such as
    /// `http://127.0.0.1:7100`.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Address`] if `url` is not a server address.
    pub fn connect_to(spool: Spool, url: &str) -> Result<Self, SubmitError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| SubmitError::Address(url.to_owned(), e.to_string()))?
            .connect_timeout(Duration::from_secs(5));
        Ok(Self::new(spool, endpoint))
    }

    /// `with_token` sends `token` as the bearer token of each stream.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Address`] if the token is not printable ASCII.
    pub fn with_token(mut self, token: &str) -> Result<Self, SubmitError> {
        let v = format!("Bearer {token}")
            .parse()
            .map_err(|_| SubmitError::Address("token".into(), "not printable ASCII".into()))?;
        self.token = Some(v);
        Ok(self)
    }

    /// `with_retry` sets the back-off between sessions.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// `with_party` names the party whose events the spool holds, for
    /// [`Submitter::collect_receipts`] before any event is pushed.
    pub fn with_party(self, party: impl Into<String>) -> Self {
        *lock(&self.party) = Some(party.into());
        self
    }

    /// `party` is the party whose events the spool holds ("" if unknown).
    pub(crate) fn party(&self) -> String {
        lock(&self.party).clone().unwrap_or_default()
    }

    /// `spool` is the spool, shared: lock it briefly.
    pub fn spool(&self) -> Arc<Mutex<Spool>> {
        self.spool.clone()
    }

    /// `push` spools events (one fsync) for the sender to send, and
    /// returns their sequence numbers ([`Spool::push`]).
    ///
    /// # Errors
    ///
    /// [`SpoolError`] if the spool cannot be written; nothing is spooled.
    pub fn push(
        &self,
        reporter: &Reporter,
        items: impl IntoIterator<Item = (i64, v1::event::Body)>,
    ) -> Result<Vec<u64>, SpoolError> {
        let seqs = lock(&self.spool).push(reporter, items)?;
        lock(&self.party).get_or_insert_with(|| reporter.party().to_owned());
        self.spooled.notify_one();
        Ok(seqs)
    }

    /// `drain` sends until nothing is pending, however many sessions it
    /// takes.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] if the spool cannot be written.
    pub async fn drain(&self) -> Result<(), SubmitError> {
        let (_tx, stop) = watch::channel(false);
        self.sessions(false, stop).await
    }

    /// `run` sends each event as it is spooled until `stop` turns true,
    /// then ends the stream when what was sent is answered.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] if the spool cannot be written.
    pub async fn run(&self, stop: watch::Receiver<bool>) -> Result<(), SubmitError> {
        self.sessions(true, stop).await
    }

    async fn sessions(&self, follow: bool, stop: watch::Receiver<bool>) -> Result<(), SubmitError> {
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let empty = lock(&self.spool).first_pending().is_none();
            if empty && !follow {
                return Ok(());
            }
            let before = lock(&self.spool).status().answered;
            let end = self.session(follow, stop.clone()).await?;
            let progressed = lock(&self.spool).status().answered != before;
            match end {
                SessionEnd::Done => failures = 0,
                SessionEnd::Retry(why) => {
                    failures = if progressed { 0 } else { failures + 1 };
                    let wait = self.policy.wait(failures);
                    tracing::info!(%why, wait_ms = wait.as_millis() as u64, "custody-client: will send again");
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            }
        }
    }

    async fn session(
        &self,
        follow: bool,
        mut stop: watch::Receiver<bool>,
    ) -> Result<SessionEnd, SubmitError> {
        let start_after = lock(&self.spool)
            .first_pending()
            .map_or(u64::MAX, |s| s.saturating_sub(1));
        let inflight: Arc<Mutex<VecDeque<u64>>> = Arc::default();
        let (tx, rx) = tokio::sync::mpsc::channel::<v1::AppendRequest>(FEED_BATCH);
        // The feeder: pending events in order, then (following) new ones.
        let feeder = {
            let spool = self.spool.clone();
            let spooled = self.spooled.clone();
            let inflight = inflight.clone();
            let mut stop = stop.clone();
            async move {
                let mut after = start_after;
                if after == u64::MAX {
                    after = lock(&spool).next_seq().saturating_sub(1);
                }
                loop {
                    let batch = lock(&spool).pending_after(after, FEED_BATCH);
                    if batch.is_empty() {
                        if !follow || *stop.borrow() {
                            return;
                        }
                        tokio::select! {
                            _ = spooled.notified() => {}
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                        continue;
                    }
                    for s in batch {
                        after = s.seq;
                        lock(&inflight).push_back(s.seq);
                        let req = v1::AppendRequest {
                            event: Some(s.event),
                            wait_for_checkpoint: false,
                        };
                        if tx.send(req).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let feeder = tokio::spawn(feeder);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        if let Some(t) = &self.token {
            request.metadata_mut().insert("authorization", t.clone());
        }
        let mut client = CustodyLogClient::new(self.channel.clone());
        let end = match client.append_stream(request).await {
            Err(s) => Ok(SessionEnd::Retry(format!(
                "open the stream: {}: {}",
                s.code(),
                s.message()
            ))),
            Ok(r) => self.read(r.into_inner(), &inflight, &mut stop).await,
        };
        // On every way out, errors included: a feeder left running would
        // go on sending on a stream nobody reads.
        feeder.abort();
        end
    }

    /// `read` takes the answers of one session and records them.
    async fn read(
        &self,
        mut answers: tonic::Streaming<v1::AppendResponse>,
        inflight: &Mutex<VecDeque<u64>>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, SubmitError> {
        let mut acks = Vec::with_capacity(RECORD_BATCH);
        // One batch of answers is being recorded (fsync'd) while the next
        // is read; batches are recorded in order.
        let mut recording: Option<tokio::task::JoinHandle<Result<(), SpoolError>>> = None;
        let end = loop {
            let next = tokio::select! {
                m = answers.next() => m,
                // Stopping: what was sent is still answered (the feeder
                // has ended the stream), unless the server is gone.
                _ = stop.wait_for(|s| *s), if !*stop.borrow() => continue,
            };
            let r = match next {
                None => break SessionEnd::Done,
                Some(Err(s)) => {
                    break SessionEnd::Retry(format!("stream: {}: {}", s.code(), s.message()))
                }
                Some(Ok(r)) => r,
            };
            let Some(seq) = lock(inflight).pop_front() else {
                return Err(SubmitError::Protocol);
            };
            let code = tonic::Code::from(r.error_code);
            let outcome = match code {
                tonic::Code::Ok if r.duplicate => Outcome::Duplicate,
                tonic::Code::Ok => Outcome::Appended,
                c if !is_final(c) => {
                    break SessionEnd::Retry(format!("event {seq}: {code:?}: {}", r.error_message));
                }
                _ => {
                    tracing::warn!(seq, ?code, message = %r.error_message, "custody-client: the log refused an event; it will not be sent again");
                    Outcome::Refused {
                        code: r.error_code,
                        message: r.error_message,
                    }
                }
            };
            acks.push(Ack {
                seq,
                index: r.index,
                outcome,
            });
            if acks.len() >= RECORD_BATCH || lock(inflight).is_empty() {
                if let Some(previous) = recording.take() {
                    finish(previous).await?;
                }
                recording = Some(self.record(std::mem::take(&mut acks)));
            }
        };
        if let Some(previous) = recording.take() {
            finish(previous).await?;
        }
        finish(self.record(acks)).await?;
        Ok(match end {
            SessionEnd::Done if !lock(inflight).is_empty() => {
                SessionEnd::Retry("the server ended the stream with events unanswered".into())
            }
            e => e,
        })
    }

    /// `record` starts recording `acks` in the spool, off the async
    /// threads (it fsyncs).
    fn record(&self, acks: Vec<Ack>) -> tokio::task::JoinHandle<Result<(), SpoolError>> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || {
            if acks.is_empty() {
                return Ok(());
            }
            lock(&spool).record(&acks)
        })
    }
}

/// `is_final` says whether a refusal is about the event itself, so that
/// sending it again would be refused again: it is then recorded as
/// refused. Every other code (come back later, a revoked or expired
/// token, a fault of the server, a code this client does not know) ends
/// the session, and the event is sent again after a back-off: an event
/// is never given up for a reason that can pass.
pub fn is_final(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::FailedPrecondition
            | tonic::Code::AlreadyExists
            | tonic::Code::OutOfRange
    )
}

/// `finish` waits for a recording started by [`Submitter::record`].
async fn finish(h: tokio::task::JoinHandle<Result<(), SpoolError>>) -> Result<(), SubmitError> {
    h.await.map_err(|e| {
        SubmitError::Spool(SpoolError::Io {
            path: "spool".into(),
            op: "record answers",
            source: std::io::Error::other(e.to_string()),
        })
    })??;
    Ok(())
}

/// `lock` takes a mutex even if a thread panicked holding it: the spool's
/// state in memory is only changed after its files are, so it is whole.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
