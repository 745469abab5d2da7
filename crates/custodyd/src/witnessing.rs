//! Witnessed checkpoints (DESIGN §4; C2SP `tlog-witness`): before a
//! checkpoint is stored and shown, the publisher asks each configured
//! witness to cosign it, proving with a consistency proof that it extends
//! the last checkpoint that witness cosigned. A checkpoint is published
//! only when at least `--witness-threshold` of them did, with their
//! cosignatures beside the log's own signature; otherwise the publisher
//! tries again at its next tick, and the log's checkpoint does not move.
//! So every checkpoint a client is shown has been seen, and found
//! consistent with all earlier ones, by enough independent witnesses: a
//! log cannot show two clients two histories.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use custody_log::{add_cosignatures, prove_consistency, CosignatureVerifier};
use custody_witness::ClientError;

use crate::state::LogState;

/// How long, once enough witnesses have cosigned, the others may still
/// answer before the checkpoint is published without them.
const STRAGGLER_GRACE: Duration = Duration::from_millis(250);

/// `WitnessArgs` are the witnessing flags of `custodyd serve`.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct WitnessArgs {
    /// A witness to ask for cosignatures: its submission URL prefix and
    /// its verifier key, separated by a space, as in
    /// `--witness "https://w1.example/ w1.example+1a2b3c4d+BL..."`
    /// (repeatable).
    #[arg(long = "witness", value_name = "URL VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the witnesses must cosign a checkpoint before it is
    /// published (default: all of them).
    #[arg(long)]
    pub witness_threshold: Option<usize>,
    /// How long to wait for each witness, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub witness_timeout_secs: u64,
}

/// `Member` is one configured witness.
struct Member {
    url: String,
    verifier: CosignatureVerifier,
    /// The size of the last checkpoint it cosigned for us, once known.
    size: Mutex<Option<u64>>,
}

/// `Witnesses` asks the configured witnesses for cosignatures.
pub struct Witnesses {
    members: Vec<Member>,
    threshold: usize,
    http: reqwest::Client,
}

impl Witnesses {
    /// `from_args` is the witnesses `args` configure, or `None` for none.
    ///
    /// # Errors
    ///
    /// For a malformed `--witness`, a repeated witness, or a threshold of
    /// 0 or more than the witnesses given.
    pub fn from_args(args: &WitnessArgs) -> anyhow::Result<Option<Self>> {
        if args.witnesses.is_empty() {
            if args.witness_threshold.is_some() {
                bail!("--witness-threshold needs at least one --witness");
            }
            return Ok(None);
        }
        let mut members: Vec<Member> = Vec::new();
        for w in &args.witnesses {
            let (url, vkey) = w
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| anyhow!("--witness {w:?}: want \"URL VKEY\""))?;
            let url = url.trim_end_matches('/').to_owned();
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "--witness {w:?}: the URL must start with http:// or https://"
            );
            let verifier = CosignatureVerifier::new(vkey.trim())
                .map_err(|e| anyhow!("--witness {w:?}: not a witness verifier key: {e}"))?;
            anyhow::ensure!(
                !members.iter().any(|m| m.verifier.name() == verifier.name()),
                "--witness: {} is given twice",
                verifier.name()
            );
            members.push(Member {
                url,
                verifier,
                size: Mutex::new(None),
            });
        }
        let threshold = args.witness_threshold.unwrap_or(members.len());
        anyhow::ensure!(
            (1..=members.len()).contains(&threshold),
            "--witness-threshold {threshold}: must be between 1 and the {} witnesses given",
            members.len()
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.witness_timeout_secs))
            .build()
            .context("witness HTTP client")?;
        Ok(Some(Self {
            members,
            threshold,
            http,
        }))
    }

    /// `names` is the configured witnesses' names.
    pub fn names(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.verifier.name()).collect()
    }

    /// `threshold` is how many must cosign.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// `cosign` asks every witness, side by side, to cosign `note` (the
    /// log's checkpoint of `size`) and returns it with the cosignatures
    /// of those that did.
    ///
    /// # Errors
    ///
    /// When fewer than the threshold cosigned; the error says why each
    /// that did not.
    pub async fn cosign(
        &self,
        state: &Arc<LogState>,
        size: u64,
        note: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        use futures::StreamExt as _;
        let mut asks: futures::stream::FuturesUnordered<_> = self
            .members
            .iter()
            .map(|m| async move { (m, self.ask(m, state, size, note).await) })
            .collect();
        let mut cosigned = note.to_vec();
        let mut count = 0;
        let mut failures = Vec::new();
        // Once the threshold is met, the others get a moment more, not
        // their whole timeout: a hanging witness must not hold up every
        // checkpoint.
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let next = match &mut grace {
                None => asks.next().await,
                Some(g) => tokio::select! {
                    n = asks.next() => n,
                    _ = g.as_mut() => break,
                },
            };
            let Some((m, answer)) = next else { break };
            // One line per witness, checked to be its own cosignature of
            // this note; merged one at a time, so that one that cannot be
            // added costs only itself.
            match answer.and_then(|line| {
                add_cosignatures(&cosigned, &line).map_err(|e| anyhow!("its line: {e}"))
            }) {
                Ok(n) => {
                    cosigned = n;
                    count += 1;
                }
                Err(e) => failures.push(format!("{}: {e:#}", m.verifier.name())),
            }
            if count >= self.threshold && grace.is_none() {
                grace = Some(Box::pin(tokio::time::sleep(STRAGGLER_GRACE)));
            }
        }
        if count < self.threshold {
            bail!(
                "checkpoint of size {size} cosigned by {count} of {} witnesses, need {}; {}",
                self.members.len(),
                self.threshold,
                failures.join("; ")
            );
        }
        for f in &failures {
            tracing::warn!(size, witness = %f, "a witness did not cosign");
        }
        Ok(cosigned)
    }

    /// `ask` asks one witness; on a conflict (it cosigned another size
    /// than we thought, as after a restart) once more, from its size.
    async fn ask(
        &self,
        m: &Member,
        state: &Arc<LogState>,
        size: u64,
        note: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let known = m.size.lock().map(|s| *s).unwrap_or(None);
        let mut old = known.unwrap_or(0);
        for attempt in 0..2 {
            anyhow::ensure!(
                old <= size,
                "it has cosigned a checkpoint of size {old}, larger than this log's {size}: \
                 the log was rolled back, or another log signs with this key and origin"
            );
            let proof = if old == 0 {
                Vec::new()
            } else {
                let st = state.clone();
                tokio::task::spawn_blocking(move || prove_consistency(old, size, &st.hashes()))
                    .await??
            };
            match custody_witness::add_checkpoint(&self.http, &m.url, old, &proof, note).await {
                Ok(lines) => {
                    // Exactly one line is kept: this witness's own
                    // cosignature of this very checkpoint. Anything else
                    // it sent (another name's line, the log's, junk) is
                    // dropped.
                    let line = m.verifier.own_line(note, &lines).ok_or_else(|| {
                        anyhow!("answered with no valid cosignature of this checkpoint")
                    })?;
                    if let Ok(mut s) = m.size.lock() {
                        *s = Some(size);
                    }
                    return Ok(line);
                }
                Err(ClientError::Conflict(theirs)) if attempt == 0 => {
                    tracing::info!(
                        witness = m.verifier.name(),
                        theirs,
                        "witness holds another size; asking from it"
                    );
                    old = theirs;
                }
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
        Err(anyhow!("its size changed twice while we asked"))
    }
}
