//! Who may do what (DESIGN §8): roles bound to parties, presented as
//! bearer tokens or as client certificates.
//!
//! An access list lives beside the database, in `DATA/access.json`
//! (mode 0600), and is managed with `custodyd access add | list |
//! revoke`. Each grant binds one token to one party and one role. The
//! file holds only each token's SHA-256 (a token is 256 random bits, so a
//! plain hash is enough); a token is shown once, when it is made, and is
//! never logged or echoed.
//!
//! A server whose data directory has no access list is **open**: every
//! caller may read everything and report for any party, as before roles
//! existed. It says so in its log at start-up and on the web view's
//! status page. Once a list exists, every request but health, reflection
//! and (with `--public-tiles`) the tile API needs a token.
//!
//! A grant may bind a client certificate's subject alternative name
//! instead of a token (`custodyd access add --san NAME`): a caller whose
//! certificate, verified against `--tls-client-ca`, carries that name
//! acts for the grant's party in its role ([`crate::tls`]). A token, when
//! sent, is what counts; otherwise the first of the certificate's names
//! that the list binds.
//!
//! The server re-reads the list when the file changes, so a revoked
//! token stops working without a restart.
//!
//! Roles:
//! - `reporter`: appends events whose `reporter` is its own party,
//!   uploads manifests, and reads only the entries it reported (and the
//!   genesis entry, which names the origin it signs for), checkpoints and
//!   consistency proofs;
//! - `auditor`: reads everything: custody queries, findings, evidence,
//!   the web view and the tile API;
//! - `witness`: reads checkpoints and the tile API (to cosign);
//! - `admin`: everything an auditor may.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::answer::AnswerError;

/// `Role` is what a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reports its own party's events and reads them back.
    Reporter,
    /// Reads everything.
    Auditor,
    /// Reads checkpoints and tiles, to cosign them.
    Witness,
    /// Administers the log; reads as an auditor does.
    Admin,
}

impl Role {
    /// `name` is the role as written in the access list.
    pub fn name(self) -> &'static str {
        match self {
            Role::Reporter => "reporter",
            Role::Auditor => "auditor",
            Role::Witness => "witness",
            Role::Admin => "admin",
        }
    }
}

/// `Caller` is who made a request, as far as access goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The server has no access list: anyone may do anything.
    Open,
    /// A token's holder.
    Granted {
        /// The party the token is bound to.
        party: String,
        /// What it may do.
        role: Role,
    },
}

impl Caller {
    /// `read_all` allows reading every entry and answer: auditors and
    /// admins.
    ///
    /// # Errors
    ///
    /// [`AnswerError::PermissionDenied`] for any other role.
    pub fn read_all(&self) -> Result<(), AnswerError> {
        match self {
            Caller::Open
            | Caller::Granted {
                role: Role::Auditor | Role::Admin,
                ..
            } => Ok(()),
            Caller::Granted { party, role } => Err(AnswerError::PermissionDenied(format!(
                "this needs the auditor role; the token of {party} has the {} role",
                role.name()
            ))),
        }
    }

    /// `read_tiles` allows the checkpoint and the tile API: auditors,
    /// admins and witnesses.
    ///
    /// # Errors
    ///
    /// [`AnswerError::PermissionDenied`] for a reporter.
    pub fn read_tiles(&self) -> Result<(), AnswerError> {
        match self {
            Caller::Granted {
                role: Role::Witness,
                ..
            } => Ok(()),
            other => other.read_all(),
        }
    }

    /// `report_as` allows appending an event that `reporter` reports, and
    /// is the one place the rule "a reporter reports only for its own
    /// party" is checked.
    ///
    /// # Errors
    ///
    /// [`AnswerError::PermissionDenied`] unless the caller is a reporter
    /// bound to `reporter` (or the server is open).
    pub fn report_as(&self, reporter: &str) -> Result<(), AnswerError> {
        match self {
            Caller::Open => Ok(()),
            Caller::Granted {
                party,
                role: Role::Reporter,
            } if party == reporter => Ok(()),
            Caller::Granted {
                party,
                role: Role::Reporter,
            } => Err(AnswerError::PermissionDenied(format!(
                "the token of {party} may report only {party}'s events, not {}'s",
                crate::answer::fields::clip(reporter, 64)
            ))),
            Caller::Granted { party, role } => Err(AnswerError::PermissionDenied(format!(
                "appending needs the reporter role; the token of {party} has the {} role",
                role.name()
            ))),
        }
    }

    /// `upload` allows uploading a manifest: reporters (or an open
    /// server).
    ///
    /// # Errors
    ///
    /// [`AnswerError::PermissionDenied`] for any other role.
    pub fn upload(&self) -> Result<(), AnswerError> {
        match self {
            Caller::Open
            | Caller::Granted {
                role: Role::Reporter,
                ..
            } => Ok(()),
            Caller::Granted { party, role } => Err(AnswerError::PermissionDenied(format!(
                "uploading a manifest needs the reporter role; the token of {party} has the {} role",
                role.name()
            ))),
        }
    }

    /// `read_entry` allows reading an entry that `reporter` reported:
    /// everything for auditors, a reporter's own entries for a reporter.
    ///
    /// # Errors
    ///
    /// [`AnswerError::PermissionDenied`] otherwise.
    pub fn read_entry(&self, index: u64, reporter: Option<&str>) -> Result<(), AnswerError> {
        // The genesis entry names the log's origin and owner, which every
        // reporter needs to sign for this log: anyone known may read it.
        if index == 0 && reporter.is_none() {
            return Ok(());
        }
        match (self, reporter) {
            (
                Caller::Granted {
                    party,
                    role: Role::Reporter,
                },
                Some(r),
            ) if party == r => Ok(()),
            (
                Caller::Granted {
                    party,
                    role: Role::Reporter,
                },
                _,
            ) => Err(AnswerError::PermissionDenied(format!(
                "entry {index} was not reported by {party}; a reporter reads only its own entries"
            ))),
            (other, _) => other.read_all(),
        }
    }
}

/// `reporter_of` is the party that reported the log entry `entry`, or
/// `None` for the genesis entry or bytes that do not decode.
pub fn reporter_of(entry: &[u8]) -> Option<String> {
    match custody_proto::decode_entry(entry).ok()? {
        custody_proto::Entry::Event { envelope, .. } => custody_proto::decode_event(&envelope.body)
            .ok()
            .map(|e| e.reporter),
        _ => None,
    }
}

/// `authorization` is a request's `authorization` value: HTTP header or
/// gRPC metadata.
pub fn authorization(headers: &axum::http::HeaderMap) -> Option<&[u8]> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
}

/// `Grant` is one access-list entry: a token's hash, its party and role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    /// SHA-256 of the token, in hex; empty for a certificate's grant.
    #[serde(default)]
    pub sha256: String,
    /// The client certificate subject alternative name (DNS name or URI)
    /// this grant binds, instead of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san: Option<String>,
    /// The party the token acts for.
    pub party: String,
    /// What it may do.
    pub role: Role,
    /// A note for the operator (who holds it, what for).
    #[serde(default)]
    pub label: String,
}

/// `AccessFile` is the access list as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessFile {
    /// Every grant.
    pub grants: Vec<Grant>,
}

/// `TOKEN_PREFIX` starts every token, so a leaked one is easy to grep for.
pub const TOKEN_PREFIX: &str = "clt_";

/// `hash_token` is the hex SHA-256 a token is stored as.
pub fn hash_token(token: &str) -> String {
    custody_domain::hex(&Sha256::digest(token.as_bytes()))
}

/// `new_token` is a fresh token: the prefix and 256 random bits in hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    format!("{TOKEN_PREFIX}{}", custody_domain::hex(&b))
}

impl AccessFile {
    /// `path` is where a data directory keeps its access list.
    pub fn path(data: &Path) -> PathBuf {
        data.join("access.json")
    }

    /// `load` reads the access list of `data`, or `None` if it has none.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read or parsed.
    pub fn load(data: &Path) -> anyhow::Result<Option<Self>> {
        let path = Self::path(data);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!("{}: not an access list: {e}", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("read {}: {e}", path.display())),
        }
    }

    /// `store` writes the list atomically (a temporary file renamed over
    /// it), readable by its owner only.
    ///
    /// # Errors
    ///
    /// On I/O failure.
    pub fn store(&self, data: &Path) -> anyhow::Result<()> {
        let path = Self::path(data);
        let tmp = data.join("access.json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        {
            use std::io::Write as _;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                o.mode(0o600);
            }
            let mut f = o
                .open(&tmp)
                .map_err(|e| anyhow::anyhow!("write {}: {e}", tmp.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
            .map_err(|e| anyhow::anyhow!("rename to {}: {e}", path.display()))?;
        Ok(())
    }
}

/// `Access` checks requests against a data directory's access list,
/// re-reading it when it changes.
pub struct Access {
    data: PathBuf,
    state: RwLock<Loaded>,
}

/// `Loaded` is the list as last read, and when its file last changed.
struct Loaded {
    modified: Option<Stamp>,
    grants: Option<Index>,
}

/// `Index` is the list by what a caller presents: a token's hash, or a
/// certificate's name.
#[derive(Default)]
struct Index {
    tokens: HashMap<String, (String, Role)>,
    names: HashMap<String, (String, Role)>,
}

fn index(file: Option<AccessFile>) -> Option<Index> {
    file.map(|f| {
        let mut i = Index::default();
        for g in f.grants {
            match g.san {
                Some(name) => i
                    .names
                    .insert(crate::tls::typed_name(&name), (g.party, g.role)),
                None => i.tokens.insert(g.sha256, (g.party, g.role)),
            };
        }
        i
    })
}

/// `Stamp` tells one version of the list's file from another: its
/// modification time, length and (on Unix) inode, so a rewrite is seen
/// even where timestamps are coarse (every store renames a new file).
type Stamp = (SystemTime, u64, u64);

fn modified(data: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(AccessFile::path(data)).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

impl Access {
    /// `open` reads the access list of `data`.
    ///
    /// # Errors
    ///
    /// When the list exists but cannot be read.
    pub fn open(data: &Path) -> anyhow::Result<Self> {
        let modified = modified(data);
        let grants = index(AccessFile::load(data)?);
        Ok(Self {
            data: data.to_owned(),
            state: RwLock::new(Loaded { modified, grants }),
        })
    }

    /// `open_to_all` is an access check that lets every caller through,
    /// for a server with no data directory of its own (tests).
    pub fn open_to_all() -> Self {
        Self {
            data: PathBuf::new(),
            state: RwLock::new(Loaded {
                modified: None,
                grants: None,
            }),
        }
    }

    /// `is_open` is whether the server has no access list.
    pub fn is_open(&self) -> bool {
        self.refresh();
        self.state
            .read()
            .map(|s| s.grants.is_none())
            .unwrap_or(false)
    }

    /// `refresh` re-reads the list if its file changed. A list that
    /// cannot be read keeps the last one read (and is logged), so a
    /// half-edited file never opens the server.
    fn refresh(&self) {
        if self.data.as_os_str().is_empty() {
            return;
        }
        let now = modified(&self.data);
        let stale = self.state.read().map(|s| s.modified != now).unwrap_or(true);
        if !stale {
            return;
        }
        match AccessFile::load(&self.data) {
            Ok(file) if file.is_some() || now.is_none() => {
                if let Ok(mut s) = self.state.write() {
                    let was_open = s.grants.is_none();
                    s.grants = index(file);
                    s.modified = now;
                    if !was_open && s.grants.is_none() {
                        tracing::warn!("the access list was removed: the server is open to all");
                    } else {
                        tracing::info!("access list re-read");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "access list not re-read; the last one stays");
                if let Ok(mut s) = self.state.write() {
                    s.modified = now;
                }
            }
        }
    }

    /// `caller` is who presents `authorization` (an HTTP `Authorization`
    /// header's or gRPC `authorization` metadata's value) over a
    /// connection from `peer`, or why not.
    ///
    /// # Errors
    ///
    /// [`AnswerError::Unauthenticated`] for a missing, malformed or
    /// unknown token on a server with an access list, when no name of the
    /// peer's client certificate is on it either.
    pub fn caller(
        &self,
        authorization: Option<&[u8]>,
        peer: Option<&crate::tls::Peer>,
    ) -> Result<Caller, AnswerError> {
        self.refresh();
        let s = self
            .state
            .read()
            .map_err(|_| AnswerError::internal("access list", "lock poisoned"))?;
        let Some(grants) = &s.grants else {
            return Ok(Caller::Open);
        };
        let granted = |(party, role): &(String, Role)| Caller::Granted {
            party: party.clone(),
            role: *role,
        };
        let Some(value) = authorization else {
            let names = peer.map(|p| &p.names[..]).unwrap_or_default();
            // Every name of the certificate the list binds must agree:
            // a certificate that names two parties (or roles) acts for
            // neither, whatever order its names come in.
            let mut bound = names.iter().filter_map(|n| grants.names.get(n));
            if let Some(first) = bound.next() {
                if bound.any(|g| g != first) {
                    return Err(AnswerError::Unauthenticated(
                        "your client certificate carries names the access list binds to different parties or roles; it acts for none of them".into(),
                    ));
                }
                return Ok(granted(first));
            }
            return Err(AnswerError::Unauthenticated(if names.is_empty() {
                "this server needs a token: send `authorization: Bearer <token>` (custody --token, or CUSTODY_TOKEN), or a client certificate the access list names".into()
            } else {
                format!(
                    "no name of your client certificate ({}) is on this server's access list; send a token instead, or ask for `custodyd access add --san`",
                    names
                        .iter()
                        .take(4)
                        .map(|n| crate::answer::fields::quoted(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }));
        };
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| {
                AnswerError::Unauthenticated("authorization: want `Bearer <token>`".into())
            })?;
        match grants.tokens.get(&hash_token(token)) {
            Some(g) => Ok(granted(g)),
            None => Err(AnswerError::Unauthenticated(
                "the token is not on this server's access list (unknown or revoked)".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(party: &str, role: Role) -> Caller {
        Caller::Granted {
            party: party.into(),
            role,
        }
    }

    #[test]
    fn each_role_may_do_what_design_8_says_and_no_more() {
        let reporter = granted("vendor", Role::Reporter);
        let auditor = granted("oig", Role::Auditor);
        let witness = granted("w1", Role::Witness);
        let admin = granted("ops", Role::Admin);
        assert!(reporter.report_as("vendor").is_ok());
        assert!(reporter.report_as("cam").is_err());
        assert!(auditor.report_as("oig").is_err());
        assert!(admin.report_as("ops").is_err());
        assert!(reporter.read_all().is_err());
        assert!(witness.read_all().is_err());
        assert!(auditor.read_all().is_ok() && admin.read_all().is_ok());
        assert!(witness.read_tiles().is_ok() && auditor.read_tiles().is_ok());
        assert!(reporter.read_tiles().is_err());
        assert!(reporter.read_entry(3, Some("vendor")).is_ok());
        assert!(reporter.read_entry(3, Some("cam")).is_err());
        assert!(reporter.read_entry(0, None).is_ok(), "the genesis entry");
        assert!(reporter.read_entry(5, None).is_err());
        assert!(auditor.read_entry(3, Some("cam")).is_ok());
        assert!(witness.read_entry(3, Some("cam")).is_err());
        assert!(reporter.upload().is_ok() && auditor.upload().is_err());
        assert!(Caller::Open.read_all().is_ok() && Caller::Open.report_as("x").is_ok());
    }

    #[test]
    fn tokens_are_checked_by_hash_and_the_list_is_re_read() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path()).unwrap();
        assert_eq!(access.caller(None, None).unwrap(), Caller::Open);
        let token = new_token();
        let file = AccessFile {
            grants: vec![Grant {
                sha256: hash_token(&token),
                san: None,
                party: "vendor".into(),
                role: Role::Reporter,
                label: String::new(),
            }],
        };
        file.store(dir.path()).unwrap();
        let stored = std::fs::read_to_string(AccessFile::path(dir.path())).unwrap();
        assert!(!stored.contains(&token), "the token itself is never stored");
        let bearer = format!("Bearer {token}");
        assert_eq!(
            access.caller(Some(bearer.as_bytes()), None).unwrap(),
            granted("vendor", Role::Reporter)
        );
        assert!(matches!(
            access.caller(None, None),
            Err(AnswerError::Unauthenticated(_))
        ));
        assert!(access.caller(Some(b"Bearer clt_00"), None).is_err());
        assert!(
            access.caller(Some(token.as_bytes()), None).is_err(),
            "no scheme"
        );
        let lower = format!("bearer {token}");
        assert!(access.caller(Some(lower.as_bytes()), None).is_ok());
        let basic = format!("Basic {token}");
        assert!(access.caller(Some(basic.as_bytes()), None).is_err());
        // Revoked: the list changes, and the next request sees it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        AccessFile::default().store(dir.path()).unwrap();
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        let f = std::fs::File::options()
            .write(true)
            .open(AccessFile::path(dir.path()))
            .unwrap();
        f.set_modified(t).unwrap();
        assert!(access.caller(Some(bearer.as_bytes()), None).is_err());
        // A list that does not parse keeps the last one.
        std::fs::write(AccessFile::path(dir.path()), "{").unwrap();
        f.set_modified(t + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(access.caller(None, None).is_err(), "still closed");
    }

    #[test]
    fn a_certificate_name_on_the_list_grants_its_role_and_a_token_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let token = new_token();
        AccessFile {
            grants: vec![
                Grant {
                    sha256: String::new(),
                    san: Some("spiffe://vendor.example/backup".into()),
                    party: "vendor".into(),
                    role: Role::Reporter,
                    label: String::new(),
                },
                Grant {
                    sha256: hash_token(&token),
                    san: None,
                    party: "auditor-1".into(),
                    role: Role::Auditor,
                    label: String::new(),
                },
            ],
        }
        .store(dir.path())
        .unwrap();
        let access = Access::open(dir.path()).unwrap();
        let peer = |names: &[&str]| crate::tls::Peer {
            addr: None,
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        let vendor = peer(&["dns:other.example", "uri:spiffe://vendor.example/backup"]);
        assert_eq!(
            access.caller(None, Some(&vendor)).unwrap(),
            granted("vendor", Role::Reporter)
        );
        let bearer = format!("Bearer {token}");
        assert_eq!(
            access
                .caller(Some(bearer.as_bytes()), Some(&vendor))
                .unwrap(),
            granted("auditor-1", Role::Auditor),
            "a token, when sent, is what counts"
        );
        let Err(AnswerError::Unauthenticated(m)) =
            access.caller(None, Some(&peer(&["dns:stranger"])))
        else {
            panic!("an unlisted name is refused");
        };
        assert!(m.contains("\"dns:stranger\"") && m.contains("--san"), "{m}");
        // A certificate naming two bound parties acts for neither.
        let both = peer(&["uri:spiffe://vendor.example/backup", "dns:auditor.example"]);
        let mut file = AccessFile::load(dir.path()).unwrap().unwrap();
        file.grants.push(Grant {
            sha256: String::new(),
            san: Some("auditor.example".into()),
            party: "auditor-1".into(),
            role: Role::Auditor,
            label: String::new(),
        });
        file.store(dir.path()).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(AccessFile::path(dir.path()))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(
            matches!(
                access.caller(None, Some(&both)),
                Err(AnswerError::Unauthenticated(m)) if m.contains("different parties")
            ),
            "two parties in one certificate"
        );
        // The same text as a URI is not the DNS name, nor the other way.
        assert!(access
            .caller(None, Some(&peer(&["dns:spiffe://vendor.example/backup"])))
            .is_err());
        // An empty sha256 never matches a token: the empty token's hash
        // is not empty.
        assert!(access.caller(Some(b"Bearer "), None).is_err());
    }
}
