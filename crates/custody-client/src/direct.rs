//! Spool-less submission, for callers that hold their events in memory
//! and need each answer now: set-up events, the demo seeder, benchmarks.
//! Nothing here survives a crash; a reporter of real custody uses a
//! [`Spool`](crate::Spool) and a [`Submitter`](crate::Submitter).

use custody_proto::v1::{self, custody_log_client::CustodyLogClient};
use tonic::codegen::{Body, Bytes, StdError};

/// `DirectError` is why [`append_indexes`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The stream could not be opened, or broke.
    #[error("append stream: {}: {}", .0.code(), .0.message())]
    Stream(tonic::Status),
    /// The log refused the event at `position` (0-based) of those sent.
    #[error("the log refused event {position} of the batch: {}: {message}", tonic::Code::from(*.code))]
    Refused {
        /// Its position in the batch.
        position: usize,
        /// The gRPC status code.
        code: i32,
        /// The log's message.
        message: String,
    },
    /// The stream ended before every event was answered.
    #[error("the log answered {answered} of {sent} events before the stream ended")]
    Short {
        /// Answers received.
        answered: usize,
        /// Events sent.
        sent: usize,
    },
}

/// `append_all` sends `events` over one `AppendStream` and returns the
/// log's answer to each, in order (a refusal is an answer with its
/// `error_code` set).
///
/// # Errors
///
/// [`DirectError::Stream`] if the stream cannot be opened or breaks;
/// [`DirectError::Short`] if it ends before every event is answered.
pub async fn append_all<T>(
    client: &mut CustodyLogClient<T>,
    events: Vec<v1::SignedEvent>,
) -> Result<Vec<v1::AppendResponse>, DirectError>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let sent = events.len();
    let reqs: Vec<_> = events
        .into_iter()
        .map(|e| v1::AppendRequest {
            event: Some(e),
            wait_for_checkpoint: false,
        })
        .collect();
    let mut answers = client
        .append_stream(tokio_stream::iter(reqs))
        .await
        .map_err(DirectError::Stream)?
        .into_inner();
    let mut out = Vec::with_capacity(sent);
    while let Some(r) = answers.message().await.map_err(DirectError::Stream)? {
        out.push(r);
    }
    if out.len() != sent {
        return Err(DirectError::Short {
            answered: out.len(),
            sent,
        });
    }
    Ok(out)
}

/// `append_indexes` is [`append_all`] for events none of which may be
/// refused: it returns their log indexes (a duplicate's is the original).
///
/// # Errors
///
/// As [`append_all`], and [`DirectError::Refused`] for the first event
/// the log refused.
pub async fn append_indexes<T>(
    client: &mut CustodyLogClient<T>,
    events: Vec<v1::SignedEvent>,
) -> Result<Vec<u64>, DirectError>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    append_all(client, events)
        .await?
        .into_iter()
        .enumerate()
        .map(|(position, r)| {
            if r.error_code == 0 {
                Ok(r.index)
            } else {
                Err(DirectError::Refused {
                    position,
                    code: r.error_code,
                    message: r.error_message,
                })
            }
        })
        .collect()
}

/// Members sent per `PutManifest` message.
const MANIFEST_CHUNK: usize = 5000;

/// `put_manifest` uploads the members of a bulk event's manifest (in any
/// order; they are sent sorted, duplicates dropped) and returns the
/// manifest the log stored: its root and count, which the bulk event
/// then names. Upload it before spooling the event: the log refuses a
/// bulk event whose manifest it does not hold, and forgets manifests no
/// event names within its upload grace period.
///
/// # Errors
///
/// [`DirectError::Stream`] if the log refuses the upload (a quota, the
/// reporter role) or cannot be reached.
pub async fn put_manifest<T>(
    client: &mut CustodyLogClient<T>,
    mut members: Vec<[u8; 32]>,
) -> Result<v1::Manifest, DirectError>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    members.sort_unstable();
    members.dedup();
    let chunks: Vec<v1::PutManifestRequest> = members
        .chunks(MANIFEST_CHUNK)
        .map(|c| v1::PutManifestRequest {
            members: c.iter().map(|d| d.to_vec()).collect(),
            expected_root: Vec::new(),
        })
        .collect();
    client
        .put_manifest(tokio_stream::iter(chunks))
        .await
        .map_err(DirectError::Stream)?
        .into_inner()
        .manifest
        .ok_or_else(|| {
            DirectError::Stream(tonic::Status::internal(
                "the log answered an upload with no manifest",
            ))
        })
}
