//! Witnesses, from both sides: `custody witness keygen` and `custody
//! witness serve` run a C2SP `tlog-witness` witness ([`custody_witness`]),
//! and `--witness-key` with `--witness-threshold` make `verify`, `inspect
//! --verify` and `monitor` accept a checkpoint only when enough of the
//! named witnesses cosigned it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use custody_log::{verify_witnessed, CosignatureSigner, CosignatureVerifier, LogVerifier};

/// `PolicyArgs` are the witness flags of the commands that check a
/// checkpoint.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// A witness's verifier key, or a file holding it (repeatable). A
    /// checkpoint is then accepted only with enough of their
    /// cosignatures.
    #[arg(long = "witness-key", value_name = "VKEY|FILE")]
    pub keys: Vec<String>,
    /// How many of the --witness-key witnesses must have cosigned
    /// (default: all of them).
    #[arg(long)]
    pub witness_threshold: Option<usize>,
}

/// `Policy` is k of n witnesses.
#[derive(Debug, Clone)]
pub struct Policy {
    witnesses: Vec<CosignatureVerifier>,
    threshold: usize,
}

impl PolicyArgs {
    /// `policy` is the policy the flags give, or `None` without
    /// `--witness-key`.
    ///
    /// # Errors
    ///
    /// For a key that does not parse, or a threshold out of range.
    pub fn policy(&self) -> anyhow::Result<Option<Policy>> {
        if self.keys.is_empty() {
            anyhow::ensure!(
                self.witness_threshold.is_none(),
                "--witness-threshold needs at least one --witness-key"
            );
            return Ok(None);
        }
        let witnesses = self
            .keys
            .iter()
            .map(|k| {
                let text = if Path::new(k).is_file() {
                    std::fs::read_to_string(k).with_context(|| format!("--witness-key {k}"))?
                } else {
                    k.clone()
                };
                CosignatureVerifier::new(text.trim())
                    .map_err(|e| anyhow!("--witness-key {k}: not a witness verifier key: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let threshold = self.witness_threshold.unwrap_or(witnesses.len());
        anyhow::ensure!(
            (1..=witnesses.len()).contains(&threshold),
            "--witness-threshold {threshold}: must be between 1 and the {} witness keys given",
            witnesses.len()
        );
        Ok(Some(Policy {
            witnesses,
            threshold,
        }))
    }
}

impl Policy {
    /// `check` verifies that `note`, signed by the log, is cosigned by at
    /// least the threshold of the witnesses, and says by whom.
    ///
    /// # Errors
    ///
    /// When it is not, naming who cosigned and who did not.
    pub fn check(&self, note: &[u8], log: &LogVerifier) -> anyhow::Result<String> {
        let w = verify_witnessed(note, log, &self.witnesses, self.threshold)
            .map_err(|e| anyhow!("{e}"))?;
        let names: Vec<&str> = w.witnesses.iter().map(|c| c.name.as_str()).collect();
        Ok(format!(
            "cosigned by {} of {} witnesses (need {}): {}",
            names.len(),
            self.witnesses.len(),
            self.threshold,
            names.join(", ")
        ))
    }
}

/// `Command` is `custody witness ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a witness key: PREFIX.key (mode 0600) and PREFIX.vkey, the
    /// verifier key logs and clients are given.
    Keygen {
        /// The witness's name, e.g. witness.example.org.
        #[arg(long)]
        name: String,
        /// Where to write the key files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve a C2SP tlog-witness: POST /add-checkpoint cosigns a log's
    /// checkpoint if it extends the last one this witness cosigned.
    Serve {
        /// The witness key (from `custody witness keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Where the last cosigned checkpoint of each log is kept.
        #[arg(long)]
        state: PathBuf,
        /// A log this witness cosigns for: a file holding its verifier
        /// key (repeatable).
        #[arg(long = "log-key", required = true)]
        log_keys: Vec<PathBuf>,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: SocketAddr,
    },
}

/// `run` runs `custody witness ...`.
///
/// # Errors
///
/// On bad keys or files, or when the listener fails.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Keygen { name, out } => {
            let (signer, secret) = CosignatureSigner::generate(&name, &mut rand_core::OsRng)
                .map_err(|e| anyhow!("--name {name:?}: {e}"))?;
            let key = out.with_extension("key");
            crate::keys::write_secret_file(&key, &secret)?;
            let vkey = out.with_extension("vkey");
            std::fs::write(&vkey, format!("{}\n", signer.verifier_key()))
                .with_context(|| format!("write {}", vkey.display()))?;
            println!(
                "wrote {} and {} ({})",
                key.display(),
                vkey.display(),
                signer.verifier_key()
            );
            Ok(())
        }
        Command::Serve {
            key,
            state,
            log_keys,
            listen,
        } => {
            let secret = std::fs::read_to_string(&key)
                .with_context(|| format!("read --key {}", key.display()))?;
            let signer = CosignatureSigner::from_key_string(secret.trim())
                .map_err(|e| anyhow!("--key {}: {e}", key.display()))?;
            let logs = log_keys
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("read --log-key {}", p.display()))?;
                    LogVerifier::new(text.trim())
                        .map_err(|e| anyhow!("--log-key {}: {e}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let state = custody_witness::WitnessState::open(&state, logs)
                .map_err(|e| anyhow!("--state: {e}"))?;
            let witness = Arc::new(custody_witness::Witness::new(signer, state));
            crate::runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listen on {listen}"))?;
                eprintln!(
                    "custody witness: {} serving POST http://{}/add-checkpoint",
                    witness.verifier_key(),
                    listener.local_addr()?
                );
                // Witnesses face the public: the same connection caps and
                // header and idle timeouts as the log's own listeners, so
                // idle connections cannot lock the log out of its witness.
                let listener = custody_net::conn::GatedListener::new(
                    listener,
                    custody_net::conn::Limits::default(),
                    "witness",
                );
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = stop_tx.send(true);
                });
                custody_net::conn::serve_http(
                    listener,
                    custody_witness::router(witness),
                    None,
                    stop_rx,
                    std::time::Duration::from_secs(5),
                )
                .await
                .context("serve")
            })
        }
    }
}
