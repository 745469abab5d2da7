//! `custodyd`: parse flags, then hand off to the library.

/// jemalloc, as RocksDB services commonly run: with glibc's allocator a
/// third of the server's time serving proofs went to `malloc`, `free`
/// and `malloc_consolidate` for RocksDB's blocks (BENCHMARKS.md,
/// "Inclusion proofs").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use custody_store_rocks::RocksStore;
use custodyd::config::{self, Config};
use custodyd::init::Paths;
use custodyd::server::{shutdown_signal, Listeners, Server};

#[derive(Parser)]
#[command(name = "custodyd", version, about = "Custody Ledger server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new log: database, signing key (mode 0600) and genesis entry.
    Init {
        /// Data directory to create.
        #[arg(long)]
        data: PathBuf,
        /// The log's origin line, e.g. `ledger.example.gov/custody`.
        #[arg(long)]
        origin: String,
        /// The data owner's public key, as written by `custody keygen`.
        #[arg(long)]
        owner_key: PathBuf,
        /// The data owner's party id.
        #[arg(long, default_value = "data-owner")]
        owner_id: String,
        /// Keep the log's signing key in this file instead of
        /// DATA/log.key: an existing key (`custodyd keygen`) is used, a
        /// missing file is made (mode 0600). `serve` then needs
        /// `--signing-key` with the same file.
        #[arg(long)]
        signing_key: Option<PathBuf>,
    },
    /// Make a log signing key for ORIGIN in a new file (mode 0600), to
    /// keep in a secret store and give to `init` and `serve` as
    /// `--signing-key`. Prints the verifier key.
    Keygen {
        /// The log's origin line, e.g. `ledger.example.gov/custody`.
        #[arg(long)]
        origin: String,
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve the log over gRPC and HTTP.
    Serve(Box<Config>),
    /// Manage the access list: bearer tokens bound to a party and a role
    /// (DESIGN §8). A server re-reads it when it changes.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Compact the database of a stopped server fully, and print its size
    /// before and after.
    Compact {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
    },
    /// Serve a read replica: follow a log's tile API (its object-storage
    /// mirror, say), check every checkpoint and entry, and answer
    /// GetCheckpoint, GetEntries and the proofs over gRPC.
    Replica(custodyd::replica::ReplicaArgs),
    /// Back up a data directory to a new directory, while its server runs
    /// (through the admin socket) or not. The backup holds the signing
    /// key if DATA/log.key does: then keep it as safe as the key.
    Backup {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
        /// The backup directory to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new data directory, after checking that its
    /// tree hashes to its signed checkpoint. The restored log resumes at
    /// the backup's point: what was logged after it is not in it.
    Restore {
        /// The backup directory (`custodyd backup --out`).
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create (empty or absent).
        #[arg(long)]
        data: PathBuf,
        /// The log's verifier key, as auditors hold it (a file); the
        /// backup must be of this log.
        #[arg(long)]
        log_key: Option<PathBuf>,
    },
    /// Certificates for TLS, for a trial without a CA of one's own.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Settings files: check one, or show the settings `serve` would use.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a TOML settings file: every key a setting, every value of
    /// its kind, and the files and keys it names readable. Exits non-zero
    /// with the key at fault.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the settings `custodyd serve` would run with, given the same
    /// --config file, environment and flags, as TOML, secrets redacted.
    Show(Box<Config>),
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make a local CA in DIR (kept if DIR has one), a server certificate
    /// for each --host, and a client certificate for each --client name
    /// (a subject alternative name, as `custodyd access add --san` binds
    /// it). Prints the files' paths.
    Issue {
        /// Where to write ca.pem, server.pem, client-NAME.pem and their
        /// keys (mode 0600).
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address the server is reached at
        /// (repeatable).
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
        /// A client certificate's name: a DNS name or a URI such as
        /// spiffe://vendor.example/backup (repeatable).
        #[arg(long = "client")]
        clients: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Make a token for PARTY with ROLE, add its hash to the list, and
    /// print the token (once: it is not stored).
    Add {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
        /// The party the token acts for.
        #[arg(long)]
        party: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: custodyd::access::Role,
        /// A note for operators: who holds it, what for.
        #[arg(long, default_value = "")]
        label: String,
        /// Bind a client certificate's subject alternative name (a DNS
        /// name or URI, verified against --tls-client-ca) instead of
        /// making a token.
        #[arg(long)]
        san: Option<String>,
    },
    /// List the grants (party, role, label, and the first digits of each
    /// token's hash).
    List {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
    },
    /// Revoke every token whose hash starts with PREFIX (as `list`
    /// shows it), or the grant of a certificate name.
    Revoke {
        /// Data directory made by `custodyd init`.
        #[arg(long)]
        data: PathBuf,
        /// The first hex digits of the token's hash (at least 8), or
        /// `san:NAME` for a certificate's grant, as `list` shows them.
        prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("custodyd: {e:#}");
            return ExitCode::from(2);
        }
    };
    custodyd::server::init_logging(match &cli.command {
        Command::Serve(config) => config.log_format,
        _ => config::LogFormat::Text,
    });
    let result = match cli.command {
        Command::Init {
            data,
            origin,
            owner_key,
            owner_id,
            signing_key,
        } => custodyd::init::run(
            &data,
            &origin,
            &owner_key,
            &owner_id,
            signing_key.as_deref(),
        )
        .map(|vkey| {
            println!("{vkey}");
        }),
        Command::Keygen { origin, out } => {
            custodyd::init::write_signing_key(&out, &origin).map(|signer| {
                println!("{}", signer.verifier_key());
            })
        }
        Command::Serve(config) => serve(*config),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
        Command::Config(ConfigCommand::Show(config)) => {
            config::show(&config).map(|t| print!("{t}"))
        }
        Command::Access(cmd) => access(cmd),
        Command::Compact { data } => compact(&data),
        Command::Replica(args) => replica(&args),
        Command::Backup { data, out } => custodyd::backup::backup(&data, &out).map(|b| {
            println!(
                "backed up {} entries of {} to {} (signed checkpoint of {}); {}",
                b.tree_size,
                b.origin,
                out.display(),
                b.checkpoint_size,
                if b.holds_signing_key {
                    "it holds the signing key: keep it as safe as the key"
                } else {
                    "the signing key is kept elsewhere and is not in it"
                }
            );
        }),
        Command::Restore {
            from,
            data,
            log_key,
        } => log_key
            .map(|p| {
                std::fs::read_to_string(&p)
                    .with_context(|| format!("read the log key {}", p.display()))
            })
            .transpose()
            .and_then(|key| custodyd::backup::restore(&from, &data, key.as_deref()))
            .map(|b| {
                println!(
                    "restored {} entries of {} into {} (signed checkpoint of {}, taken {}); \
                     start it with custodyd serve --data {}",
                    b.tree_size,
                    b.origin,
                    data.display(),
                    b.checkpoint_size,
                    b.taken,
                    data.display()
                );
            }),
        Command::Tls(TlsCommand::Issue {
            dir,
            hosts,
            clients,
        }) => custodyd::tls::issue(&dir, &hosts, &clients).map(|issued| {
            println!(
                "CA (clients trust it: custody --ca): {}",
                issued.ca.display()
            );
            println!(
                "server: --tls-cert {} --tls-key {}",
                issued.cert.display(),
                issued.key.display()
            );
            for c in &clients {
                let stem = dir.join(custodyd::tls::client_stem(c));
                println!(
                    "client {c}: --client-cert {}.pem --client-key {}.key",
                    stem.display(),
                    stem.display()
                );
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error chain, outermost first.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("custodyd: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn compact(data: &std::path::Path) -> anyhow::Result<()> {
    let paths = Paths::new(data);
    if !paths.db.is_dir() {
        anyhow::bail!("{} holds no database: run `custodyd init`", data.display());
    }
    let before = dir_bytes(&paths.db)?;
    // Opening takes RocksDB's lock, so a running server is refused here.
    let store = RocksStore::open(&paths.db)
        .with_context(|| format!("open {} (is custodyd serving it?)", paths.db.display()))?;
    store.compact()?;
    drop(store);
    let after = dir_bytes(&paths.db)?;
    println!(
        "{}: {before} bytes before compaction, {after} after",
        paths.db.display()
    );
    Ok(())
}

/// `dir_bytes` is the size of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let m = e?.metadata()?;
        if m.is_file() {
            n += m.len();
        }
    }
    Ok(n)
}

/// `parse` parses the command line; for `serve` and `config show`, with
/// the settings of the `--config` file and the environment before the
/// flags, so that flags win over the environment, and it over the file.
fn parse() -> anyhow::Result<Cli> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let argv: Vec<String> = std::env::args().collect();
    let words: Vec<&str> = argv.iter().skip(1).take(2).map(String::as_str).collect();
    let argv = match words.as_slice() {
        ["serve", ..] => config::with_sources(&argv, 1)?,
        ["config", "show"] => config::with_sources(&argv, 2)?,
        _ => argv,
    };
    let matches = match Cli::command()
        .args_override_self(true)
        .try_get_matches_from(&argv)
    {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    Ok(Cli::from_arg_matches(&matches)?)
}

/// `check_config` runs `custodyd config check FILE`.
fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    use clap::{Args as _, FromArgMatches as _};
    let mut argv = vec!["custodyd".to_owned()];
    argv.extend(config::file_args(file)?);
    let cmd = Config::augment_args(clap::Command::new("custodyd").no_binary_name(false));
    let matches = cmd.try_get_matches_from(&argv).map_err(|e| {
        anyhow::anyhow!(
            "config {}: {}",
            file.display(),
            config::flags_as_keys(
                e.render()
                    .to_string()
                    .lines()
                    .take_while(|l| !l.starts_with("For more information"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
            )
        )
    })?;
    let parsed = Config::from_arg_matches(&matches)?;
    parsed.validate().map_err(|e| {
        anyhow::anyhow!(
            "config {}: {}",
            file.display(),
            config::flags_as_keys(&format!("{e:#}"))
        )
    })?;
    println!("config {}: ok", file.display());
    Ok(())
}

/// `serve` runs `custodyd serve`: open the log, bind, say where it
/// listens (one line on stdout, so that a port of 0 can be used), and
/// serve until SIGINT or SIGTERM.
fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::open(config.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listeners = Listeners::bind(config.grpc_addr, config.http_addr).await?;
        let (grpc, http) = listeners.addrs()?;
        println!("custodyd: listening grpc={grpc} http={http}");
        server.run(listeners, shutdown_signal()).await
    })
}

/// `replica` runs `custodyd replica`.
fn replica(args: &custodyd::replica::ReplicaArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.grpc_addr)
            .await
            .with_context(|| format!("bind gRPC {}", args.grpc_addr))?;
        println!(
            "custodyd: replica listening grpc={}",
            listener.local_addr()?
        );
        custodyd::replica::serve(args, listener, shutdown_signal()).await
    })
}

/// `access` runs `custodyd access ...`.
fn access(cmd: AccessCommand) -> anyhow::Result<()> {
    use custodyd::access::{hash_token, new_token, AccessFile, Grant};
    match cmd {
        AccessCommand::Add {
            data,
            party,
            role,
            label,
            san,
        } => {
            if !custody_domain::is_valid_id(&party) {
                anyhow::bail!(
                    "--party: {party:?} is not an id; ids are 1 to 64 characters from A-Z a-z 0-9 . _ : -"
                );
            }
            anyhow::ensure!(
                data.join("db").exists() || data.join("log.key").exists(),
                "--data: {} is not a data directory made by `custodyd init`",
                data.display()
            );
            let mut file = AccessFile::load(&data)?.unwrap_or_default();
            if let Some(name) = san {
                anyhow::ensure!(
                    !name.is_empty()
                        && name.len() <= 256
                        && name.bytes().all(|b| b.is_ascii_graphic()),
                    "--san: {:?} is not a certificate name (printable ASCII, no spaces, at most 256)",
                    custody_domain::clip(&name, 64)
                );
                anyhow::ensure!(
                    !file.grants.iter().any(|g| g.san.as_deref() == Some(&name)),
                    "--san {name}: already on the list; revoke it first to change its party or role"
                );
                file.grants.push(Grant {
                    sha256: String::new(),
                    san: Some(name.clone()),
                    party,
                    role,
                    label,
                });
                file.store(&data)?;
                println!("a client certificate named {name} now acts for its party");
                return Ok(());
            }
            let token = new_token();
            file.grants.push(Grant {
                sha256: hash_token(&token),
                san: None,
                party,
                role,
                label,
            });
            file.store(&data)?;
            println!("{token}");
            Ok(())
        }
        AccessCommand::List { data } => {
            let file = AccessFile::load(&data)?;
            match file {
                None => println!("no access list: the server is open to every caller"),
                Some(f) => {
                    for g in f.grants {
                        let key = match &g.san {
                            Some(name) => format!("san:{name}"),
                            None => g.sha256[..g.sha256.len().min(16)].to_owned(),
                        };
                        println!("{}\t{}\t{}\t{}", key, g.party, g.role.name(), g.label);
                    }
                }
            }
            Ok(())
        }
        AccessCommand::Revoke { data, prefix } => {
            if let Some(name) = prefix.strip_prefix("san:") {
                let mut file = AccessFile::load(&data)?
                    .ok_or_else(|| anyhow::anyhow!("{} has no access list", data.display()))?;
                let before = file.grants.len();
                file.grants.retain(|g| g.san.as_deref() != Some(name));
                let revoked = before - file.grants.len();
                anyhow::ensure!(revoked > 0, "no grant binds the certificate name {name}");
                file.store(&data)?;
                println!("revoked {revoked}");
                return Ok(());
            }
            anyhow::ensure!(
                prefix.len() >= 8 && prefix.bytes().all(|b| b.is_ascii_hexdigit()),
                "PREFIX: give at least 8 hex digits of the hash, as `custodyd access list` shows it"
            );
            let mut file = AccessFile::load(&data)?
                .ok_or_else(|| anyhow::anyhow!("{} has no access list", data.display()))?;
            let before = file.grants.len();
            let prefix = prefix.to_ascii_lowercase();
            file.grants
                .retain(|g| g.san.is_some() || !g.sha256.starts_with(&prefix));
            let revoked = before - file.grants.len();
            anyhow::ensure!(revoked > 0, "no token's hash starts with {prefix}");
            // An empty list still closes the server: it is not the same as
            // no list.
            file.store(&data)?;
            println!("revoked {revoked}");
            Ok(())
        }
    }
}
