//! Signature checks off the replay's thread: the replay decides which key
//! each signature must verify under (the registry as it stood at the
//! entry's index), and a verifier thread checks them in batches on all
//! cores (`custody_domain::verify_signatures_by_key`).

use std::ops::Range;
use std::sync::mpsc;
use std::thread::JoinHandle;

use custody_domain::{verify_signatures_by_key, KeyId, SignatureCheck};
use ed25519_dalek::{Signature, VerifyingKey};

/// Signatures handed to the verifier at once.
pub const BATCH: usize = 4096;

/// `SigBatch` is a batch of signatures to check. The signed bytes of all
/// its entries share one buffer, so a batch is a handful of allocations
/// however many entries it holds.
#[derive(Default)]
pub struct SigBatch {
    /// The signed bytes (PAE) of every entry in the batch, end to end.
    messages: Vec<u8>,
    /// Each signature: its entry's bytes in `messages`, the entry's index,
    /// and the key.
    checks: Vec<(Range<usize>, u64, KeyId, Signature, VerifyingKey)>,
}

impl SigBatch {
    /// `push` adds entry `index`, whose signatures `sigs` cover
    /// PAE(`payload_type`, `body`).
    pub fn push(
        &mut self,
        index: u64,
        payload_type: &str,
        body: &[u8],
        sigs: impl IntoIterator<Item = (KeyId, Signature, VerifyingKey)>,
    ) {
        let start = self.messages.len();
        pae_into(&mut self.messages, payload_type, body);
        let m = start..self.messages.len();
        for (id, sig, key) in sigs {
            self.checks.push((m.clone(), index, id, sig, key));
        }
    }

    /// `len` is the number of signatures in the batch.
    pub fn len(&self) -> usize {
        self.checks.len()
    }
}

/// `pae_into` appends `custody_domain::pae(payload_type, body)` to `out`:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
/// decimal (DSSE v1).
fn pae_into(out: &mut Vec<u8>, payload_type: &str, body: &[u8]) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    );
    out.extend_from_slice(body);
}

/// `Verdicts` is what the verifier found.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// Signatures checked.
    pub checked: u64,
    /// Signatures that do not verify: entry index and key id, in order.
    pub bad: Vec<(u64, KeyId)>,
}

/// `Verifier` is the verifier thread.
pub struct Verifier {
    tx: Option<mpsc::SyncSender<SigBatch>>,
    handle: Option<JoinHandle<Verdicts>>,
}

impl Verifier {
    /// `start` starts the verifier thread.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::sync_channel::<SigBatch>(4);
        let handle = std::thread::spawn(move || {
            let mut v = Verdicts::default();
            for batch in rx {
                let checks: Vec<SignatureCheck> = batch
                    .checks
                    .iter()
                    .map(|(m, _, _, signature, key)| SignatureCheck {
                        message: &batch.messages[m.clone()],
                        signature: *signature,
                        key: *key,
                    })
                    .collect();
                let ok = verify_signatures_by_key(&checks);
                v.checked += ok.len() as u64;
                for (good, (_, index, id, _, _)) in ok.iter().zip(&batch.checks) {
                    if !good {
                        v.bad.push((*index, *id));
                    }
                }
            }
            v
        });
        Self {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// `idle` is a verifier without a thread, standing in for one that
    /// finished.
    pub fn idle() -> Self {
        Self {
            tx: None,
            handle: None,
        }
    }

    /// `submit` hands a batch to the verifier, waiting while it is four
    /// batches behind.
    pub fn submit(&self, batch: SigBatch) {
        if batch.len() == 0 {
            return;
        }
        if let Some(tx) = &self.tx {
            // The thread only stops when the sender is dropped.
            let _ = tx.send(batch);
        }
    }

    /// `finish` waits for every batch submitted and returns the verdicts.
    ///
    /// # Errors
    ///
    /// If the verifier thread panicked.
    pub fn finish(mut self) -> anyhow::Result<Verdicts> {
        self.tx.take();
        match self.handle.take().map(|h| h.join()) {
            None => Ok(Verdicts::default()),
            Some(Ok(v)) => Ok(v),
            Some(Err(_)) => anyhow::bail!("the signature verifier thread failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_into_is_the_domains_pae() {
        let mut out = b"x".to_vec();
        pae_into(&mut out, custody_domain::PAYLOAD_TYPE, b"body bytes");
        assert_eq!(
            out[1..],
            custody_domain::pae(custody_domain::PAYLOAD_TYPE, b"body bytes")[..]
        );
    }
}
