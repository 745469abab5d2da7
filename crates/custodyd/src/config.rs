//! `Config`: what a server is told to do. `custodyd serve` parses it
//! from flags; the library takes it whole ([`crate::server::Server::open`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `Config` is everything `custodyd serve` is told: where its data and
/// listeners are, and every limit. Flags today; each field is one.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Config {
    /// A TOML file of settings, one key per flag (`grpc_addr = "..."`);
    /// environment variables (`CUSTODYD_GRPC_ADDR`) override it, and
    /// flags override both. See docs/configuration.md.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory made by `custodyd init`.
    #[arg(long)]
    pub data: PathBuf,
    /// The log's private signing key, if not `DATA/log.key`: a file
    /// from a secret store (a Kubernetes Secret's mount, systemd's
    /// credentials), made by `custodyd keygen` or `custodyd init
    /// --signing-key`. It must be the key of `DATA/log.vkey`.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7100")]
    pub grpc_addr: SocketAddr,
    /// HTTP (tile API) listen address.
    #[arg(long, default_value = "127.0.0.1:7180")]
    pub http_addr: SocketAddr,
    /// Checkpoint period while entries arrive, in milliseconds (≤ 1000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=1000))]
    pub checkpoint_interval_ms: u64,
    /// Submissions that may wait for the sequencer before appends are
    /// refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 65_536)]
    pub queue: usize,
    /// Bytes of submissions that may wait for the sequencer (not yet
    /// signature-checked) before appends are refused with
    /// RESOURCE_EXHAUSTED.
    /// At least 1 MiB, so the largest event always fits.
    #[arg(long, default_value_t = 64 << 20, value_parser = queue_bytes)]
    pub queue_bytes: usize,
    /// Largest batch per commit.
    #[arg(long, default_value_t = 8192)]
    pub max_batch: usize,
    /// Manifest members planned at once: a bulk event of more is admitted
    /// in slices of this many, between other reporters' batches.
    #[arg(long, default_value_t = crate::sequencer::DEFAULT_BULK_SLICE)]
    pub bulk_slice: usize,
    /// Serve the tile API (`/checkpoint`, hash and entry tiles) to
    /// callers without a token, as public transparency logs do. Without
    /// it, a server with an access list serves the checkpoint and hash
    /// tiles to witnesses and auditors, and entry tiles to auditors.
    #[arg(long)]
    pub public_tiles: bool,
    /// Connections open at once on each listener (gRPC, HTTP); more are
    /// closed as they arrive.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Connections open at once from one address on each listener.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_address: usize,
    /// A connection on which nothing is read or written for this many
    /// seconds is closed (gRPC clients that answer keepalive pings stay).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,
    /// Free space, in MiB, that appends leave on the disk holding the
    /// database; below it they are refused with RESOURCE_EXHAUSTED, and
    /// resume once space is freed. 0 keeps none.
    #[arg(long, default_value_t = 256)]
    pub min_free_mib: u64,
    /// Fault injection, for tests: seconds added to the wall clock the
    /// sequencer integrates entries at (negative: a clock behind).
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    #[serde(skip)]
    pub fault_clock_offset_secs: i64,
    /// An HTTP request's headers must arrive within this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,
    /// Log lines as plain text (`text`) or as one JSON object per line
    /// (`json`), for a log collector. `RUST_LOG` sets the level.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub witness: crate::witnessing::WitnessArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub uploads: crate::uploads::UploadArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub rates: crate::rate::RateArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub mirror: crate::mirror::MirrorArgs,
}

impl Config {
    /// `validate` checks what flags alone cannot: the TLS files load, the
    /// witnesses parse and their threshold fits, and the data directory
    /// holds a log. Each error names the setting.
    ///
    /// # Errors
    ///
    /// The first setting at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            crate::init::Paths::new(&self.data).vkey.exists(),
            "data: {} holds no log (run `custodyd init`)",
            self.data.display()
        );
        let key = self.signing_key_path();
        crate::init::read_signing_key(&key).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e:#}",
                if self.signing_key.is_some() {
                    "signing_key"
                } else {
                    "data"
                }
            )
        })?;
        crate::tls::Tls::load(&self.tls)?;
        crate::witnessing::Witnesses::from_args(&self.witness)?;
        Ok(())
    }

    /// `signing_key_path` is the file the log's signing key is read
    /// from: `signing_key`, or `DATA/log.key`.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| crate::init::Paths::new(&self.data).key)
    }

    /// `limits` are each listener's connection caps and timeouts.
    pub fn limits(&self) -> crate::conn::Limits {
        crate::conn::Limits {
            max_connections: self.max_connections.max(1),
            max_per_peer: self.max_connections_per_address.max(1),
            idle: Duration::from_secs(self.idle_timeout_secs),
            header: Duration::from_secs(self.header_timeout_secs),
        }
    }
}

/// `LogFormat` is how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line: time, level, target, message, fields.
    Json,
}

/// `queue_bytes` parses `--queue-bytes`: at least 1 MiB, so that the
/// largest entry (64 KiB) and its overhead always fit.
fn queue_bytes(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bytes"))?;
    if n < 1 << 20 {
        return Err(format!(
            "{n} bytes is too small: the queue must hold at least 1 MiB (1048576), so the largest event fits"
        ));
    }
    Ok(n)
}

/// `ENV_PREFIX` starts the environment variable of each key.
pub const ENV_PREFIX: &str = "CUSTODYD_";

/// `Key` is one setting: its name in a file (`grpc_addr`), its flag
/// (`--grpc-addr`), and whether it takes a value and may repeat.
#[derive(Debug, Clone)]
pub struct Key {
    /// The name in a file, and after [`ENV_PREFIX`] in upper case.
    pub name: String,
    /// The flag.
    pub flag: String,
    /// A value (else a switch).
    pub takes_value: bool,
    /// Given more than once (a list in a file, comma-separated in the
    /// environment).
    pub repeats: bool,
    /// Its help.
    pub help: String,
    /// Its default, if it has one.
    pub default: Option<String>,
}

/// `keys` is every setting of [`Config`] but `config` itself, in the
/// order of `custodyd serve --help`.
pub fn keys() -> Vec<Key> {
    use clap::Args as _;
    let cmd = Config::augment_args(clap::Command::new("custodyd"));
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            if long == "config" || a.is_hide_set() {
                return None;
            }
            let takes_value = a.get_num_args().is_none_or(|n| n.takes_values());
            let repeats = matches!(a.get_action(), clap::ArgAction::Append);
            let default = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>();
            Some(Key {
                name: long.replace('-', "_"),
                flag: format!("--{long}"),
                takes_value: takes_value && !matches!(a.get_action(), clap::ArgAction::SetTrue),
                repeats,
                help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                default: (!default.is_empty()).then(|| default.join(", ")),
            })
        })
        .collect()
}

/// `file_args` are the flags a TOML settings file stands for.
///
/// # Errors
///
/// When the file cannot be read or parsed, or holds a key that is not a
/// setting or a value of the wrong kind: each error names the file and
/// the key.
pub fn file_args(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("config {}: not TOML: {e}", path.display()))?;
    let keys = keys();
    let mut args = Vec::new();
    for (name, value) in &table {
        let key = keys.iter().find(|k| k.name == *name).ok_or_else(|| {
            anyhow::anyhow!(
                "config {}: {name:?} is not a setting (see docs/configuration.md, or `custodyd serve --help`)",
                path.display()
            )
        })?;
        let scalar = |v: &toml::Value| -> anyhow::Result<String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                other => Err(anyhow::anyhow!(
                    "config {}: {name}: want a string or a number, not {}",
                    path.display(),
                    other.type_str()
                )),
            }
        };
        match (value, key.takes_value, key.repeats) {
            (toml::Value::Boolean(b), false, _) => {
                if *b {
                    args.push(key.flag.clone());
                }
            }
            (_, false, _) => anyhow::bail!("config {}: {name}: want true or false", path.display()),
            (toml::Value::Array(items), true, true) => {
                for v in items {
                    args.push(format!("{}={}", key.flag, scalar(v)?));
                }
            }
            (v, true, _) => args.push(format!("{}={}", key.flag, scalar(v)?)),
        }
    }
    Ok(args)
}

/// `env_args` are the flags the environment stands for: for each setting
/// `name`, `CUSTODYD_NAME` in upper case (a list comma-separated; a switch
/// `true` or `false`).
///
/// # Errors
///
/// For a switch whose variable is neither `true` nor `false`.
pub fn env_args() -> anyhow::Result<Vec<String>> {
    let mut args = Vec::new();
    for key in keys() {
        let var = format!("{ENV_PREFIX}{}", key.name.to_uppercase());
        let Ok(value) = std::env::var(&var) else {
            continue;
        };
        match (key.takes_value, key.repeats) {
            (false, _) => match value.as_str() {
                "true" | "1" => args.push(key.flag.clone()),
                "false" | "0" | "" => {}
                _ => anyhow::bail!("{var}: want true or false, not {value:?}"),
            },
            (true, true) => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    args.push(format!("{}={v}", key.flag));
                }
            }
            (true, false) => args.push(format!("{}={value}", key.flag)),
        }
    }
    Ok(args)
}

/// `with_sources` is `argv` (a `custodyd` command line whose subcommand
/// takes a [`Config`]) with the settings of its `--config` file and of
/// the environment put before its own flags, so that flags override the
/// environment, which overrides the file.
///
/// # Errors
///
/// As [`file_args`] and [`env_args`].
pub fn with_sources(argv: &[String], subcommand_words: usize) -> anyhow::Result<Vec<String>> {
    let split = (1 + subcommand_words).min(argv.len());
    let (head, rest) = argv.split_at(split);
    let mut file = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            file = it.next().cloned();
        } else if let Some(v) = a.strip_prefix("--config=") {
            file = Some(v.to_owned());
        }
    }
    let mut out = head.to_vec();
    if let Some(f) = file {
        out.extend(file_args(std::path::Path::new(&f))?);
    }
    out.extend(env_args()?);
    out.extend(rest.iter().cloned());
    Ok(out)
}

/// `flags_as_keys` rewrites each `--flag-name` in a message as the key
/// `flag_name` a settings file uses, for errors about a file.
pub fn flags_as_keys(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after.len());
        if end == 0 {
            out.push_str("--");
        } else {
            out.push_str("key ");
            out.push_str(&after[..end].replace('-', "_"));
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `show` is the effective configuration as TOML, with any secret
/// redacted. (No setting holds one today: keys are files, and tokens live
/// in the access list; a setting whose name says secret, token or
/// password is redacted all the same.)
///
/// # Errors
///
/// When it cannot be rendered.
pub fn show(config: &Config) -> anyhow::Result<String> {
    let mut table: toml::Table = toml::Table::try_from(config)?;
    for (name, value) in table.iter_mut() {
        if ["secret", "token", "password"]
            .iter()
            .any(|s| name.contains(s))
        {
            *value = toml::Value::String("<redacted>".into());
        }
    }
    Ok(toml::to_string(&table)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rule, one place: every setting is documented, and the example
    /// file holds only settings.
    #[test]
    fn every_setting_is_documented_and_the_example_file_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let doc = std::fs::read_to_string(root.join("docs/configuration.md")).expect("doc");
        let keys = keys();
        assert!(keys.len() > 20, "{} settings", keys.len());
        for k in &keys {
            assert!(
                doc.contains(&format!("| `{}` | `{}` |", k.name, k.flag)),
                "docs/configuration.md does not document {}",
                k.name
            );
        }
        let args = file_args(&root.join("deploy/custodyd.toml")).expect("example parses");
        assert!(
            args.contains(&"--grpc-addr=0.0.0.0:7100".to_owned()),
            "{args:?}"
        );
    }

    #[test]
    fn a_file_with_an_unknown_key_or_a_wrong_kind_names_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "grpc_adr = \"x\"\n").expect("write");
        let e = file_args(&f).expect_err("unknown").to_string();
        assert!(e.contains("\"grpc_adr\" is not a setting"), "{e}");
        std::fs::write(&f, "public_tiles = \"yes\"\n").expect("write");
        let e = file_args(&f).expect_err("kind").to_string();
        assert!(e.contains("public_tiles: want true or false"), "{e}");
        std::fs::write(
            &f,
            "witness = [\"a b\", \"c d\"]\npublic_tiles = true\nqueue = 5\n",
        )
        .expect("write");
        assert_eq!(
            file_args(&f).expect("ok"),
            [
                "--public-tiles",
                "--queue=5",
                "--witness=a b",
                "--witness=c d"
            ]
        );
        assert_eq!(
            flags_as_keys("invalid value for '--max-connections <N>'"),
            "invalid value for 'key max_connections <N>'"
        );
    }
}
