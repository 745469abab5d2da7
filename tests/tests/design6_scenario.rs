//! DESIGN §6 on one border-crossing scenario, checked against a model of
//! the rules written here, from the product brief, not from the server's
//! code or the demo generator.
//!
//! The scenario (times are hours:minutes after a start S, 61 hours before
//! the test runs; every event carries its own event time): an agency (the
//! data owner) owns a camera lane (`lane-1`, operated by its DEVICE
//! `lane-cam`) and storage (`agency-store`, operated by its SOFTWARE
//! `storage-svc`). A PRIME works for the agency, a SUBCONTRACTOR (`subco`)
//! for the prime, a PARTNER for the agency. The subcontractor owns a USB
//! stick (removable, outside the boundary) with a SOFTWARE gateway
//! `usb-gw` acting for it, and its own network (outside the boundary).
//! The camera captures citizens' and non-citizens' face and plate images
//! (two of them as one manifest, one reported three days late); it copies
//! them to storage, acknowledged by the storage service, except one. During
//! a maintenance session the camera observes the subcontractor copy two
//! images to the USB stick; the gateway copies the stick's contents on to
//! the network as itself, and an image the log never showed on the stick.
//! The partner gets a covered transfer under its grant, copies onward
//! against `max_onward_transfers` 0, reads for its purpose and uses for
//! training; the prime pulls a plate image under a face-only grant, and
//! copies after its grant expired. Retention: citizens' faces 12 h from
//! capture (one image deleted on time, one late at S+31h, one never), the
//! partner's system 24 h from custody start, plates 20 h from capture
//! (published only at S+32h). A legal hold by manifest is placed early on
//! storage; a hold on one image is placed late (S+33h) and released at
//! S+55h. The subcontractor attests its stick (S+20h) and network
//! (S+33h); the partner once; the prime never. The partner's sequence
//! numbers skip.
//!
//! The model (`Model`) reads only the events this test submitted, with the
//! indexes the server returned and this test's own clock around each
//! append, and evaluates, as of T (the log read up to T by event time),
//! the rules as this project reads DESIGN §6:
//! - unauthorized_transfer, on each COPY/MOVE at index i (party = actor,
//!   system = to_system, asset = the single digest or none for a manifest,
//!   at = event time): skipped if the destination's owner is the data
//!   owner and the actor is not a vendor (a party whose acts_on_behalf_of
//!   chain, itself included, has a PRIME, SUBCONTRACTOR or PARTNER).
//!   Otherwise: no grant named → [i]; grant never issued → [i]; grant
//!   revoked before i → [i, issued, revoked]; else [i, issued] when the
//!   first failing check, in this order, is: recipient (destination owner)
//!   is not the grantee or a party acting for it; action not in non-empty
//!   actions; destination not in non-empty systems; purpose not in
//!   non-empty purposes; event time outside [valid_from, valid_to); then
//!   for each asset's class, modality not in non-empty modalities or
//!   subject class not in non-empty subject_classes → [i, issued, entry
//!   that created that asset] with asset = that asset; then
//!   max_onward_transfers 0 and the source system's owner is a vendor.
//! - boundary_violation on COPY/MOVE whose destination is outside the
//!   boundary, unaccredited, unencrypted or removable: [i, its
//!   SYSTEM_REGISTERED], party actor, system destination.
//! - retention_overdue: each custody interval (asset on system, opened by
//!   CAPTURE/COPY/MOVE at its event time, closed by DELETE/MOVE-from at
//!   that event's time) open at T, under the rule with the smallest
//!   max_age among rules published (event time) by T that select the
//!   asset's class (and system, if the rule names one); due = capture
//!   time plus max_age (clock CAPTURE) or interval start plus max_age
//!   (CUSTODY_START);
//!   a finding if due < T unless a legal hold placed by T and not released
//!   by T names the system (if it names one) and the asset (digest or
//!   manifest member, if it names assets). [creating entry if not the
//!   opening one, opening entry, rule's entry]; party = system owner;
//!   at = due.
//! - unacknowledged_transfer: a COPY/MOVE whose receipt (event time <= T)
//!   is missing or after due = transfer time + receipt window, when
//!   due < T: [i] or [i, receipt]; party actor; system destination;
//!   at = due.
//! - purpose_drift: ACCESS/USE with a purpose, by a vendor with no grant,
//!   or with a grant whose non-empty purposes omit it: [i] or
//!   [i, issued]; party actor; system from_system; at = event time.
//! - missing_attestation: per system first given custody (in log order)
//!   to a party other than the data owner, since = that interval's start:
//!   last = latest CUSTODY_ATTESTATION of the system with event time <= T,
//!   else since; a finding if last + period < T: [since entry] or
//!   [since entry, that attestation]; party the holder; at = last + period.
//! - late_reporting: integrated time − event time > the reporting
//!   deadline: [i]; party the reporter; at = event time + deadline (the
//!   deadline that passed, as `Finding.at` is documented in log.proto).
//! - sequence_gap: reporter_seq s != 0 and s > last + 1, last being the
//!   reporter's highest earlier number (checked: none after u64::MAX):
//!   [i]; party the reporter; at = event time.
//! - unexplained_custody: a COPY/MOVE from, or ACCESS/USE on, a system
//!   where the asset has no open interval: one finding per (asset, system)
//!   of the event: [i]; party actor; at = event time.
//!
//! Findings about an entry that reported another party's action as
//! observed (DESIGN §3) carry observed_by (the reporter) and
//! observed_on_system (the first of its from/to systems the reporter
//! owns or operates). Immediate findings count as of T when at <= T.
//!
//! The server's findings (the `Findings` RPC, every page) are compared
//! with the model's as of several times as multisets of (rule, entries,
//! party, system, asset, observed_by, observed_on_system, at, and the
//! grant or retention rule for the rules about one), then `custody inspect
//! findings --verify --json` (its evidence checked offline) and `custody
//! audit` (a full replay from the tiles) must agree as well. Every
//! disagreement is collected and reported together at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use custody_domain::{hex, parse_rfc3339, rfc3339};
use custody_e2e::{custody, event, inspect_json, key_added, now, signed, system_registered, Log};
use custody_log::LogVerifier;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use custody_proto::v1::{Modality, PartyKind, Purpose, SubjectClass};
use ed25519_dalek::SigningKey;
use prost::Message as _;
use serde_json::Value;
use tonic::transport::Channel;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;

/// The agreed windows the log publishes (POLICY_PUBLISHED), its first
/// entry after genesis; the model starts from the defaults and reads them
/// from the log, as the server and `custody audit` do.
const RECEIPT_WINDOW_SECS: i64 = 3600;
/// 72 h: every event of the scenario is reported within it (the oldest,
/// at S−1h, about 62 h after it happened), except the one reported late.
const REPORTING_DEADLINE_SECS: i64 = 72 * 3600;
const ATTESTATION_PERIOD_SECS: i64 = 24 * 3600;

// Parties.
const PRIME: &str = "prime";
const SUB: &str = "subco";
const PARTNER: &str = "partner";
const CAM: &str = "lane-cam";
const STORE_SVC: &str = "storage-svc";
const GW: &str = "usb-gw";

// Systems.
const LANE: &str = "lane-1";
const STORE: &str = "agency-store";
const PRIME_SYS: &str = "prime-sys";
const PARTNER_SYS: &str = "partner-sys";
const ARCHIVE: &str = "partner-archive";
const USB: &str = "subco-usb";
const NET: &str = "subco-net";

// Grants and retention rules.
const G_PRIME: &str = "G-PRIME-FACE";
const G_PARTNER: &str = "G-PARTNER";
const G_SUB: &str = "G-SUB-MAINT";
const RR_CIT: &str = "RR-CIT-FACE";
const RR_PARTNER: &str = "RR-PARTNER";
const RR_PLATE: &str = "RR-PLATE";

type Digest = [u8; 32];

// Assets, by what they are.
/// Citizen face, deleted on time everywhere.
const FC1: Digest = [0x11; 32];
/// Citizen face, deleted from storage late (S+31h).
const FC2: Digest = [0x12; 32];
/// Citizen face, never deleted; copied to the USB stick and the network.
const FC3: Digest = [0x13; 32];
/// Citizen face under the late legal hold.
const FC4: Digest = [0x14; 32];
/// Citizen faces captured as one manifest, held by manifest on storage.
const FC5: Digest = [0x15; 32];
const FC6: Digest = [0x16; 32];
/// Non-citizen face, transferred to the partner.
const FN1: Digest = [0x21; 32];
/// Citizen plate, pulled by the prime under its face-only grant.
const PC1: Digest = [0x31; 32];
/// Non-citizen plate, copied to the stick and to the partner.
const PN1: Digest = [0x32; 32];
/// Non-citizen plate captured at S−20h and reported late.
const LATE: Digest = [0x33; 32];

/// The rules, in the order the hand-derived table below lists them.
const RULES: [&str; 9] = [
    "unauthorized_transfer",
    "boundary_violation",
    "retention_overdue",
    "unexplained_custody",
    "unacknowledged_transfer",
    "purpose_drift",
    "missing_attestation",
    "late_reporting",
    "sequence_gap",
];

/// `HAND` is the count per rule (in [`RULES`] order) worked out by hand
/// from the scenario, as of S + the given hours: a check of the model
/// itself before the model checks the server.
const HAND: [(i64, [usize; 9]); 4] = [
    (12, [7, 4, 0, 2, 5, 3, 0, 0, 2]),
    (30, [7, 4, 9, 2, 5, 3, 1, 0, 2]),
    (34, [7, 4, 14, 2, 5, 3, 2, 0, 2]),
    (60, [8, 4, 17, 2, 5, 3, 5, 1, 2]),
];

type Client = CustodyLogClient<Channel>;

/// `Rec` is one event this test submitted, as it submitted it.
struct Rec {
    index: u64,
    event: v1::Event,
    /// This test's clock just before the append and just after its ack:
    /// the server's integrated time lies between.
    before: i64,
    after: i64,
}

/// `Asset` is what a custody event names: one digest or a manifest.
#[derive(Clone)]
enum Asset {
    One(Digest),
    Bulk(v1::Manifest),
}

impl Asset {
    fn on(&self, c: v1::CustodyAction) -> v1::CustodyAction {
        match self {
            Asset::One(d) => v1::CustodyAction {
                asset_digest: d.to_vec(),
                ..c
            },
            Asset::Bulk(m) => v1::CustodyAction {
                manifest: Some(m.clone()),
                ..c
            },
        }
    }
}

/// `World` is the running server and what was submitted to it.
struct World {
    log: Log,
    c: Client,
    keys: HashMap<String, SigningKey>,
    recs: Vec<Rec>,
    /// A short name for each submitted entry, for failure messages.
    labels: BTreeMap<u64, String>,
    /// Uploaded manifests: root → sorted members.
    manifests: HashMap<Vec<u8>, Vec<Digest>>,
}

impl World {
    /// `put` appends `e`, signed by its reporter's key; it must be
    /// accepted.
    async fn put(&mut self, label: &str, e: v1::Event) -> u64 {
        let key = self.keys[&e.reporter].clone();
        let before = now();
        let r = self
            .c
            .append(v1::AppendRequest {
                event: Some(signed(&e, &[&key])),
                wait_for_checkpoint: false,
            })
            .await
            .unwrap_or_else(|s| panic!("{label} was refused ({:?}): {}", s.code(), s.message()))
            .into_inner();
        let after = now();
        assert!(
            !r.duplicate,
            "{label}: a fresh event reported as a duplicate"
        );
        if let Some(last) = self.recs.last() {
            assert!(r.index > last.index, "{label}: indexes must grow");
        }
        self.labels.insert(r.index, label.to_owned());
        self.recs.push(Rec {
            index: r.index,
            event: e,
            before,
            after,
        });
        r.index
    }

    /// `registry` appends a registry event signed by the data owner.
    async fn registry(&mut self, label: &str, t: i64, body: Body) -> u64 {
        let owner = self.log.owner_id.clone();
        self.put(label, at(&owner, t, body)).await
    }

    /// `manifest` uploads `members` with PutManifest and returns the
    /// manifest the server stored.
    async fn manifest(&mut self, members: &[Digest]) -> v1::Manifest {
        let mut sorted = members.to_vec();
        sorted.sort();
        let m = self
            .c
            .put_manifest(tokio_stream::iter([v1::PutManifestRequest {
                members: sorted.iter().map(|d| d.to_vec()).collect(),
                expected_root: Vec::new(),
            }]))
            .await
            .expect("PutManifest")
            .into_inner()
            .manifest
            .expect("a manifest");
        assert_eq!(m.count, sorted.len() as u64);
        self.manifests.insert(m.root.clone(), sorted);
        m
    }

    /// `settle` waits until the signed checkpoint covers every entry.
    async fn settle(&mut self) -> u64 {
        let verifier = LogVerifier::new(&std::fs::read_to_string(&self.log.vkey).unwrap()).unwrap();
        let want = self.recs.last().map_or(1, |r| r.index + 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let note = self
                .c
                .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
                .await
                .unwrap()
                .into_inner()
                .checkpoint;
            let size = verifier.verify(&note).unwrap().size;
            if size >= want {
                assert_eq!(size, want, "the log holds entries this test did not submit");
                return size;
            }
            assert!(Instant::now() < deadline, "no checkpoint covers the log");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `at` is an event by `reporter` at event time `t`, with no sequence
/// number.
fn at(reporter: &str, t: i64, body: Body) -> v1::Event {
    let mut e = event(reporter, body);
    e.event_time_unix_nanos = t;
    e.reporter_seq = 0;
    e
}

fn seq(mut e: v1::Event, s: u64) -> v1::Event {
    e.reporter_seq = s;
    e
}

fn party(id: &str, kind: PartyKind, principal: &str) -> Body {
    Body::PartyRegistered(v1::PartyRegistered {
        party_id: id.into(),
        kind: kind as i32,
        acts_on_behalf_of: principal.into(),
    })
}

fn act(kind: K, actor: &str) -> v1::CustodyAction {
    v1::CustodyAction {
        action: kind as i32,
        actor: actor.into(),
        ..Default::default()
    }
}

fn capture(asset: &Asset, modality: Modality, class: SubjectClass) -> Body {
    custody_body(asset.on(v1::CustodyAction {
        to_system: LANE.into(),
        modality: modality as i32,
        subject_class: class as i32,
        ..act(K::Capture, CAM)
    }))
}

fn transfer(
    kind: K,
    actor: &str,
    asset: &Asset,
    from: &str,
    to: &str,
    grant: &str,
    purpose: Purpose,
) -> Body {
    custody_body(asset.on(v1::CustodyAction {
        from_system: from.into(),
        to_system: to.into(),
        grant_id: grant.into(),
        purpose: purpose as i32,
        ..act(kind, actor)
    }))
}

fn copy(actor: &str, asset: &Asset, from: &str, to: &str, grant: &str, purpose: Purpose) -> Body {
    transfer(K::Copy, actor, asset, from, to, grant, purpose)
}

fn receipt(actor: &str, of: u64) -> Body {
    custody_body(v1::CustodyAction {
        receipt_of: of,
        ..act(K::Receipt, actor)
    })
}

fn delete(actor: &str, asset: Digest, from: &str) -> Body {
    custody_body(v1::CustodyAction {
        asset_digest: asset.to_vec(),
        from_system: from.into(),
        delete_method: v1::DeleteMethod::CryptoErase as i32,
        ..act(K::Delete, actor)
    })
}

fn read(kind: K, actor: &str, asset: &Asset, on: &str, grant: &str, purpose: Purpose) -> Body {
    custody_body(asset.on(v1::CustodyAction {
        from_system: on.into(),
        grant_id: grant.into(),
        purpose: purpose as i32,
        ..act(kind, actor)
    }))
}

fn custody_body(c: v1::CustodyAction) -> Body {
    Body::Custody(c)
}

fn attest(system: &str, holdings: Option<v1::Manifest>) -> Body {
    Body::CustodyAttestation(v1::CustodyAttestation {
        system_id: system.into(),
        holdings,
    })
}

fn hold(id: &str, assets: Asset, system: &str, released: bool) -> Body {
    Body::LegalHold(v1::LegalHold {
        hold_id: id.into(),
        assets: Some(v1::AssetRef {
            r#ref: Some(match assets {
                Asset::One(d) => v1::asset_ref::Ref::Digest(d.to_vec()),
                Asset::Bulk(m) => v1::asset_ref::Ref::Manifest(m),
            }),
        }),
        system_id: system.into(),
        released,
    })
}

/// `Row` is one finding, as compared: empty strings for "none"; `grant`
/// only for the rules about a grant (unauthorized_transfer,
/// purpose_drift), `retention_rule` only for retention_overdue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    rule: String,
    entries: Vec<u64>,
    party: String,
    system: String,
    asset: Vec<u8>,
    observed_by: String,
    observed_on: String,
    at: i64,
    grant: String,
    retention_rule: String,
}

impl Row {
    fn new(rule: &str, entries: Vec<u64>, party: &str, at: i64) -> Self {
        Self {
            rule: rule.into(),
            entries,
            party: party.into(),
            system: String::new(),
            asset: Vec::new(),
            observed_by: String::new(),
            observed_on: String::new(),
            at,
            grant: String::new(),
            retention_rule: String::new(),
        }
    }

    fn system(mut self, s: &str) -> Self {
        self.system = s.into();
        self
    }

    fn asset(mut self, a: Option<Digest>) -> Self {
        self.asset = a.map(|d| d.to_vec()).unwrap_or_default();
        self
    }

    fn observed(mut self, o: &Option<(String, String)>) -> Self {
        if let Some((by, on)) = o {
            self.observed_by = by.clone();
            self.observed_on = on.clone();
        }
        self
    }

    fn from_proto(f: &v1::Finding) -> Self {
        let grant_rule = matches!(f.rule.as_str(), "unauthorized_transfer" | "purpose_drift");
        Self {
            rule: f.rule.clone(),
            entries: f.entries.clone(),
            party: f.party.clone(),
            system: f.system_id.clone(),
            asset: f.asset.clone(),
            observed_by: f.observed_by.clone(),
            observed_on: f.observed_on_system.clone(),
            at: f.at_unix_nanos,
            grant: if grant_rule {
                f.grant_id.clone()
            } else {
                String::new()
            },
            retention_rule: if f.rule == "retention_overdue" {
                f.retention_rule_id.clone()
            } else {
                String::new()
            },
        }
    }

    /// `from_json` reads a row of `custody inspect findings --json`.
    fn from_json(f: &Value) -> Self {
        let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
        let rule = s("rule");
        let grant_rule = matches!(rule.as_str(), "unauthorized_transfer" | "purpose_drift");
        let none = |v: String| if v == "none" { String::new() } else { v };
        Self {
            entries: f["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_u64().unwrap())
                .collect(),
            party: s("party"),
            system: s("system"),
            asset: f["asset"].as_str().map(decode_hex).unwrap_or_default(),
            observed_by: s("observed_by"),
            observed_on: s("observed_on_system"),
            at: parse_rfc3339(f["at"].as_str().unwrap()).unwrap(),
            grant: if grant_rule {
                none(s("grant"))
            } else {
                String::new()
            },
            retention_rule: if rule == "retention_overdue" {
                none(s("retention_rule"))
            } else {
                String::new()
            },
            rule,
        }
    }
}

fn decode_hex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// `Names` renders rows for humans: entries by label, assets by name,
/// times relative to S.
struct Names<'a> {
    labels: &'a BTreeMap<u64, String>,
    assets: BTreeMap<Vec<u8>, &'static str>,
    s0: i64,
}

impl Names<'_> {
    fn rel(&self, t: i64) -> String {
        let d = t - self.s0;
        let sign = if d < 0 { "-" } else { "+" };
        let d = d.abs();
        format!("S{sign}{}h{:02}", d / HOUR, (d % HOUR) / MIN)
    }

    fn row(&self, r: &Row) -> String {
        let entries: Vec<String> = r
            .entries
            .iter()
            .map(|e| match self.labels.get(e) {
                Some(l) => format!("{e} ({l})"),
                None => e.to_string(),
            })
            .collect();
        let asset = if r.asset.is_empty() {
            "-".to_owned()
        } else {
            self.assets
                .get(&r.asset)
                .map_or_else(|| hex(&r.asset), |n| (*n).to_owned())
        };
        let mut s = format!(
            "{} party={} system={} asset={} at={} entries=[{}]",
            r.rule,
            r.party,
            if r.system.is_empty() { "-" } else { &r.system },
            asset,
            self.rel(r.at),
            entries.join(", ")
        );
        if !r.observed_by.is_empty() || !r.observed_on.is_empty() {
            s += &format!(" observed_by={} on={}", r.observed_by, r.observed_on);
        }
        if !r.grant.is_empty() {
            s += &format!(" grant={}", r.grant);
        }
        if !r.retention_rule.is_empty() {
            s += &format!(" rule={}", r.retention_rule);
        }
        s
    }
}

/// `diff` compares two multisets of rows and describes every difference,
/// per rule.
fn diff(what: &str, names: &Names, want: &[Row], got: &[Row]) -> Vec<String> {
    let count = |rows: &[Row]| {
        let mut m: BTreeMap<Row, usize> = BTreeMap::new();
        for r in rows {
            *m.entry(r.clone()).or_default() += 1;
        }
        m
    };
    let (w, g) = (count(want), count(got));
    let mut out = Vec::new();
    for rule in RULES {
        let n = |rows: &[Row]| rows.iter().filter(|r| r.rule == rule).count();
        let mut lines = Vec::new();
        for (r, k) in &w {
            if r.rule == rule && g.get(r).copied().unwrap_or(0) < *k {
                lines.push(format!("    expected, not served: {}", names.row(r)));
            }
        }
        for (r, k) in &g {
            if r.rule == rule && w.get(r).copied().unwrap_or(0) < *k {
                lines.push(format!("    served, not expected: {}", names.row(r)));
            }
        }
        if !lines.is_empty() {
            out.push(format!(
                "{what}: {rule}: expected {}, got {}\n{}",
                n(want),
                n(got),
                lines.join("\n")
            ));
        }
    }
    for r in got {
        if !RULES.contains(&r.rule.as_str()) {
            out.push(format!("{what}: a finding of an unknown rule: {r:?}"));
        }
    }
    out
}

/// `Model` evaluates DESIGN §6, as the module documentation states it,
/// over the events this test submitted.
struct Model {
    owner: String,
    receipt_window: i64,
    deadline: i64,
    period: i64,
    /// The POLICY_PUBLISHED entry the windows come from (none: the
    /// defaults). A time-based finding cites it last. The scenario
    /// publishes one policy, first, so every later entry is judged by it.
    policy_entry: Option<u64>,
    /// party → (kind, acts_on_behalf_of).
    parties: HashMap<String, (i32, String)>,
    /// system → (registration, its index).
    systems: HashMap<String, (v1::SystemRegistered, u64)>,
    /// grant → (grant, issued at, revoked at).
    grants: HashMap<String, (v1::GrantIssued, u64, Option<u64>)>,
    /// (rule, index, event time).
    rules: Vec<(v1::RetentionRulePublished, u64, i64)>,
    /// hold → (system, the assets it names (None: all), placed time,
    /// released time).
    holds: HashMap<String, ModelHold>,
    manifests: HashMap<Vec<u8>, Vec<Digest>>,
    /// asset → (modality, subject class, created by, created at).
    meta: HashMap<Digest, (i32, i32, u64, i64)>,
    intervals: Vec<ModelInterval>,
    open: HashMap<(Digest, String), usize>,
    transfers: BTreeMap<u64, ModelTransfer>,
    /// system → (holder, since, since entry): first custody by a party
    /// other than the data owner.
    custody_since: BTreeMap<String, (String, i64, u64)>,
    /// (system, event time, index).
    attestations: Vec<(String, i64, u64)>,
    seqs: HashMap<String, u64>,
    immediate: Vec<Row>,
}

struct ModelHold {
    system: String,
    assets: Option<HashSet<Digest>>,
    placed: i64,
    released: Option<i64>,
}

struct ModelInterval {
    asset: Digest,
    system: String,
    party: String,
    from: i64,
    to: Option<i64>,
    opened_by: u64,
}

struct ModelTransfer {
    at: i64,
    party: String,
    system: String,
    asset: Option<Digest>,
    observed: Option<(String, String)>,
    receipt: Option<(i64, u64)>,
}

impl Model {
    fn new(owner: &str, manifests: &HashMap<Vec<u8>, Vec<Digest>>) -> Self {
        let mut parties = HashMap::new();
        parties.insert(owner.to_owned(), (PartyKind::Agency as i32, String::new()));
        Self {
            owner: owner.to_owned(),
            // A log's policy before it publishes one (DESIGN §6).
            receipt_window: HOUR,
            deadline: HOUR,
            period: 24 * HOUR,
            policy_entry: None,
            parties,
            systems: HashMap::new(),
            grants: HashMap::new(),
            rules: Vec::new(),
            holds: HashMap::new(),
            manifests: manifests.clone(),
            meta: HashMap::new(),
            intervals: Vec::new(),
            open: HashMap::new(),
            transfers: BTreeMap::new(),
            custody_since: BTreeMap::new(),
            attestations: Vec::new(),
            seqs: HashMap::new(),
            immediate: Vec::new(),
        }
    }

    /// `chain` is `p` and every party it acts for, up to the data owner.
    fn chain(&self, p: &str) -> Vec<String> {
        let mut out = vec![p.to_owned()];
        let mut at = p.to_owned();
        while let Some((_, up)) = self.parties.get(&at) {
            if up.is_empty() || out.len() > 64 {
                break;
            }
            out.push(up.clone());
            at = up.clone();
        }
        out
    }

    fn acts_for(&self, agent: &str, principal: &str) -> bool {
        self.chain(agent).iter().any(|p| p == principal)
    }

    fn kind(&self, p: &str) -> i32 {
        self.parties.get(p).map_or(0, |(k, _)| *k)
    }

    fn is_vendor(&self, p: &str) -> bool {
        let vendor = [
            PartyKind::Prime,
            PartyKind::Subcontractor,
            PartyKind::Partner,
        ]
        .map(|k| k as i32);
        self.chain(p).iter().any(|q| vendor.contains(&self.kind(q)))
    }

    fn owner_of(&self, system: &str) -> String {
        self.systems[system].0.owner_party.clone()
    }

    fn operates(&self, p: &str, system: &str) -> bool {
        let owner = self.owner_of(system);
        let agent = [PartyKind::Device, PartyKind::Software].map(|k| k as i32);
        p == owner || (agent.contains(&self.kind(p)) && self.acts_for(p, &owner))
    }

    /// `observed` is (reporter, system) when `reporter` reports `actor`'s
    /// action as the owner or operator of one of its systems.
    fn observed(&self, reporter: &str, actor: &str, systems: &[&str]) -> Option<(String, String)> {
        if self.acts_for(actor, reporter) {
            return None;
        }
        let on = systems
            .iter()
            .find(|s| !s.is_empty() && self.operates(reporter, s))
            .unwrap_or_else(|| panic!("{reporter} may not report {actor}'s action on {systems:?}"));
        Some((reporter.to_owned(), (*on).to_owned()))
    }

    fn assets_of(&self, c: &v1::CustodyAction) -> Vec<Digest> {
        if !c.asset_digest.is_empty() {
            vec![c.asset_digest.as_slice().try_into().unwrap()]
        } else {
            let m = c.manifest.as_ref().expect("an asset or a manifest");
            self.manifests[&m.root].clone()
        }
    }

    fn open_interval(&mut self, asset: Digest, system: &str, t: i64, index: u64) {
        let key = (asset, system.to_owned());
        if self.open.contains_key(&key) {
            return;
        }
        let party = self.owner_of(system);
        self.open.insert(key, self.intervals.len());
        if party != self.owner && !self.custody_since.contains_key(system) {
            self.custody_since
                .insert(system.to_owned(), (party.clone(), t, index));
        }
        self.intervals.push(ModelInterval {
            asset,
            system: system.to_owned(),
            party,
            from: t,
            to: None,
            opened_by: index,
        });
    }

    fn close_interval(&mut self, asset: Digest, system: &str, t: i64) {
        if let Some(k) = self.open.remove(&(asset, system.to_owned())) {
            self.intervals[k].to = Some(t);
        }
    }

    /// `observe` takes the submitted events in log order.
    fn observe(&mut self, r: &Rec) {
        let (i, e) = (r.index, &r.event);
        let t = e.event_time_unix_nanos;
        // Late reporting, from this test's own clock around the append.
        let late = r.before - t > self.deadline;
        assert_eq!(
            late,
            r.after - t > self.deadline,
            "entry {i} is too close to the reporting deadline to say whether it is late"
        );
        if late {
            let mut entries = vec![i];
            entries.extend(self.policy_entry);
            self.immediate.push(Row::new(
                "late_reporting",
                entries,
                &e.reporter,
                t + self.deadline,
            ));
        }
        if e.reporter_seq != 0 {
            let last = self.seqs.get(&e.reporter).copied().unwrap_or(0);
            if last
                .checked_add(1)
                .is_some_and(|next| e.reporter_seq > next)
            {
                self.immediate
                    .push(Row::new("sequence_gap", vec![i], &e.reporter, t));
            }
            if e.reporter_seq > last {
                self.seqs.insert(e.reporter.clone(), e.reporter_seq);
            }
        }
        match e.body.as_ref().expect("a body") {
            // It applies to the entries after it (this one's lateness was
            // judged above by the policy before it).
            Body::PolicyPublished(p) => {
                self.receipt_window = p.receipt_window_nanos;
                self.deadline = p.reporting_deadline_nanos;
                self.period = p.attestation_period_nanos;
                self.policy_entry = Some(i);
            }
            Body::PartyRegistered(p) => {
                self.parties
                    .insert(p.party_id.clone(), (p.kind, p.acts_on_behalf_of.clone()));
            }
            Body::SystemRegistered(s) => {
                self.systems.insert(s.system_id.clone(), (s.clone(), i));
            }
            Body::GrantIssued(g) => {
                self.grants.insert(g.grant_id.clone(), (g.clone(), i, None));
            }
            Body::GrantRevoked(g) => {
                self.grants.get_mut(&g.grant_id).unwrap().2 = Some(i);
            }
            Body::RetentionRulePublished(rr) => self.rules.push((rr.clone(), i, t)),
            Body::LegalHold(h) => {
                if h.released {
                    self.holds.get_mut(&h.hold_id).unwrap().released = Some(t);
                } else {
                    let assets =
                        h.assets
                            .as_ref()
                            .and_then(|a| a.r#ref.as_ref())
                            .map(|r| match r {
                                v1::asset_ref::Ref::Digest(d) => {
                                    HashSet::from([<Digest>::try_from(d.as_slice()).unwrap()])
                                }
                                v1::asset_ref::Ref::Manifest(m) => {
                                    self.manifests[&m.root].iter().copied().collect()
                                }
                            });
                    self.holds.insert(
                        h.hold_id.clone(),
                        ModelHold {
                            system: h.system_id.clone(),
                            assets,
                            placed: t,
                            released: None,
                        },
                    );
                }
            }
            Body::CustodyAttestation(a) => self.attestations.push((a.system_id.clone(), t, i)),
            Body::Custody(c) => self.custody(i, t, &e.reporter, c),
            Body::KeyAdded(_) | Body::KeyRevoked(_) | Body::MaintenanceSession(_) => {}
        }
    }

    fn custody(&mut self, i: u64, t: i64, reporter: &str, c: &v1::CustodyAction) {
        let kind = K::try_from(c.action).unwrap();
        let single: Option<Digest> =
            (!c.asset_digest.is_empty()).then(|| c.asset_digest.as_slice().try_into().unwrap());
        match kind {
            K::Capture => {
                for d in self.assets_of(c) {
                    self.meta
                        .entry(d)
                        .or_insert((c.modality, c.subject_class, i, t));
                    self.open_interval(d, &c.to_system, t, i);
                }
            }
            K::Copy | K::Move => {
                let obs = self.observed(
                    reporter,
                    &c.actor,
                    &[c.from_system.as_str(), c.to_system.as_str()],
                );
                let assets = self.assets_of(c);
                self.unexplained(i, t, c, &assets, &obs);
                self.boundary(i, t, c, single, &obs);
                self.unauthorized(i, t, c, &assets, single, &obs);
                for d in assets {
                    self.open_interval(d, &c.to_system, t, i);
                    if kind == K::Move {
                        self.close_interval(d, &c.from_system, t);
                    }
                }
                self.transfers.insert(
                    i,
                    ModelTransfer {
                        at: t,
                        party: c.actor.clone(),
                        system: c.to_system.clone(),
                        asset: single,
                        observed: obs,
                        receipt: None,
                    },
                );
            }
            K::Receipt => {
                self.transfers.get_mut(&c.receipt_of).unwrap().receipt = Some((t, i));
            }
            K::Access | K::Use => {
                let obs = self.observed(reporter, &c.actor, &[c.from_system.as_str()]);
                let assets = self.assets_of(c);
                self.unexplained(i, t, c, &assets, &obs);
                self.purpose_drift(i, t, c, single, &obs);
            }
            K::Delete => {
                for d in self.assets_of(c) {
                    self.close_interval(d, &c.from_system, t);
                }
            }
            K::Derive | K::Unspecified => panic!("not in this scenario: {kind:?}"),
        }
    }

    fn unexplained(
        &mut self,
        i: u64,
        t: i64,
        c: &v1::CustodyAction,
        assets: &[Digest],
        obs: &Option<(String, String)>,
    ) {
        let mut seen = BTreeSet::new();
        for d in assets {
            if !self.open.contains_key(&(*d, c.from_system.clone())) && seen.insert(*d) {
                self.immediate.push(
                    Row::new("unexplained_custody", vec![i], &c.actor, t)
                        .system(&c.from_system)
                        .asset(Some(*d))
                        .observed(obs),
                );
            }
        }
    }

    fn boundary(
        &mut self,
        i: u64,
        t: i64,
        c: &v1::CustodyAction,
        single: Option<Digest>,
        obs: &Option<(String, String)>,
    ) {
        let (s, registered) = &self.systems[&c.to_system];
        if !s.inside_boundary || !s.accredited || !s.encrypted_at_rest || s.removable_media {
            self.immediate.push(
                Row::new("boundary_violation", vec![i, *registered], &c.actor, t)
                    .system(&c.to_system)
                    .asset(single)
                    .observed(obs),
            );
        }
    }

    fn unauthorized(
        &mut self,
        i: u64,
        t: i64,
        c: &v1::CustodyAction,
        assets: &[Digest],
        single: Option<Digest>,
        obs: &Option<(String, String)>,
    ) {
        let recipient = self.owner_of(&c.to_system);
        if recipient == self.owner && !self.is_vendor(&c.actor) {
            return;
        }
        let mut entries = vec![i];
        let mut asset = single;
        let uncovered = if c.grant_id.is_empty() {
            true
        } else {
            match self.grants.get(&c.grant_id) {
                None => true,
                Some((g, issued, revoked)) => {
                    entries.push(*issued);
                    let source_owner = self.owner_of(&c.from_system);
                    let valid_to = (g.valid_to_unix_nanos != 0).then_some(g.valid_to_unix_nanos);
                    if let Some(r) = revoked.filter(|r| *r < i) {
                        entries.push(r);
                        true
                    } else if !self.acts_for(&recipient, &g.grantee)
                        || (!g.actions.is_empty() && !g.actions.contains(&c.action))
                        || (!g.systems.is_empty() && !g.systems.contains(&c.to_system))
                        || (!g.purposes.is_empty() && !g.purposes.contains(&c.purpose))
                        || t < g.valid_from_unix_nanos
                        || valid_to.is_some_and(|to| t >= to)
                    {
                        true
                    } else if let Some(d) = assets.iter().find(|d| {
                        let (m, s, _, _) = self.meta[*d];
                        (!g.modalities.is_empty() && !g.modalities.contains(&m))
                            || (!g.subject_classes.is_empty() && !g.subject_classes.contains(&s))
                    }) {
                        entries.push(self.meta[d].2);
                        asset = Some(*d);
                        true
                    } else {
                        g.max_onward_transfers == 0 && self.is_vendor(&source_owner)
                    }
                }
            }
        };
        if uncovered {
            let mut row = Row::new("unauthorized_transfer", entries, &c.actor, t)
                .system(&c.to_system)
                .asset(asset)
                .observed(obs);
            row.grant = c.grant_id.clone();
            self.immediate.push(row);
        }
    }

    fn purpose_drift(
        &mut self,
        i: u64,
        t: i64,
        c: &v1::CustodyAction,
        single: Option<Digest>,
        obs: &Option<(String, String)>,
    ) {
        if c.purpose == 0 {
            return;
        }
        let entries = if c.grant_id.is_empty() {
            if !self.is_vendor(&c.actor) {
                return;
            }
            vec![i]
        } else {
            match self.grants.get(&c.grant_id) {
                None => vec![i],
                Some((g, issued, _)) => {
                    if g.purposes.is_empty() || g.purposes.contains(&c.purpose) {
                        return;
                    }
                    vec![i, *issued]
                }
            }
        };
        let mut row = Row::new("purpose_drift", entries, &c.actor, t)
            .system(&c.from_system)
            .asset(single)
            .observed(obs);
        row.grant = c.grant_id.clone();
        self.immediate.push(row);
    }

    /// `findings` is every finding as of `as_of`, sorted.
    fn findings(&self, as_of: i64) -> Vec<Row> {
        let mut out: Vec<Row> = self
            .immediate
            .iter()
            .filter(|r| r.at <= as_of)
            .cloned()
            .collect();

        for iv in &self.intervals {
            if iv.from > as_of || iv.to.is_some_and(|to| to <= as_of) {
                continue;
            }
            let (m, s, created_by, created_at) = self.meta[&iv.asset];
            let rule = self
                .rules
                .iter()
                .filter(|(r, _, published)| {
                    *published <= as_of
                        && (r.system_id.is_empty() || r.system_id == iv.system)
                        && (r.modality == 0 || r.modality == m)
                        && (r.subject_class == 0 || r.subject_class == s)
                })
                .min_by_key(|(r, _, _)| (r.max_age_nanos, r.rule_id.clone()));
            let Some((rule, rule_index, _)) = rule else {
                continue;
            };
            let start = match v1::RetentionClock::try_from(rule.clock).unwrap() {
                v1::RetentionClock::Capture => created_at,
                v1::RetentionClock::CustodyStart => iv.from,
                v1::RetentionClock::Unspecified => panic!("every rule here sets its clock"),
            };
            let due = start + rule.max_age_nanos;
            if due >= as_of {
                continue;
            }
            let held = self.holds.values().any(|h| {
                h.placed <= as_of
                    && h.released.is_none_or(|r| r > as_of)
                    && (h.system.is_empty() || h.system == iv.system)
                    && h.assets.as_ref().is_none_or(|a| a.contains(&iv.asset))
            });
            if held {
                continue;
            }
            let mut entries = vec![iv.opened_by, *rule_index];
            if created_by != iv.opened_by {
                entries.insert(0, created_by);
            }
            let mut row = Row::new("retention_overdue", entries, &iv.party, due)
                .system(&iv.system)
                .asset(Some(iv.asset));
            row.retention_rule = rule.rule_id.clone();
            out.push(row);
        }

        for (i, tr) in &self.transfers {
            let due = tr.at + self.receipt_window;
            if due >= as_of {
                continue;
            }
            let receipt = tr.receipt.filter(|(rt, _)| *rt <= as_of);
            if receipt.is_some_and(|(rt, _)| rt <= due) {
                continue;
            }
            let mut entries = vec![*i];
            entries.extend(receipt.map(|(_, ri)| ri));
            entries.extend(self.policy_entry);
            out.push(
                Row::new("unacknowledged_transfer", entries, &tr.party, due)
                    .system(&tr.system)
                    .asset(tr.asset)
                    .observed(&tr.observed),
            );
        }

        for (system, (holder, since, since_by)) in &self.custody_since {
            let latest = self
                .attestations
                .iter()
                .filter(|(s, t, _)| s == system && *t <= as_of)
                .max_by_key(|(_, t, i)| (*t, *i));
            let last = latest.map_or(*since, |(_, t, _)| *t);
            let due = last + self.period;
            if due >= as_of {
                continue;
            }
            let mut entries = vec![*since_by];
            entries.extend(latest.map(|(_, _, i)| *i));
            entries.extend(self.policy_entry);
            out.push(Row::new("missing_attestation", entries, holder, due).system(system));
        }
        out.sort();
        out
    }
}

/// `served` is every page of the server's findings as of `as_of`.
async fn served(q: &mut CustodyQueryClient<Channel>, as_of: i64) -> Vec<Row> {
    let mut token = Vec::new();
    let mut rows = Vec::new();
    loop {
        let r = q
            .findings(v1::FindingsRequest {
                as_of_unix_nanos: as_of,
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("Findings")
            .into_inner();
        rows.extend(r.findings.iter().map(Row::from_proto));
        token = r.next_page_token;
        if token.is_empty() {
            assert_eq!(rows.len() as u64, r.total, "every page read");
            break;
        }
    }
    rows.sort();
    rows
}

/// `audit` runs `custody audit --json` as of `as_of` against the running
/// server; it reads the policy from the log.
fn audit(log: &Log, as_of: i64) -> (Option<i32>, Value, String) {
    let as_of = rfc3339(as_of);
    let out = custody(&[
        "audit",
        "--url",
        &log.http,
        "--log-key",
        log.vkey.to_str().unwrap(),
        "--server",
        &log.grpc,
        "--compare",
        "all",
        "--as-of",
        &as_of,
        "--json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit printed no JSON ({e}): {err}"));
    (out.status.code(), json, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn design6_scenario_findings_match_an_independent_model() {
    let started = Instant::now();
    let mut log = Log::init();
    log.start();
    let c = log.client().await;
    // S, on a whole second so that RFC 3339 times are exact.
    let s0 = (now() / SEC - 61 * 3600) * SEC;
    let h = |hours: i64, mins: i64| s0 + hours * HOUR + mins * MIN;
    let owner = log.owner_id.clone();
    let mut keys = HashMap::new();
    keys.insert(owner.clone(), log.owner.clone());
    let mut w = World {
        log,
        c,
        keys,
        recs: Vec::new(),
        labels: BTreeMap::new(),
        manifests: HashMap::new(),
    };

    // The policy, published now; then the registry, an hour before S.
    w.registry(
        "policy",
        now(),
        Body::PolicyPublished(v1::PolicyPublished {
            receipt_window_nanos: RECEIPT_WINDOW_SECS * SEC,
            reporting_deadline_nanos: REPORTING_DEADLINE_SECS * SEC,
            attestation_period_nanos: ATTESTATION_PERIOD_SECS * SEC,
        }),
    )
    .await;
    let reg = h(-1, 0);
    for (id, kind, principal) in [
        (PRIME, PartyKind::Prime, owner.as_str()),
        (SUB, PartyKind::Subcontractor, PRIME),
        (PARTNER, PartyKind::Partner, owner.as_str()),
        (CAM, PartyKind::Device, owner.as_str()),
        (STORE_SVC, PartyKind::Software, owner.as_str()),
        (GW, PartyKind::Software, SUB),
    ] {
        w.registry(&format!("party {id}"), reg, party(id, kind, principal))
            .await;
        let key = SigningKey::generate(&mut rand_core::OsRng);
        w.registry(&format!("key of {id}"), reg, key_added(id, &key, 0, 0))
            .await;
        w.keys.insert(id.to_owned(), key);
    }
    for (id, owner_party, inside, removable) in [
        (LANE, owner.as_str(), true, false),
        (STORE, owner.as_str(), true, false),
        (PRIME_SYS, PRIME, true, false),
        (PARTNER_SYS, PARTNER, true, false),
        (ARCHIVE, PARTNER, true, false),
        (USB, SUB, false, true),
        (NET, SUB, false, false),
    ] {
        w.registry(
            &format!("system {id}"),
            reg,
            system_registered(id, owner_party, inside, removable),
        )
        .await;
    }
    let grant = |id: &str, grantee: &str, purposes: &[Purpose], systems: &[&str]| v1::GrantIssued {
        grant_id: id.into(),
        grantee: grantee.into(),
        contract_ref: format!("TO-{id}"),
        actions: vec![K::Copy as i32],
        purposes: purposes.iter().map(|p| *p as i32).collect(),
        systems: systems.iter().map(|s| s.to_string()).collect(),
        valid_from_unix_nanos: h(0, 0),
        valid_to_unix_nanos: h(48, 0),
        ..Default::default()
    };
    w.registry(
        "grant G-PRIME-FACE (faces only, to prime-sys, QA, S..S+48h)",
        reg,
        Body::GrantIssued(v1::GrantIssued {
            modalities: vec![Modality::FaceImage as i32],
            ..grant(G_PRIME, PRIME, &[Purpose::QualityAssurance], &[PRIME_SYS])
        }),
    )
    .await;
    w.registry(
        "grant G-PARTNER (non-citizens, partner systems, investigation, open-ended)",
        reg,
        Body::GrantIssued(v1::GrantIssued {
            subject_classes: vec![SubjectClass::NonCitizen as i32],
            valid_to_unix_nanos: 0,
            ..grant(
                G_PARTNER,
                PARTNER,
                &[Purpose::Investigation],
                &[PARTNER_SYS, ARCHIVE],
            )
        }),
    )
    .await;
    w.registry(
        "grant G-SUB-MAINT (to the USB stick, maintenance)",
        reg,
        Body::GrantIssued(grant(G_SUB, SUB, &[Purpose::Maintenance], &[USB])),
    )
    .await;
    let rule = |id: &str,
                authority: v1::RetentionAuthority,
                m: Modality,
                s: SubjectClass,
                system: &str,
                hours: i64,
                clock: v1::RetentionClock| {
        Body::RetentionRulePublished(v1::RetentionRulePublished {
            rule_id: id.into(),
            authority: authority as i32,
            authority_ref: format!("ref-{id}"),
            modality: m as i32,
            subject_class: s as i32,
            system_id: system.into(),
            max_age_nanos: hours * HOUR,
            clock: clock as i32,
        })
    };
    w.registry(
        "rule RR-CIT-FACE (citizens' faces, 12 h from capture)",
        reg,
        rule(
            RR_CIT,
            v1::RetentionAuthority::Sorn,
            Modality::FaceImage,
            SubjectClass::Citizen,
            "",
            12,
            v1::RetentionClock::Capture,
        ),
    )
    .await;
    w.registry(
        "rule RR-PARTNER (anything on partner-sys, 24 h from custody start)",
        reg,
        rule(
            RR_PARTNER,
            v1::RetentionAuthority::Pia,
            Modality::Unspecified,
            SubjectClass::Unspecified,
            PARTNER_SYS,
            24,
            v1::RetentionClock::CustodyStart,
        ),
    )
    .await;

    // Manifests: the bulk capture, what the gateway copies off the stick,
    // what the subcontractor reads on its network, what the partner holds.
    let m1 = w.manifest(&[FC5, FC6]).await;
    let m2 = w.manifest(&[FC3, PN1]).await;
    let m3 = w.manifest(&[FC1, FC3]).await;
    let m5 = w.manifest(&[FN1, PN1]).await;
    let one = Asset::One;

    // Captures on the lane.
    use Modality::{FaceImage as Face, PlateImage as Plate};
    use SubjectClass::{Citizen, NonCitizen};
    for (name, d, m, s, t) in [
        ("FC1", FC1, Face, Citizen, h(0, 0)),
        ("FC2", FC2, Face, Citizen, h(0, 6)),
        ("FC3", FC3, Face, Citizen, h(0, 12)),
        ("FC4", FC4, Face, Citizen, h(0, 18)),
        ("FN1", FN1, Face, NonCitizen, h(0, 24)),
        ("PC1", PC1, Plate, Citizen, h(0, 30)),
        ("PN1", PN1, Plate, NonCitizen, h(0, 36)),
    ] {
        w.put(
            &format!("capture {name}"),
            at(CAM, t, capture(&one(d), m, s)),
        )
        .await;
    }
    w.put(
        "bulk capture M1 {FC5, FC6}",
        at(
            CAM,
            h(0, 42),
            capture(&Asset::Bulk(m1.clone()), Face, Citizen),
        ),
    )
    .await;

    // The camera copies to storage; the storage service acknowledges each
    // a minute later, except FC4's.
    for (name, a, t) in [
        ("FC1", one(FC1), h(0, 45)),
        ("FC2", one(FC2), h(0, 48)),
        ("FN1", one(FN1), h(0, 51)),
        ("PC1", one(PC1), h(0, 54)),
        ("PN1", one(PN1), h(0, 57)),
        ("M1", Asset::Bulk(m1.clone()), h(1, 0)),
    ] {
        let x = w
            .put(
                &format!("X copy {name} lane→store"),
                at(
                    CAM,
                    t,
                    copy(CAM, &a, LANE, STORE, "", Purpose::BorderInspection),
                ),
            )
            .await;
        w.put(
            &format!("receipt of {name} on store"),
            at(STORE_SVC, t + MIN, receipt(STORE_SVC, x)),
        )
        .await;
    }
    w.put(
        "X7 copy FC4 lane→store, never acknowledged",
        at(
            CAM,
            h(1, 3),
            copy(CAM, &one(FC4), LANE, STORE, "", Purpose::BorderInspection),
        ),
    )
    .await;
    for (name, d, t) in [
        ("FC1", FC1, h(1, 10)),
        ("FC2", FC2, h(1, 12)),
        ("PC1", PC1, h(1, 14)),
    ] {
        w.put(
            &format!("delete {name} from lane"),
            at(CAM, t, delete(CAM, d, LANE)),
        )
        .await;
    }
    w.registry(
        "hold H-M1 (manifest M1 on agency-store, early)",
        h(2, 0),
        hold("H-M1", Asset::Bulk(m1.clone()), STORE, false),
    )
    .await;
    w.registry(
        "revoke G-SUB-MAINT",
        h(2, 10),
        Body::GrantRevoked(v1::GrantRevoked {
            grant_id: G_SUB.into(),
        }),
    )
    .await;

    // Maintenance: the camera reports what the subcontractor did on it.
    w.put(
        "U1 lane-cam observed subco COPY FC3 lane→usb (revoked grant)",
        at(
            CAM,
            h(3, 0),
            copy(SUB, &one(FC3), LANE, USB, G_SUB, Purpose::Maintenance),
        ),
    )
    .await;
    w.put(
        "U2 lane-cam observed subco COPY PN1 lane→usb (no grant)",
        at(
            CAM,
            h(3, 6),
            copy(SUB, &one(PN1), LANE, USB, "", Purpose::Maintenance),
        ),
    )
    .await;
    w.put(
        "maintenance session of subco on lane-1 (observed)",
        at(
            CAM,
            h(3, 30),
            Body::MaintenanceSession(v1::MaintenanceSession {
                session_id: "ms-lane-1".into(),
                actor: SUB.into(),
                on_behalf_of: PRIME.into(),
                system_id: LANE.into(),
                grant_id: G_SUB.into(),
                purpose: Purpose::Maintenance as i32,
                start_unix_nanos: h(2, 30),
                end_unix_nanos: h(3, 30),
            }),
        ),
    )
    .await;
    // The gateway copies the stick on to the network, as itself.
    let g1 = w
        .put(
            "G1 usb-gw COPY M2 {FC3, PN1} usb→net",
            at(
                GW,
                h(4, 0),
                copy(
                    GW,
                    &Asset::Bulk(m2.clone()),
                    USB,
                    NET,
                    "",
                    Purpose::Maintenance,
                ),
            ),
        )
        .await;
    w.put(
        "G2 usb-gw COPY FC4 usb→net (never on the stick; grant never issued)",
        at(
            GW,
            h(4, 30),
            copy(GW, &one(FC4), USB, NET, "G-FORGED", Purpose::Maintenance),
        ),
    )
    .await;
    w.put(
        "late receipt of G1 by usb-gw",
        at(GW, h(6, 0), receipt(GW, g1)),
    )
    .await;

    // The partner: a covered transfer, a wrong grant, an onward copy.
    let p1 = w
        .put(
            "P1 storage-svc COPY FN1 store→partner-sys (G-PARTNER, covered)",
            at(
                STORE_SVC,
                h(6, 0),
                copy(
                    STORE_SVC,
                    &one(FN1),
                    STORE,
                    PARTNER_SYS,
                    G_PARTNER,
                    Purpose::Investigation,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of P1 by partner (seq 1)",
        seq(at(PARTNER, h(6, 5), receipt(PARTNER, p1)), 1),
    )
    .await;
    let p2 = w
        .put(
            "P2 storage-svc COPY PN1 store→partner-sys (G-PRIME-FACE: wrong recipient)",
            at(
                STORE_SVC,
                h(6, 30),
                copy(
                    STORE_SVC,
                    &one(PN1),
                    STORE,
                    PARTNER_SYS,
                    G_PRIME,
                    Purpose::Investigation,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of P2 by partner (seq 2)",
        seq(at(PARTNER, h(6, 35), receipt(PARTNER, p2)), 2),
    )
    .await;
    let p3 = w
        .put(
            "P3 partner COPY FN1 partner-sys→archive (onward, max 0)",
            at(
                PARTNER,
                h(7, 0),
                copy(
                    PARTNER,
                    &one(FN1),
                    PARTNER_SYS,
                    ARCHIVE,
                    G_PARTNER,
                    Purpose::Investigation,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of P3 by partner (seq 4: gap)",
        seq(at(PARTNER, h(7, 5), receipt(PARTNER, p3)), 4),
    )
    .await;
    w.put(
        "partner ACCESS FN1 for investigation (seq 3)",
        seq(
            at(
                PARTNER,
                h(7, 30),
                read(
                    K::Access,
                    PARTNER,
                    &one(FN1),
                    PARTNER_SYS,
                    G_PARTNER,
                    Purpose::Investigation,
                ),
            ),
            3,
        ),
    )
    .await;
    w.put(
        "partner USE FN1 for training (seq u64::MAX: gap)",
        seq(
            at(
                PARTNER,
                h(7, 45),
                read(
                    K::Use,
                    PARTNER,
                    &one(FN1),
                    PARTNER_SYS,
                    G_PARTNER,
                    Purpose::Training,
                ),
            ),
            u64::MAX,
        ),
    )
    .await;

    // The prime: a plate under its face-only grant, then a covered face.
    let q1 = w
        .put(
            "Q1 prime COPY PC1 store→prime-sys (face-only grant)",
            at(
                PRIME,
                h(8, 0),
                copy(
                    PRIME,
                    &one(PC1),
                    STORE,
                    PRIME_SYS,
                    G_PRIME,
                    Purpose::QualityAssurance,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of Q1 by prime",
        at(PRIME, h(8, 5), receipt(PRIME, q1)),
    )
    .await;
    let q2 = w
        .put(
            "Q2 prime COPY FC2 store→prime-sys (covered)",
            at(
                PRIME,
                h(8, 30),
                copy(
                    PRIME,
                    &one(FC2),
                    STORE,
                    PRIME_SYS,
                    G_PRIME,
                    Purpose::QualityAssurance,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of Q2 by prime",
        at(PRIME, h(8, 35), receipt(PRIME, q2)),
    )
    .await;
    w.put(
        "prime deletes FC2 from prime-sys",
        at(PRIME, h(9, 0), delete(PRIME, FC2, PRIME_SYS)),
    )
    .await;

    // The subcontractor on its own network.
    w.put(
        "subco USE FC3 on net for training",
        at(
            SUB,
            h(9, 30),
            read(K::Use, SUB, &one(FC3), NET, "", Purpose::Training),
        ),
    )
    .await;
    w.put(
        "subco ACCESS M3 {FC1, FC3} on net (FC1 never there)",
        at(
            SUB,
            h(9, 45),
            read(
                K::Access,
                SUB,
                &Asset::Bulk(m3.clone()),
                NET,
                "",
                Purpose::Maintenance,
            ),
        ),
    )
    .await;

    // A capture from the day before, reported three days late, then moved
    // to storage.
    w.put(
        "capture LATE at S-20h (reported late)",
        at(CAM, h(-20, 0), capture(&one(LATE), Plate, NonCitizen)),
    )
    .await;
    let lm = w
        .put(
            "MOVE LATE lane→store",
            at(
                CAM,
                h(10, 0),
                transfer(
                    K::Move,
                    CAM,
                    &one(LATE),
                    LANE,
                    STORE,
                    "",
                    Purpose::BorderInspection,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of the MOVE by storage-svc",
        at(STORE_SVC, h(10, 1), receipt(STORE_SVC, lm)),
    )
    .await;
    w.put(
        "delete FC1 from store (on time)",
        at(STORE_SVC, h(11, 0), delete(STORE_SVC, FC1, STORE)),
    )
    .await;

    // Attestations, a late deletion, a late rule, a late hold.
    w.put(
        "subco attests subco-usb (M2)",
        at(SUB, h(20, 0), attest(USB, Some(m2.clone()))),
    )
    .await;
    w.put(
        "partner attests partner-sys (M5, seq 5)",
        seq(
            at(PARTNER, h(26, 0), attest(PARTNER_SYS, Some(m5.clone()))),
            5,
        ),
    )
    .await;
    w.put(
        "delete FC2 from store (late)",
        at(STORE_SVC, h(31, 0), delete(STORE_SVC, FC2, STORE)),
    )
    .await;
    w.registry(
        "rule RR-PLATE (plates, 20 h from capture, published S+32h)",
        h(32, 0),
        rule(
            RR_PLATE,
            v1::RetentionAuthority::RecordsSchedule,
            Plate,
            SubjectClass::Unspecified,
            "",
            20,
            v1::RetentionClock::Capture,
        ),
    )
    .await;
    w.registry(
        "hold H-FC4 (late)",
        h(33, 0),
        hold("H-FC4", one(FC4), "", false),
    )
    .await;
    w.put(
        "subco attests subco-net (nothing)",
        at(SUB, h(33, 0), attest(NET, None)),
    )
    .await;
    let q4 = w
        .put(
            "Q4 prime COPY FN1 store→prime-sys after G-PRIME-FACE expired",
            at(
                PRIME,
                h(50, 0),
                copy(
                    PRIME,
                    &one(FN1),
                    STORE,
                    PRIME_SYS,
                    G_PRIME,
                    Purpose::QualityAssurance,
                ),
            ),
        )
        .await;
    w.put(
        "receipt of Q4 by prime",
        at(PRIME, h(50, 5), receipt(PRIME, q4)),
    )
    .await;
    w.registry("release H-FC4", h(55, 0), hold("H-FC4", one(FC4), "", true))
        .await;
    let size = w.settle().await;
    let appended = started.elapsed();

    // Each entry's integrated time lies within this test's clock around
    // its append, and the entry is the event submitted.
    let mut lc = w.c.clone();
    let mut entries = Vec::new();
    while (entries.len() as u64) < size {
        let start = entries.len() as u64;
        let got = lc
            .get_entries(v1::GetEntriesRequest {
                start,
                end: size.min(start + 1000),
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        assert!(!got.is_empty());
        entries.extend(got);
    }
    for r in &w.recs {
        let e = v1::LogEntry::decode(entries[r.index as usize].as_slice()).unwrap();
        let Some(v1::log_entry::Content::Event(se)) = e.content else {
            panic!("entry {} is not an event", r.index);
        };
        assert_eq!(se.body, r.event.encode_to_vec(), "entry {}", r.index);
        assert!(
            (r.before..=r.after).contains(&e.integrated_time_unix_nanos),
            "entry {} integrated outside its append",
            r.index
        );
    }

    // The model, from the submitted events alone.
    let mut model = Model::new(&owner, &w.manifests);
    for r in &w.recs {
        model.observe(r);
    }
    let names = Names {
        labels: &w.labels,
        assets: [
            (FC1, "FC1"),
            (FC2, "FC2"),
            (FC3, "FC3"),
            (FC4, "FC4"),
            (FC5, "FC5"),
            (FC6, "FC6"),
            (FN1, "FN1"),
            (PC1, "PC1"),
            (PN1, "PN1"),
            (LATE, "LATE"),
        ]
        .into_iter()
        .map(|(d, n)| (d.to_vec(), n))
        .collect(),
        s0,
    };

    let mut q = CustodyQueryClient::connect(w.log.grpc.clone())
        .await
        .unwrap();
    let vkey = w.log.vkey.to_str().unwrap().to_owned();
    let mut disagreements: Vec<String> = Vec::new();
    for (hours, hand) in HAND {
        let as_of = h(hours, 0);
        let when = format!("as of S+{hours}h");
        let want = model.findings(as_of);
        println!("{when}: the model expects {} findings:", want.len());
        for r in &want {
            println!("  {}", names.row(r));
        }
        let counts: Vec<usize> = RULES
            .iter()
            .map(|rule| want.iter().filter(|r| r.rule == *rule).count())
            .collect();
        assert_eq!(
            counts, hand,
            "{when}: the model disagrees with the hand count (rules in order {RULES:?})"
        );

        // The Findings RPC.
        let got = served(&mut q, as_of).await;
        disagreements.extend(diff(&format!("Findings RPC {when}"), &names, &want, &got));

        // `custody inspect findings --verify --json`: the same findings,
        // their evidence checked offline.
        let as_of_text = rfc3339(as_of);
        let cli = inspect_json(&[
            "findings",
            "--server",
            &w.log.grpc,
            "--as-of",
            &as_of_text,
            "--all",
            "--verify",
            "--log-key",
            &vkey,
        ]);
        let mut cli: Vec<Row> = cli.as_array().unwrap().iter().map(Row::from_json).collect();
        cli.sort();
        disagreements.extend(diff(
            &format!("custody inspect findings {when}"),
            &names,
            &want,
            &cli,
        ));

        // `custody audit`: a full replay from the tiles, compared with the
        // server, whose counts must be the model's.
        let (code, j, err) = audit(&w.log, as_of);
        if code != Some(0) {
            disagreements.push(format!("custody audit {when}: exit {code:?}: {err}\n{j:#}"));
        }
        if j["compare"]["findings"]["agree"] != true {
            disagreements.push(format!(
                "custody audit {when}: the server's findings differ from the replay: {:#}",
                j["compare"]
            ));
        }
        for (rule, n) in RULES.iter().zip(&counts) {
            if j["findings"][rule].as_u64() != Some(*n as u64) {
                disagreements.push(format!(
                    "custody audit {when}: {rule}: the replay counts {}, the model {n}",
                    j["findings"][rule]
                ));
            }
        }
    }
    println!(
        "{} entries; appended in {:.1} s; the whole test took {:.1} s",
        size,
        appended.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s) with the model of DESIGN §6:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
