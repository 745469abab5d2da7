//! Receipts: the optional mode in which a reporter waits for the log to
//! sign a checkpoint that covers each of its logged events, and keeps the
//! event's inclusion proof, so that a device can hand its own receipts to
//! an auditor. A receipt is a proof file (`custody_evidence::ProofFile`),
//! which `custody verify RECEIPT --log-key VKEY` checks offline.
//!
//! A receipt is kept only once it checks: the checkpoint is signed by the
//! pinned log key, the proof puts the entry in its tree, and the entry is
//! this party's event of that sequence number. Receipts are files in the
//! spool's `receipts/` directory, one per event, named by its sequence
//! number, written whole (a temporary file, fsync'd, renamed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_evidence::ProofFile;
use custody_log::LogVerifier;
use custody_proto::v1::{self, custody_log_client::CustodyLogClient};
use prost::Message as _;
use tokio::sync::watch;

use crate::spool::{Ack, Outcome, Spool, SpoolError};
use crate::submit::{lock, Submitter};

/// `ReceiptError` is why a receipt could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The spool or a receipt file could not be read or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// What the log served does not check: it is not a receipt of the
    /// event. This is evidence against the log; keep the spool.
    #[error("the log's proof of event {seq} (index {index}) does not check: {why}")]
    Bad {
        /// The event's sequence number.
        seq: u64,
        /// Its index, as the log acknowledged it.
        index: u64,
        /// What failed.
        why: String,
    },
}

/// `Collected` is what one pass kept and what still waits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Receipts kept by this pass.
    pub kept: usize,
    /// Logged events whose index no signed checkpoint covers yet, or
    /// whose proof could not be fetched this time.
    pub waiting: usize,
    /// Receipts already kept before it.
    pub had: usize,
}

/// `receipt_path` is where the receipt of event `seq` is kept.
pub fn receipt_path(spool_dir: &Path, seq: u64) -> PathBuf {
    spool_dir.join("receipts").join(format!("{seq:020}.json"))
}

impl Submitter {
    /// `collect_receipts` keeps, in one pass, a receipt of each logged
    /// event of the spool that has none yet and that the log's latest
    /// checkpoint covers.
    ///
    /// # Errors
    ///
    /// [`ReceiptError::Bad`] if the log serves a proof that does not
    /// check (nothing is kept for it); [`ReceiptError::Spool`] if a file
    /// cannot be written.
    pub async fn collect_receipts(
        &self,
        verifier: &LogVerifier,
    ) -> Result<Collected, ReceiptError> {
        let dir = lock(&self.spool).dir().to_path_buf();
        let acks = {
            let d = dir.clone();
            tokio::task::spawn_blocking(move || Spool::read_acks(&d))
                .await
                .map_err(|e| io(&dir, "read acks", std::io::Error::other(e.to_string())))??
        };
        let rdir = dir.join("receipts");
        std::fs::create_dir_all(&rdir).map_err(|e| io(&rdir, "create", e))?;
        let mut out = Collected::default();
        let mut client = CustodyLogClient::new(self.channel.clone());
        let mut wrote = false;
        for a in acks.iter().filter(|a| is_logged(a)) {
            let path = receipt_path(&dir, a.seq);
            if path.exists() {
                out.had += 1;
                continue;
            }
            let mut req = tonic::Request::new(v1::GetInclusionProofRequest {
                index: a.index,
                tree_size: 0,
            });
            if let Some(t) = &self.token {
                req.metadata_mut().insert("authorization", t.clone());
            }
            let r = match client.get_inclusion_proof(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    // Not yet in a signed checkpoint (OUT_OF_RANGE), or
                    // the log is out of reach: the rest waits too.
                    tracing::debug!(seq = a.seq, code = ?s.code(), "custody-client: no receipt yet");
                    out.waiting += acks
                        .iter()
                        .filter(|b| is_logged(b) && b.seq >= a.seq)
                        .count();
                    break;
                }
            };
            let file = check(verifier, &self.party(), a, r)?;
            let bytes = serde_json::to_vec_pretty(&file).map_err(|e| ReceiptError::Bad {
                seq: a.seq,
                index: a.index,
                why: e.to_string(),
            })?;
            write_whole(&path, &bytes)?;
            wrote = true;
            out.kept += 1;
        }
        if wrote {
            std::fs::File::open(&rdir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(&rdir, "sync", e))?;
        }
        Ok(out)
    }

    /// `keep_receipts` collects receipts every `every` until `stop` turns
    /// true and nothing waits.
    ///
    /// # Errors
    ///
    /// As [`Submitter::collect_receipts`].
    pub async fn keep_receipts(
        &self,
        verifier: &LogVerifier,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ReceiptError> {
        loop {
            let c = self.collect_receipts(verifier).await?;
            let pending = lock(&self.spool).status().depth;
            if *stop.borrow() && c.waiting == 0 && pending == 0 {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s), if !*stop.borrow() => {}
            }
        }
    }
}

fn is_logged(a: &Ack) -> bool {
    matches!(a.outcome, Outcome::Appended | Outcome::Duplicate)
}

/// `check` turns what the log served into a receipt, if it is one: the
/// proof verifies against a checkpoint the pinned key signed, and the
/// entry is `party`'s event numbered `a.seq`.
fn check(
    verifier: &LogVerifier,
    party: &str,
    a: &Ack,
    r: v1::GetInclusionProofResponse,
) -> Result<ProofFile, ReceiptError> {
    let bad = |why: String| ReceiptError::Bad {
        seq: a.seq,
        index: a.index,
        why,
    };
    if r.index != a.index {
        return Err(bad(format!("it proves index {}", r.index)));
    }
    let file = ProofFile::inclusion(r.checkpoint, a.index, &r.entry, &r.proof)
        .map_err(|e| bad(e.to_string()))?;
    file.verify(verifier).map_err(|e| bad(e.to_string()))?;
    let event = match custody_proto::decode_entry(&r.entry) {
        Ok(custody_proto::Entry::Event { envelope, .. }) => {
            v1::Event::decode(envelope.body.as_slice())
                .map_err(|e| bad(format!("the entry's event: {e}")))?
        }
        Ok(custody_proto::Entry::Genesis(_)) => return Err(bad("the entry is the genesis".into())),
        Err(e) => return Err(bad(format!("the entry: {e}"))),
    };
    if event.reporter != party || event.reporter_seq != a.seq {
        return Err(bad(format!(
            "the entry is event {} of {:?}",
            event.reporter_seq, event.reporter
        )));
    }
    Ok(file)
}

fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    use std::io::Write as _;
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, "create", e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp, "write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, "rename", e))
}

fn io(path: &Path, op: &'static str, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}
