//! `custody export`: fetch one self-contained evidence bundle for a
//! question (`ExportEvidence`) into a file, which `custody verify FILE
//! --log-key VKEY` checks offline.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use custody_domain::{parse_rfc3339, Digest};
use custody_proto::v1::{self, custody_query_client::CustodyQueryClient};

/// `ExportArgs` are `custody export`'s options; `--server`, `--out` and
/// `--log-key` may come before or after the question.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// gRPC server, e.g. http://127.0.0.1:7100.
    #[arg(long, global = true)]
    server: Option<String>,
    /// Where to write the bundle.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Also verify the bundle against this log key and print what it
    /// proves.
    #[arg(long, global = true)]
    log_key: Option<PathBuf>,
    #[command(subcommand)]
    question: Question,
}

/// `Question` is what a bundle answers, with the options of `custody
/// inspect`.
#[derive(clap::Subcommand)]
enum Question {
    /// Every logged event about an asset.
    History {
        /// Hex SHA-256 of the asset.
        #[arg(long)]
        asset: String,
    },
    /// Who held an asset at a time.
    Holders {
        /// Hex SHA-256 of the asset.
        #[arg(long)]
        asset: String,
        /// RFC 3339 time, e.g. 2026-11-26T12:00:00Z.
        #[arg(long)]
        at: String,
    },
    /// What a party or system held at a time.
    Holdings {
        #[arg(long, conflicts_with = "system", required_unless_present = "system")]
        party: Option<String>,
        #[arg(long)]
        system: Option<String>,
        /// RFC 3339 time.
        #[arg(long)]
        at: String,
    },
    /// Which assets rested on a system at any moment of a window.
    BreachScope {
        #[arg(long)]
        system: String,
        /// Window start, RFC 3339.
        #[arg(long)]
        from: String,
        /// Window end, RFC 3339 (inclusive).
        #[arg(long)]
        to: String,
    },
    /// A policy finding by id, as of a time.
    Finding {
        #[arg(long)]
        id: String,
        /// RFC 3339 time (default: now).
        #[arg(long)]
        as_of: Option<String>,
    },
}

fn digest_arg(s: &str) -> anyhow::Result<Digest> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--asset: want 64 hex digits (a SHA-256), got {s:?}");
    }
    let mut d = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hexit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        d[i] = hexit(pair[0]) << 4 | hexit(pair[1]);
    }
    Ok(d)
}

fn time_arg(flag: &str, s: &str) -> anyhow::Result<i64> {
    parse_rfc3339(s).map_err(|e| anyhow!("{flag}: {e}"))
}

fn request(q: Question) -> anyhow::Result<v1::ExportEvidenceRequest> {
    use v1::export_evidence_request::Question as Q;
    let question = match q {
        Question::History { asset } => Q::History(v1::AssetHistoryRequest {
            asset: digest_arg(&asset)?.to_vec(),
            ..Default::default()
        }),
        Question::Holders { asset, at } => Q::Holders(v1::HoldersAtRequest {
            asset: digest_arg(&asset)?.to_vec(),
            time_unix_nanos: time_arg("--at", &at)?,
            tree_size: 0,
        }),
        Question::Holdings { party, system, at } => {
            let holder = match (party, system) {
                (Some(p), _) => v1::holdings_request::Holder::Party(p),
                (None, Some(s)) => v1::holdings_request::Holder::SystemId(s),
                (None, None) => bail!("set --party or --system"),
            };
            Q::Holdings(v1::HoldingsRequest {
                holder: Some(holder),
                time_unix_nanos: time_arg("--at", &at)?,
                ..Default::default()
            })
        }
        Question::BreachScope { system, from, to } => Q::BreachScope(v1::BreachScopeRequest {
            system_id: system,
            from_unix_nanos: time_arg("--from", &from)?,
            to_unix_nanos: time_arg("--to", &to)?,
            ..Default::default()
        }),
        Question::Finding { id, as_of } => Q::Finding(v1::FindingRef {
            id,
            as_of_unix_nanos: as_of
                .map(|t| time_arg("--as-of", &t))
                .transpose()?
                .unwrap_or(0),
        }),
    };
    Ok(v1::ExportEvidenceRequest {
        question: Some(question),
    })
}

/// `run` fetches the bundle, writes it to `--out` and, with `--log-key`,
/// verifies it and prints what it proves.
///
/// # Errors
///
/// Missing options, connection failures, the server's refusal (with its
/// message), a failed write, or a bundle that does not verify.
pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let server = args
        .server
        .ok_or_else(|| anyhow!("--server URL is required (the gRPC server)"))?;
    let out = args
        .out
        .ok_or_else(|| anyhow!("--out FILE is required (where to write the bundle)"))?;
    let verifier = match &args.log_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read log key {}", path.display()))?;
            Some(custody_log::LogVerifier::new(text.trim())?)
        }
        None => None,
    };
    let req = request(args.question)?;
    let ch = crate::net::channel(&server).await?;
    let r = CustodyQueryClient::new(ch)
        .max_decoding_message_size(512 << 20)
        .export_evidence(req)
        .await
        .map_err(|s| anyhow!("export: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    std::fs::write(&out, &r.bundle).with_context(|| format!("write {}", out.display()))?;
    println!(
        "wrote {} ({} bytes; the server names it {})",
        out.display(),
        r.bundle.len(),
        r.file_name
    );
    if let Some(v) = verifier {
        let verified = custody_evidence::verify_bundle(&r.bundle, &v)
            .with_context(|| format!("{} does not verify", out.display()))?;
        println!("{}", verified.statement);
    }
    Ok(())
}
