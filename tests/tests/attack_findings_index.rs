//! A hostile subcontractor's attacks on the findings indexes added for
//! paging: raised findings read by (time, id) from `findings_by_time` and
//! counted from `findings_counts` (`raised_by_time`), unacknowledged
//! transfers counted from their `transfer_due` keys
//! (`unacknowledged_by_time`), retention reading open intervals from
//! `open_since` before a horizon, and a finding found again by its id
//! (`find_finding`, through evidence export). Each test passes when the
//! defence holds and fails with a message starting "ATTACK SUCCEEDED:"
//! when it does not.
//!
//! Every answer is compared with an in-test `Replay` of the same entries
//! (what `custody audit` runs), at several checkpoint sizes and as-of
//! times: the page walk of every filter of rule alone (the indexed path),
//! the same with a filter the indexes do not serve (`from` = 1, the scan
//! path), every rule's total (the count by rule), and pages cut after
//! cursors placed between ties.
//!
//! The world: the data owner with a lane camera (DEVICE) and two inside
//! systems (`lane`, `vault`); a prime; the subcontractor ("sub") acting for
//! the prime, with an inside system (`sub-in`) and a USB stick (`sub-usb`,
//! outside, removable). The receipt window is one minute.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_domain::findings::Rule;
use custody_domain::replay::{manifest_of, ManifestSource, Replay};
use custody_domain::{Digest, ManifestRef, Refusal};
use custody_e2e::random_digest as digest;
use custody_e2e::*;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use custody_proto::{decode_entry, decode_event, finding_to_proto, Entry};
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;

const WINDOW_S: i64 = 60;
const WINDOW: i64 = WINDOW_S * SEC;
const DEADLINE_S: i64 = 3600;
const ATTEST_S: i64 = 86_400;
const DAY: i64 = ATTEST_S * SEC;

/// `published` is the POLICY_PUBLISHED the test's log starts with.
fn published() -> Body {
    policy_published(WINDOW_S, DEADLINE_S, ATTEST_S)
}

fn ev(reporter: &str, t: i64, body: Body) -> v1::Event {
    let mut e = event(reporter, body);
    e.event_time_unix_nanos = t;
    e.reporter_seq = 0;
    e
}

fn act(f: impl FnOnce(&mut v1::CustodyAction)) -> Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    Body::Custody(a)
}

fn capture_as(asset: &[u8; 32], to: &str, m: v1::Modality) -> Body {
    act(|a| {
        a.action = K::Capture as i32;
        a.actor = "cam".into();
        a.asset_digest = asset.to_vec();
        a.to_system = to.into();
        a.modality = m as i32;
        a.subject_class = v1::SubjectClass::Citizen as i32;
    })
}

fn derive(asset: &[u8; 32], parents: &[[u8; 32]], to: &str) -> Body {
    act(|a| {
        a.action = K::Derive as i32;
        a.actor = "cam".into();
        a.asset_digest = asset.to_vec();
        a.to_system = to.into();
        a.modality = v1::Modality::FaceTemplate as i32;
        a.subject_class = v1::SubjectClass::Citizen as i32;
        a.parents = parents
            .iter()
            .map(|p| v1::Parent {
                digest: p.to_vec(),
                relationship: v1::Relationship::DerivedFrom as i32,
            })
            .collect();
    })
}

fn xfer(kind: K, actor: &str, asset: &[u8; 32], from: &str, to: &str) -> Body {
    act(|a| {
        a.action = kind as i32;
        a.actor = actor.into();
        a.asset_digest = asset.to_vec();
        a.from_system = from.into();
        a.to_system = to.into();
        a.purpose = v1::Purpose::Maintenance as i32;
    })
}

fn delete(actor: &str, asset: &[u8; 32], from: &str) -> Body {
    act(|a| {
        a.action = K::Delete as i32;
        a.actor = actor.into();
        a.asset_digest = asset.to_vec();
        a.from_system = from.into();
        a.delete_method = v1::DeleteMethod::CryptoErase as i32;
    })
}

fn receipt(actor: &str, of: u64) -> Body {
    act(|a| {
        a.action = K::Receipt as i32;
        a.actor = actor.into();
        a.receipt_of = of;
    })
}

fn rule_body(
    id: &str,
    m: v1::Modality,
    system: &str,
    max_age: i64,
    clock: v1::RetentionClock,
) -> Body {
    Body::RetentionRulePublished(v1::RetentionRulePublished {
        rule_id: id.into(),
        authority: v1::RetentionAuthority::Sorn as i32,
        authority_ref: "sorn-1".into(),
        modality: m as i32,
        system_id: system.into(),
        max_age_nanos: max_age,
        clock: clock as i32,
        ..Default::default()
    })
}

fn face_rule() -> Body {
    rule_body(
        "R-FACE-1H",
        v1::Modality::FaceImage,
        "",
        HOUR,
        v1::RetentionClock::Capture,
    )
}

fn hold(id: &str, asset: Option<&[u8; 32]>, system: &str, released: bool) -> Body {
    Body::LegalHold(v1::LegalHold {
        hold_id: id.into(),
        assets: asset.map(|a| v1::AssetRef {
            r#ref: Some(v1::asset_ref::Ref::Digest(a.to_vec())),
        }),
        system_id: system.into(),
        released,
    })
}

fn size_of_note(note: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(note).lines().nth(1)?.parse().ok()
}

struct NoManifests;

impl ManifestSource for NoManifests {
    fn members(&self, _: &ManifestRef) -> Result<Option<Arc<Vec<Digest>>>, Refusal> {
        Ok(None)
    }
}

type Signed = (v1::Event, SigningKey);

/// A question: tree size, as-of time.
type Q = (u64, i64);

struct H {
    log: Log,
    c: CustodyLogClient<Channel>,
    q: CustodyQueryClient<Channel>,
    o: String,
    ok: SigningKey,
    sub: SigningKey,
    cam: SigningKey,
    next: u64,
    sizes: BTreeSet<u64>,
    /// How many requests the checks made.
    asked: usize,
}

impl H {
    /// `new` starts a server and registers the world, with `rules`
    /// published at the end of the setup.
    async fn new(rules: Vec<Body>) -> Self {
        let mut log = Log::init();
        log.start();
        let c = log.client().await;
        let q = CustodyQueryClient::connect(log.grpc.clone())
            .await
            .expect("connect query");
        let o = log.owner_id.clone();
        let ok = log.owner.clone();
        let mut h = Self {
            log,
            c,
            q,
            o: o.clone(),
            sub: ok.clone(),
            cam: ok.clone(),
            ok: ok.clone(),
            next: 1,
            sizes: BTreeSet::new(),
            asked: 0,
        };
        // The policy first: it applies to every entry after it.
        let mut setup: Vec<Body> = vec![
            published(),
            org("prime", v1::PartyKind::Prime, &o),
            org("sub", v1::PartyKind::Subcontractor, "prime"),
            org("cam", v1::PartyKind::Device, &o),
            system_registered("lane", &o, true, false),
            system_registered("vault", &o, true, false),
            system_registered("sub-in", "sub", true, false),
            system_registered("sub-usb", "sub", false, true),
        ];
        let sub = SigningKey::generate(&mut rand_core::OsRng);
        let cam = SigningKey::generate(&mut rand_core::OsRng);
        setup.push(key_added("sub", &sub, 0, 0));
        setup.push(key_added("cam", &cam, 0, 0));
        let n = setup.len();
        setup.extend(rules);
        // Rules are dated three days back, so they are in force at every
        // time the tests ask about (a late report of their own).
        let evs: Vec<Signed> = setup
            .into_iter()
            .enumerate()
            .map(|(k, b)| {
                let mut e = event(&o, b);
                if k >= n {
                    e.event_time_unix_nanos -= 3 * DAY;
                }
                (e, ok.clone())
            })
            .collect();
        for r in h.stream(evs, true).await {
            assert_eq!(r.error_code, 0, "setup refused: {}", r.error_message);
        }
        h.sub = sub;
        h.cam = cam;
        h
    }

    async fn stream(&mut self, evs: Vec<Signed>, wait: bool) -> Vec<v1::AppendResponse> {
        let n = evs.len();
        let reqs: Vec<_> = evs
            .iter()
            .map(|(e, k)| v1::AppendRequest {
                event: Some(signed(e, &[k])),
                wait_for_checkpoint: wait,
            })
            .collect();
        let mut c = self.log.client().await;
        let got = stream_requests(&mut c, reqs).await;
        assert_eq!(got.len(), n, "one answer per event");
        self.note(&got);
        got
    }

    /// `stream_ok` streams `evs` and returns their indexes, failing the
    /// test if one is refused.
    async fn stream_ok(&mut self, evs: Vec<Signed>, what: &str) -> Vec<u64> {
        let got = self.stream(evs, false).await;
        got.iter()
            .enumerate()
            .map(|(k, r)| {
                assert_eq!(r.error_code, 0, "{what} {k} refused: {}", r.error_message);
                r.index
            })
            .collect()
    }

    fn note(&mut self, got: &[v1::AppendResponse]) {
        for r in got {
            if r.error_code == 0 && !r.duplicate {
                self.next = self.next.max(r.index + 1);
            }
            if let Some(s) = size_of_note(&r.checkpoint) {
                self.sizes.insert(s);
            }
        }
    }

    /// `send` appends one event, waits for its checkpoint, and returns
    /// its index (failing the test if it is refused).
    async fn send(&mut self, e: &v1::Event, k: &SigningKey, what: &str) -> u64 {
        let r = append(&mut self.c, e, &[k])
            .await
            .unwrap_or_else(|s| panic!("{what}: {s}"));
        assert_eq!(r.error_code, 0, "{what} refused: {}", r.error_message);
        self.note(std::slice::from_ref(&r));
        r.index
    }

    async fn cam(&mut self, t: i64, b: Body, what: &str) -> u64 {
        let k = self.cam.clone();
        self.send(&ev("cam", t, b), &k, what).await
    }

    async fn owner(&mut self, t: i64, b: Body, what: &str) -> u64 {
        let k = self.ok.clone();
        let o = self.o.clone();
        self.send(&ev(&o, t, b), &k, what).await
    }

    async fn wait_size(&mut self, size: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let note = self
                .c
                .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
                .await
                .map(|r| r.into_inner().checkpoint)
                .unwrap_or_default();
            if let Some(s) = size_of_note(&note).filter(|s| *s >= size) {
                self.sizes.insert(s);
                return s;
            }
            assert!(Instant::now() < deadline, "no checkpoint of size {size}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `ask` is one findings request pinned to checkpoint `size` (or after
    /// `cursor`), as of `as_of`.
    #[allow(clippy::too_many_arguments)]
    async fn ask(
        &mut self,
        size: u64,
        as_of: i64,
        rule: &str,
        from: i64,
        to: i64,
        cursor: Option<&(i64, String)>,
        page: u32,
    ) -> Result<v1::FindingsResponse, tonic::Status> {
        let mut token = size.to_be_bytes().to_vec();
        if let Some((at, id)) = cursor {
            token.extend_from_slice(&as_of.to_be_bytes());
            token.extend_from_slice(&at.to_be_bytes());
            token.extend_from_slice(id.as_bytes());
        }
        self.asked += 1;
        self.q
            .findings(v1::FindingsRequest {
                rule: rule.into(),
                from_unix_nanos: from,
                to_unix_nanos: to,
                as_of_unix_nanos: as_of,
                page_size: page,
                page_token: token,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// `walk` lists every page of a question, following the server's
    /// tokens, and returns the rows and every total seen.
    async fn walk(
        &mut self,
        (size, as_of): Q,
        rule: &str,
        from: i64,
        to: i64,
        page: u32,
    ) -> Result<(Vec<v1::Finding>, BTreeSet<u64>), String> {
        let mut rows = Vec::new();
        let mut totals = BTreeSet::new();
        let mut token = size.to_be_bytes().to_vec();
        for n in 0..10_000 {
            self.asked += 1;
            let r = self
                .q
                .findings(v1::FindingsRequest {
                    rule: rule.into(),
                    from_unix_nanos: from,
                    to_unix_nanos: to,
                    as_of_unix_nanos: as_of,
                    page_size: page,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("page {n} of rule {rule:?}: {:?} {}", s.code(), s.message()))?
                .into_inner();
            if r.findings.len() > page as usize {
                return Err(format!("page {n} holds {} > {page}", r.findings.len()));
            }
            totals.insert(r.total);
            rows.extend(r.findings);
            if r.next_page_token.is_empty() {
                return Ok((rows, totals));
            }
            token = r.next_page_token;
        }
        Err("the walk does not end".into())
    }

    /// `replay` replays the log up to its latest checkpoint in memory.
    async fn replay(&mut self) -> (Replay, u64) {
        let size = self.wait_size(self.next).await;
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        while (bytes.len() as u64) < size {
            let start = bytes.len() as u64;
            let end = (start + 1000).min(size);
            let got = self
                .c
                .get_entries(v1::GetEntriesRequest { start, end })
                .await
                .expect("get entries")
                .into_inner()
                .entries;
            assert!(!got.is_empty());
            bytes.extend(got);
        }
        let Ok(Entry::Genesis(g)) = decode_entry(&bytes[0]) else {
            panic!("entry 0 is not genesis");
        };
        let mut replay = Replay::new(&g).expect("replay");
        for (i, b) in bytes.iter().enumerate().skip(1) {
            let Ok(Entry::Event {
                envelope,
                integrated_time,
            }) = decode_entry(b)
            else {
                panic!("entry {i} does not decode");
            };
            let event = decode_event(&envelope.body).expect("event");
            assert!(manifest_of(&event).is_none(), "no manifests here");
            let signers: Vec<_> = envelope.signatures.iter().map(|s| s.key_id).collect();
            replay
                .apply(i as u64, &event, &signers, integrated_time, &NoManifests)
                .unwrap_or_else(|r| panic!("the replay refuses entry {i} the server logged: {r}"));
        }
        (replay, size)
    }

    /// `check` compares the server with `replay` for one question: the
    /// walk of every filter of rule alone (pages of `page`), every rule's
    /// total, the scan path (`from` = 1), a `to` bound at as_of and one
    /// below it, and pages after `cursors`. It returns the differences.
    async fn check(
        &mut self,
        replay: &Replay,
        (size, as_of): Q,
        page: u32,
        cursors: &[(i64, String)],
    ) -> Vec<String> {
        let mut errs = Vec::new();
        let ours: Vec<v1::Finding> = replay
            .findings_at(size, as_of)
            .iter()
            .map(finding_to_proto)
            .collect();
        let at = format!("size {size}, as of {as_of}");
        let mut cmp =
            |what: String,
             want: &[v1::Finding],
             got: Result<(Vec<v1::Finding>, BTreeSet<u64>), String>| {
                match got {
                    Err(e) => errs.push(format!("{at}, {what}: {e}")),
                    Ok((rows, totals)) => {
                        if totals.len() != 1 || totals.first() != Some(&(want.len() as u64)) {
                            errs.push(format!(
                                "{at}, {what}: totals {totals:?}, the replay has {}",
                                want.len()
                            ));
                        }
                        if rows != want {
                            errs.push(format!("{at}, {what}:\n{}", describe_diff(want, &rows)));
                        }
                    }
                }
            };
        // Every finding, through the indexes, in pages of `page` and 1000.
        let got = self.walk((size, as_of), "", 0, 0, page).await;
        cmp(format!("all, pages of {page}"), &ours, got);
        let got = self.walk((size, as_of), "", 0, 0, 1000).await;
        cmp("all, pages of 1000".into(), &ours, got);
        // The scan path, and `to` bounds.
        let got = self.walk((size, as_of), "", 1, 0, 1000).await;
        cmp("all, from 1 (scan)".into(), &ours, got);
        if as_of > i64::MIN + 1 && as_of != 1 {
            let got = self.walk((size, as_of), "", i64::MIN, as_of, 1000).await;
            cmp("all, from MIN to as_of".into(), &ours, got);
            let below: Vec<v1::Finding> = ours
                .iter()
                .filter(|f| f.at_unix_nanos < as_of)
                .cloned()
                .collect();
            let got = self.walk((size, as_of), "", 0, as_of - 1, 1000).await;
            cmp("all, to as_of - 1 (scan)".into(), &below, got);
        }
        // Every rule: its walk and its total (the count by rule).
        for r in Rule::ALL {
            let want: Vec<v1::Finding> = ours
                .iter()
                .filter(|f| f.rule == r.name())
                .cloned()
                .collect();
            let got = self.walk((size, as_of), r.name(), 0, 0, page.max(3)).await;
            cmp(format!("rule {}", r.name()), &want, got);
            if !want.is_empty() {
                let got = self.walk((size, as_of), r.name(), 1, 0, 1000).await;
                cmp(format!("rule {} (scan)", r.name()), &want, got);
            }
        }
        // After forged cursors, between ties.
        for c in cursors {
            for (rule, n) in [
                ("", 1000u32),
                ("", 2),
                ("unacknowledged_transfer", 2),
                ("unauthorized_transfer", 2),
            ] {
                let want: Vec<v1::Finding> = ours
                    .iter()
                    .filter(|f| rule.is_empty() || f.rule == rule)
                    .filter(|f| (f.at_unix_nanos, f.id.as_str()) > (c.0, c.1.as_str()))
                    .take(n as usize)
                    .cloned()
                    .collect();
                let total = ours
                    .iter()
                    .filter(|f| rule.is_empty() || f.rule == rule)
                    .count() as u64;
                match self.ask(size, as_of, rule, 0, 0, Some(c), n).await {
                    Ok(r) if r.findings == want && r.total == total => {}
                    Ok(r) => errs.push(format!(
                        "{at}, after cursor {c:?}, rule {rule:?}, page {n}: total {} (want {total}), rows {:?} (want {:?})",
                        r.total,
                        r.findings.iter().map(|f| (f.at_unix_nanos, f.id.clone())).collect::<Vec<_>>(),
                        want.iter().map(|f| (f.at_unix_nanos, f.id.clone())).collect::<Vec<_>>()
                    )),
                    Err(s) => errs.push(format!("{at}, after cursor {c:?}: {:?} {}", s.code(), s.message())),
                }
            }
        }
        errs
    }

    /// `grid` checks every question of `sizes` × `times` against one
    /// replay, and returns the differences (the first few per question).
    async fn grid(
        &mut self,
        sizes: &[u64],
        times: &[i64],
        page: u32,
        cursors: &[(i64, String)],
    ) -> Vec<String> {
        let (replay, _) = self.replay().await;
        let mut errs = Vec::new();
        for s in sizes {
            for t in times {
                let mut e = self.check(&replay, (*s, *t), page, cursors).await;
                e.truncate(4);
                errs.extend(e);
            }
        }
        errs
    }

    /// `audit` runs `custody audit --compare all`; `Err` on a difference.
    async fn audit(&mut self) -> Result<(), String> {
        self.wait_size(self.next).await;
        let vkey = self.log.vkey.to_str().unwrap_or_default().to_owned();
        let args: Vec<String> = [
            "audit",
            "--url",
            &self.log.http,
            "--log-key",
            &vkey,
            "--server",
            &self.log.grpc,
            "--compare",
            "all",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = custody(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("audit printed no JSON ({e}): {err}"))?;
        if !out.status.success()
            || j["differences"] != serde_json::Value::Array(vec![])
            || j["compare"]["findings"]["agree"] != true
        {
            return Err(format!(
                "the server's findings differ from `custody audit`'s replay: exit {:?}, \
                 differences {:#}, compare {:#}\n{err}",
                out.status.code(),
                j["differences"],
                j["compare"]
            ));
        }
        Ok(())
    }

    /// `finish` adds the audit and the server's health to `errs` and
    /// fails the test if anything differs.
    async fn finish(&mut self, name: &str, mut errs: Vec<String>, started: Instant) {
        if let Err(e) = self.audit().await {
            errs.push(e);
        }
        if let Some(e) = self.alive() {
            errs.push(e);
        }
        eprintln!(
            "{name}: {} requests compared with a replay in {:?}; {} differences",
            self.asked,
            started.elapsed(),
            errs.len()
        );
        errs.truncate(30);
        assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
    }

    fn alive(&mut self) -> Option<String> {
        match self.log.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Some(format!(
                "the server exited ({st}); its log ends:\n{}",
                tail(&self.log.server_log(), 2000)
            )),
            _ => None,
        }
    }

    /// `pick` is up to `n` of the sizes seen, spread out, with the latest.
    fn pick(&self, n: usize) -> Vec<u64> {
        let all: Vec<u64> = self.sizes.iter().copied().collect();
        if all.len() <= n {
            return all;
        }
        let mut out: BTreeSet<u64> = (0..n)
            .map(|k| all[k * (all.len() - 1) / (n - 1).max(1)])
            .collect();
        out.insert(*all.last().unwrap_or(&1));
        out.into_iter().collect()
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn describe_diff(ours: &[v1::Finding], theirs: &[v1::Finding]) -> String {
    let o: HashMap<&str, &v1::Finding> = ours.iter().map(|f| (f.id.as_str(), f)).collect();
    let s: HashMap<&str, &v1::Finding> = theirs.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut lines = vec![format!(
        "    replay {} findings, server {}",
        ours.len(),
        theirs.len()
    )];
    let mut seen = HashSet::new();
    for g in theirs {
        if !seen.insert(g.id.as_str()) {
            lines.push(format!(
                "    server repeats {} at {}",
                g.id, g.at_unix_nanos
            ));
        }
    }
    for f in ours {
        match s.get(f.id.as_str()) {
            None => lines.push(format!(
                "    server omits {} at {} {:?}",
                f.id, f.at_unix_nanos, f.entries
            )),
            Some(g) if *g != f => lines.push(format!("    differs: server {g:?}, replay {f:?}")),
            _ => {}
        }
    }
    for g in theirs {
        if !o.contains_key(g.id.as_str()) {
            lines.push(format!(
                "    server adds {} at {} {:?}",
                g.id, g.at_unix_nanos, g.entries
            ));
        }
    }
    if lines.len() == 1 {
        let first = ours
            .iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        lines.push(format!(
            "    same findings in another order, first differing at row {first}: replay {:?}, server {:?}",
            ours.get(first).map(|f| (f.at_unix_nanos, &f.id)),
            theirs.get(first).map(|f| (f.at_unix_nanos, &f.id))
        ));
    }
    lines.truncate(8);
    lines.join("\n")
}

/// I1. Findings of every kind tied at one time T: late reports of
/// captures dated T − 1 h (late_reporting at T) and their retention
/// (due T), a COPY dated T − 1 day (missing_attestation of `sub-in` due
/// T, its retention due T), 110 COPYs at T (unauthorized_transfer at T,
/// entry ids across 99/100), 20 COPYs at T − window never receipted
/// (unacknowledged_transfer due T), and sequence gaps at T. So the raised
/// index, the unacknowledged index and the time-based rules all hold rows
/// at (T, id) and their pages must merge in id order. Walks in pages of
/// 1, 2 and 7, every rule's walk and total, cursors placed between ties,
/// at several checkpoints and as of T − 1, T, T + 1 and later, must equal
/// a replay.
#[tokio::test(flavor = "multi_thread")]
async fn i1_ties_at_one_time_across_every_index() {
    let started = Instant::now();
    let mut h = H::new(vec![face_rule()]).await;
    let now0 = now();
    let t = now0 - 30 * MIN;
    let cam = h.cam.clone();
    // Captures reported 90 minutes late.
    let faces: Vec<[u8; 32]> = (0..12).map(|_| digest()).collect();
    let evs: Vec<Signed> = faces
        .iter()
        .map(|a| {
            (
                ev(
                    "cam",
                    t - HOUR,
                    capture_as(a, "lane", v1::Modality::FaceImage),
                ),
                cam.clone(),
            )
        })
        .collect();
    h.stream_ok(evs, "capture").await;
    // The first custody of sub-in, a day before T.
    h.cam(
        t - DAY,
        xfer(K::Copy, "cam", &faces[0], "lane", "sub-in"),
        "old copy",
    )
    .await;
    // 110 copies at T, in three streams (several batches, checkpoints).
    for chunk in 0..3 {
        let n = if chunk == 2 { 30 } else { 40 };
        let evs: Vec<Signed> = (0..n)
            .map(|k| {
                (
                    ev(
                        "cam",
                        t,
                        xfer(K::Copy, "cam", &faces[1 + k % 11], "lane", "sub-in"),
                    ),
                    cam.clone(),
                )
            })
            .collect();
        h.stream_ok(evs, "copy at T").await;
    }
    // 20 copies to the USB stick at T − window: unacknowledged at T.
    let evs: Vec<Signed> = (0..20)
        .map(|k| {
            (
                ev(
                    "cam",
                    t - WINDOW,
                    xfer(K::Copy, "cam", &faces[k % 12], "lane", "sub-usb"),
                ),
                cam.clone(),
            )
        })
        .collect();
    h.stream_ok(evs, "copy to usb").await;
    // Sequence gaps at T.
    let mut evs = Vec::new();
    for seq in [1u64, 3, 5, 9, 11] {
        let mut e = ev(
            "cam",
            t,
            capture_as(&digest(), "lane", v1::Modality::SceneImage),
        );
        e.reporter_seq = seq;
        evs.push((e, cam.clone()));
    }
    h.stream_ok(evs, "gap").await;
    let latest = h.wait_size(h.next).await;

    let (replay, _) = h.replay().await;
    let at_t = replay
        .findings_at(latest, t + 1)
        .iter()
        .filter(|f| f.at == t)
        .map(|f| f.rule)
        .collect::<BTreeSet<Rule>>();
    assert!(
        at_t.len() >= 6,
        "precondition: the rules tied at T are only {at_t:?}"
    );
    let mut errs = Vec::new();
    // One walk in pages of 1 at the latest checkpoint.
    let all = replay.findings_at(latest, t + 1);
    let want: Vec<v1::Finding> = all.iter().map(finding_to_proto).collect();
    match h.walk((latest, t + 1), "", 0, 0, 1).await {
        Ok((rows, totals)) => {
            if rows != want || totals.len() != 1 {
                errs.push(format!(
                    "pages of 1 (totals {totals:?}):\n{}",
                    describe_diff(&want, &rows)
                ));
            }
        }
        Err(e) => errs.push(e),
    }
    let cursors: Vec<(i64, String)> = vec![
        (t, String::new()),
        (t, "m".into()),
        (t, "retention_overdue:".into()),
        (t, "unacknowledged_transfer:1".into()),
        (t, "unacknowledged_transfer:99\0".into()),
        (t, "unauthorized_transfer:1".into()),
        (t, "unauthorized_transfer:100".into()),
        (t, "unauthorized_transfer:99".into()),
        (t, "unauthorized_transfer:9~".into()),
        (t, "zzz".into()),
        (t - 1, "~".into()),
        (t + 1, String::new()),
        (i64::MIN, String::new()),
    ];
    let sizes = h.pick(4);
    let times = [t - 1, t, t + 1, t + WINDOW + 1, now() + 1];
    errs.extend(h.grid(&sizes, &times, 7, &cursors).await);
    h.finish("i1", errs, started).await;
}

/// I2. The same asset leaves a system and comes back, so its open
/// interval there is keyed again under the same `open_since` key (same
/// birth, same asset, same system): COPY, DELETE, re-COPY, MOVE away,
/// re-COPY, with closing times both before and after the as-of times
/// asked, and a backdated COPY dated before the asset's capture (so its
/// retention start is the interval's, not the birth). A retention rule on
/// `vault` alone with a custody-start clock and a 10-minute max age is
/// published later with a backdated time, and a legal hold on one asset
/// is placed and released, both backdated. At every checkpoint and as of
/// times around each due date and each closing, the answers must equal a
/// replay's: no interval lost when its key is rewritten, none listed
/// twice when it is both closed since the size and since the time.
#[tokio::test(flavor = "multi_thread")]
async fn i2_reopened_intervals_under_one_open_since_key() {
    let started = Instant::now();
    let mut h = H::new(vec![face_rule()]).await;
    let b = now() - 5 * HOUR;
    let sub = h.sub.clone();
    let a = digest();
    let c = digest();
    h.cam(
        b,
        capture_as(&a, "lane", v1::Modality::FaceImage),
        "capture a",
    )
    .await;
    h.cam(
        b,
        capture_as(&c, "lane", v1::Modality::FaceImage),
        "capture c",
    )
    .await;
    // a: vault, out, back, away, back.
    h.cam(
        b + 10 * MIN,
        xfer(K::Copy, "cam", &a, "lane", "vault"),
        "copy a",
    )
    .await;
    h.cam(b + 2 * HOUR, delete("cam", &a, "vault"), "delete a")
        .await;
    h.cam(
        b + 2 * HOUR + 10 * MIN,
        xfer(K::Copy, "cam", &a, "lane", "vault"),
        "recopy a",
    )
    .await;
    h.cam(
        b + 3 * HOUR,
        xfer(K::Move, "cam", &a, "vault", "sub-in"),
        "move a",
    )
    .await;
    h.cam(
        b + 3 * HOUR + 10 * MIN,
        xfer(K::Copy, "cam", &a, "lane", "vault"),
        "recopy a 2",
    )
    .await;
    // c: a backdated copy (before its capture), deleted and copied back
    // with another backdated time.
    h.cam(
        b - HOUR,
        xfer(K::Copy, "cam", &c, "lane", "vault"),
        "backdated copy c",
    )
    .await;
    h.cam(b + 5 * MIN, delete("cam", &c, "vault"), "delete c")
        .await;
    h.cam(
        b - 30 * MIN,
        xfer(K::Copy, "cam", &c, "lane", "vault"),
        "backdated recopy c",
    )
    .await;
    // The sub deletes its copy of a, then gets it again.
    let sk = sub.clone();
    h.send(
        &ev("sub", b + 3 * HOUR + 20 * MIN, delete("sub", &a, "sub-in")),
        &sk,
        "sub deletes",
    )
    .await;
    h.cam(
        b + 3 * HOUR + 30 * MIN,
        xfer(K::Copy, "cam", &a, "lane", "sub-in"),
        "copy a to sub",
    )
    .await;
    // A shorter rule, published later, dated back; a hold on c.
    h.owner(
        b,
        rule_body(
            "R-VAULT-10M",
            v1::Modality::FaceImage,
            "vault",
            10 * MIN,
            v1::RetentionClock::CustodyStart,
        ),
        "vault rule",
    )
    .await;
    h.owner(
        b + 2 * HOUR + 20 * MIN,
        hold("H-C", Some(&c), "", false),
        "hold c",
    )
    .await;
    h.owner(
        b + 3 * HOUR + 40 * MIN,
        hold("H-C", Some(&c), "", true),
        "release c",
    )
    .await;
    // Close a on vault again, after everything.
    h.cam(now() - MIN, delete("cam", &a, "vault"), "delete a again")
        .await;
    h.cam(
        now() - 30 * SEC,
        xfer(K::Copy, "cam", &a, "lane", "vault"),
        "recopy a 3",
    )
    .await;
    h.wait_size(h.next).await;

    let sizes = h.pick(8);
    let mut times = vec![
        b + 20 * MIN,
        b + HOUR - 1,
        b + HOUR,
        b + HOUR + 1,
        b + 2 * HOUR - 1,
        b + 2 * HOUR + 5 * MIN,
        b + 2 * HOUR + 30 * MIN,
        b + 3 * HOUR + 5 * MIN,
        b + 3 * HOUR + 25 * MIN,
        b + 3 * HOUR + 45 * MIN,
        now(),
        now() + 2 * HOUR,
    ];
    times.sort_unstable();
    let errs = h.grid(&sizes, &times, 2, &[]).await;
    h.finish("i2", errs, started).await;
}

/// I3. Births moved by the attacker: a DERIVE from an old parent (the
/// child is as old as the parent, so its retention start is long before
/// its custody), a DERIVE dated before its parent's capture, a DERIVE
/// from a parent the log does not know yet (captured later, backdated),
/// and a COPY of an asset the log has not seen created (its interval has
/// no class until the asset is captured, later, with an earlier time),
/// deleted and copied again once the capture is logged. The retention
/// answers at every checkpoint and time must equal a replay's.
#[tokio::test(flavor = "multi_thread")]
async fn i3_births_moved_by_derive_and_late_captures() {
    let started = Instant::now();
    let mut h = H::new(vec![face_rule()]).await;
    let b = now() - 5 * HOUR;
    let (p, d1, d2, d3, q, x) = (digest(), digest(), digest(), digest(), digest(), digest());
    h.cam(
        b,
        capture_as(&p, "lane", v1::Modality::FaceImage),
        "capture p",
    )
    .await;
    h.cam(now() - 20 * MIN, derive(&d1, &[p], "lane"), "derive d1")
        .await;
    h.cam(
        now() - 10 * MIN,
        xfer(K::Copy, "cam", &d1, "lane", "vault"),
        "copy d1",
    )
    .await;
    h.cam(
        b - 2 * HOUR,
        derive(&d2, &[p], "lane"),
        "backdated derive d2",
    )
    .await;
    h.cam(
        now() - 15 * MIN,
        derive(&d3, &[q], "vault"),
        "derive d3 from unknown q",
    )
    .await;
    h.cam(
        b - 4 * HOUR,
        capture_as(&q, "lane", v1::Modality::FaceImage),
        "capture q late",
    )
    .await;
    // x is copied before the log knows it.
    h.cam(
        b,
        xfer(K::Copy, "cam", &x, "lane", "sub-in"),
        "copy unknown x",
    )
    .await;
    h.cam(
        b - HOUR,
        capture_as(&x, "lane", v1::Modality::FaceImage),
        "capture x",
    )
    .await;
    let sk = h.sub.clone();
    h.send(
        &ev("sub", b + HOUR, delete("sub", &x, "sub-in")),
        &sk,
        "sub deletes x",
    )
    .await;
    h.cam(
        b + 2 * HOUR,
        xfer(K::Copy, "cam", &x, "lane", "sub-in"),
        "copy x again",
    )
    .await;
    h.wait_size(h.next).await;
    let sizes: Vec<u64> = h.sizes.iter().copied().filter(|s| *s > 8).collect();
    let times = vec![
        b - 3 * HOUR,
        b - HOUR + 1,
        b + HOUR - 1,
        b + HOUR + 1,
        b + 90 * MIN,
        b + 3 * HOUR,
        now(),
        now() + HOUR,
    ];
    let mut errs = h.grid(&sizes, &times, 2, &[]).await;
    // What the rule says, at the latest checkpoint, now: the derived
    // children are overdue from their parent's birth.
    let (replay, size) = h.replay().await;
    let all = replay.findings_at(size, now());
    let overdue = |asset: &[u8; 32], system: &str| {
        all.iter().any(|f| {
            f.rule == Rule::RetentionOverdue
                && f.asset.as_ref() == Some(asset)
                && f.system.as_deref() == Some(system)
        })
    };
    for (name, asset, system) in [
        ("d1 on lane", &d1, "lane"),
        ("d1 on vault", &d1, "vault"),
        ("d2 on lane", &d2, "lane"),
        ("x on sub-in, copied again", &x, "sub-in"),
    ] {
        if !overdue(asset, system) {
            errs.push(format!("precondition: no retention finding for {name}"));
        }
    }
    h.finish("i3", errs, started).await;
}

/// I4. Unacknowledged transfers counted by key: 130 COPYs at one time
/// (ids across 99/100), receipts logged in later batches (in time, at
/// the window's edge, one nanosecond late, long late, dated before the
/// transfer), and new transfers at the same time while the log grows.
/// At every checkpoint seen, the unacknowledged_transfer walk in pages of
/// 1 and 3, its total, and a party filter (the scan path) must equal a
/// replay; so must cursors placed among the tied ids.
#[tokio::test(flavor = "multi_thread")]
async fn i4_unacknowledged_counted_by_key_at_every_checkpoint() {
    let started = Instant::now();
    let mut h = H::new(vec![]).await;
    let t = now() - 20 * MIN;
    let a = digest();
    h.cam(
        t - MIN,
        capture_as(&a, "lane", v1::Modality::FaceImage),
        "capture",
    )
    .await;
    let cam = h.cam.clone();
    let sub = h.sub.clone();
    let mut copies = Vec::new();
    for n in [50usize, 50, 30] {
        let evs: Vec<Signed> = (0..n)
            .map(|_| {
                (
                    ev("cam", t, xfer(K::Copy, "cam", &a, "lane", "sub-in")),
                    cam.clone(),
                )
            })
            .collect();
        copies.extend(h.stream_ok(evs, "copy").await);
        h.wait_size(h.next).await;
    }
    // Receipts in three later batches.
    let times = [
        t + 10 * SEC,
        t + WINDOW,
        t + WINDOW + 1,
        t + 10 * MIN,
        t - 5 * MIN,
        1,
    ];
    for round in 0..3 {
        let evs: Vec<Signed> = copies
            .iter()
            .enumerate()
            .filter(|(k, _)| k % 7 == round * 2)
            .map(|(k, x)| {
                (
                    ev("sub", times[k % times.len()], receipt("sub", *x)),
                    sub.clone(),
                )
            })
            .collect();
        h.stream_ok(evs, "receipt").await;
        let more: Vec<Signed> = (0..5)
            .map(|_| {
                (
                    ev("cam", t, xfer(K::Copy, "cam", &a, "lane", "sub-in")),
                    cam.clone(),
                )
            })
            .collect();
        h.stream_ok(more, "more").await;
        h.wait_size(h.next).await;
    }
    let sizes: Vec<u64> = h.pick(6).into_iter().filter(|s| *s > 12).collect();
    let (replay, _) = h.replay().await;
    let mut errs = Vec::new();
    let due = t + WINDOW;
    let cursors: Vec<(i64, String)> = vec![
        (due, "unacknowledged_transfer:1".into()),
        (due, "unacknowledged_transfer:100".into()),
        (due, "unacknowledged_transfer:99".into()),
        (due, "unacknowledged_transfer:5".into()),
        (due, "unacknowledged_transfer:".into()),
        (due - 1, "zzzz".into()),
        (t, "unauthorized_transfer:99".into()),
    ];
    for s in &sizes {
        for as_of in [due, due + 1, t + 10 * MIN, now()] {
            let ours: Vec<v1::Finding> = replay
                .findings_at(*s, as_of)
                .iter()
                .filter(|f| f.rule == Rule::UnacknowledgedTransfer)
                .map(finding_to_proto)
                .collect();
            for page in [1u32, 3] {
                match h
                    .walk((*s, as_of), "unacknowledged_transfer", 0, 0, page)
                    .await
                {
                    Ok((rows, totals)) => {
                        if rows != ours
                            || totals.len() != 1
                            || totals.first() != Some(&(ours.len() as u64))
                        {
                            errs.push(format!(
                                "size {s}, as of {as_of}, unacknowledged in pages of {page}: totals {totals:?}, replay {}\n{}",
                                ours.len(),
                                describe_diff(&ours, &rows)
                            ));
                        }
                    }
                    Err(e) => errs.push(e),
                }
            }
            // The scan path: a party filter.
            let mut token = s.to_be_bytes().to_vec();
            let mut rows = Vec::new();
            loop {
                let r =
                    h.q.findings(v1::FindingsRequest {
                        rule: "unacknowledged_transfer".into(),
                        party: "cam".into(),
                        as_of_unix_nanos: as_of,
                        page_size: 1000,
                        page_token: token,
                        ..Default::default()
                    })
                    .await
                    .expect("scan page")
                    .into_inner();
                rows.extend(r.findings);
                if r.next_page_token.is_empty() {
                    break;
                }
                token = r.next_page_token;
            }
            if rows != ours {
                errs.push(format!(
                    "size {s}, as of {as_of}, party filter (scan):\n{}",
                    describe_diff(&ours, &rows)
                ));
            }
        }
    }
    let latest = *sizes.last().unwrap_or(&1);
    let mut e = h.check(&replay, (latest, now()), 5, &cursors).await;
    e.truncate(10);
    errs.extend(e);
    h.finish("i4", errs, started).await;
}

/// I5. Times at the edges the API allows: events dated 1 ns after the
/// epoch and up to the five-minute future skew, a retention rule of 1 ns
/// (every interval is past it) and one of i64::MAX (none ever is), asked
/// as of i64::MIN, −1, 1, 2, the future, i64::MAX − 1 and i64::MAX, with
/// cursors at the extremes. Every answer must equal a replay's (or be
/// refused cleanly), and the server must stay up.
#[tokio::test(flavor = "multi_thread")]
async fn i5_extreme_times_and_max_ages() {
    let started = Instant::now();
    let mut h = H::new(vec![
        rule_body(
            "R-PLATE-1NS",
            v1::Modality::PlateImage,
            "",
            1,
            v1::RetentionClock::Capture,
        ),
        rule_body(
            "R-FACE-MAX",
            v1::Modality::FaceImage,
            "",
            i64::MAX,
            v1::RetentionClock::CustodyStart,
        ),
    ])
    .await;
    let now0 = now();
    let (p1, p2, f1, f2) = (digest(), digest(), digest(), digest());
    h.cam(
        1,
        capture_as(&p1, "lane", v1::Modality::PlateImage),
        "plate at 1 ns",
    )
    .await;
    h.cam(
        now0 + 290 * SEC,
        capture_as(&p2, "lane", v1::Modality::PlateImage),
        "plate in the future",
    )
    .await;
    h.cam(
        1,
        capture_as(&f1, "lane", v1::Modality::FaceImage),
        "face at 1 ns",
    )
    .await;
    h.cam(
        now0 + 290 * SEC,
        capture_as(&f2, "lane", v1::Modality::FaceImage),
        "face in the future",
    )
    .await;
    h.cam(
        2,
        xfer(K::Copy, "cam", &p1, "lane", "sub-in"),
        "copy at 2 ns",
    )
    .await;
    h.cam(
        now0 + 295 * SEC,
        xfer(K::Copy, "cam", &p2, "lane", "sub-usb"),
        "copy in the future",
    )
    .await;
    h.cam(
        now0 + 299 * SEC,
        xfer(K::Copy, "cam", &f1, "lane", "sub-in"),
        "copy at the skew",
    )
    .await;
    let sk = h.sub.clone();
    h.send(
        &ev("sub", 1, receipt("sub", h.next - 3)),
        &sk,
        "receipt at 1 ns",
    )
    .await;
    h.wait_size(h.next).await;
    let sizes = h.pick(3);
    let times = [
        i64::MIN,
        -1,
        1,
        2,
        3,
        1 + WINDOW,
        3 + WINDOW,
        now0,
        now0 + 299 * SEC + WINDOW + 1,
        i64::MAX - 1,
        i64::MAX,
    ];
    let cursors: Vec<(i64, String)> = vec![
        (i64::MIN, String::new()),
        (i64::MAX, "zzzz".into()),
        (1, "late_reporting:".into()),
        (2 + WINDOW, "unacknowledged_transfer:".into()),
    ];
    let errs = h.grid(&sizes, &times, 2, &cursors).await;
    h.finish("i5", errs, started).await;
}

/// I6. Evidence export of a finding by id (`find_finding`): every
/// finding the replay lists at the latest checkpoint exports with the
/// replay's fields, and forged ids (another rule's name on an entry,
/// leading zeros or a sign on the index, a retention id cut short, a
/// receipted-in-time transfer, indexes past the log, u64::MAX, junk, a
/// 4 kB id) are refused with NOT_FOUND or INVALID_ARGUMENT, never an
/// internal error or a finding the replay does not list. An id of
/// 100 kB (and, on the Findings RPC, a rule name of 100 kB) must be
/// refused as cleanly: the refusal must not echo the whole input into the
/// grpc-message header, which the client then rejects as an HTTP/2
/// protocol error (RESOURCE_EXHAUSTED) instead of reading NOT_FOUND.
#[tokio::test(flavor = "multi_thread")]
async fn i6_export_by_forged_ids() {
    let started = Instant::now();
    let mut h = H::new(vec![face_rule()]).await;
    let t = now() - 2 * HOUR;
    let a = digest();
    let cap = h
        .cam(
            t,
            capture_as(&a, "lane", v1::Modality::FaceImage),
            "capture",
        )
        .await;
    let c1 = h
        .cam(
            t + MIN,
            xfer(K::Copy, "cam", &a, "lane", "sub-in"),
            "copy 1",
        )
        .await;
    let c2 = h
        .cam(
            t + 2 * MIN,
            xfer(K::Copy, "cam", &a, "lane", "sub-usb"),
            "copy 2",
        )
        .await;
    let sk = h.sub.clone();
    let r1 = h
        .send(
            &ev("sub", t + MIN + SEC, receipt("sub", c1)),
            &sk,
            "receipt",
        )
        .await;
    let size = h.wait_size(h.next).await;
    let (replay, _) = h.replay().await;
    let as_of = now();
    let ours = replay.findings_at(size, as_of);
    let mut errs = Vec::new();
    let mut qc = h.q.clone();
    let export = |id: String| {
        let mut q = qc.clone();
        async move {
            q.export_evidence(v1::ExportEvidenceRequest {
                question: Some(v1::export_evidence_request::Question::Finding(
                    v1::FindingRef {
                        id,
                        as_of_unix_nanos: as_of,
                    },
                )),
            })
            .await
            .map(|r| r.into_inner())
        }
    };
    for f in &ours {
        match export(f.id.clone()).await {
            Ok(r) => {
                let j: serde_json::Value = serde_json::from_slice(&r.bundle).unwrap_or_default();
                let ans = &j["answer"];
                let entries: Vec<u64> = ans["entries"]
                    .as_array()
                    .map(|v| v.iter().filter_map(|x| x.as_u64()).collect())
                    .unwrap_or_default();
                if ans["id"] != f.id.as_str()
                    || ans["rule"] != f.rule.name()
                    || entries != f.entries
                {
                    errs.push(format!(
                        "export of {} answers {} {} {entries:?}, the replay {:?}",
                        f.id, ans["id"], ans["rule"], f.entries
                    ));
                }
            }
            Err(s) => errs.push(format!(
                "export of {} fails: {:?} {}",
                f.id,
                s.code(),
                s.message()
            )),
        }
    }
    let forged = [
        format!("late_reporting:{c1}"),
        format!("unauthorized_transfer:{cap}"),
        format!("unauthorized_transfer:0{c1}"),
        format!("unauthorized_transfer:+{c1}"),
        format!("unauthorized_transfer:{c1}:"),
        format!("unauthorized_transfer:{c1} "),
        format!("unacknowledged_transfer:{c1}"),
        format!("unacknowledged_transfer:{r1}"),
        format!("unacknowledged_transfer:{cap}"),
        format!("unacknowledged_transfer:{}", size + 5),
        format!("unacknowledged_transfer:{}", u64::MAX),
        "unacknowledged_transfer:18446744073709551616".to_string(),
        format!("retention_overdue:{cap}"),
        format!("retention_overdue:{cap}:"),
        format!("retention_overdue:{cap}:{}", custody_domain::hex(&a)),
        format!("boundary_violation:{c1}"),
        format!("boundary_violation:{c2}:x"),
        "missing_attestation:".to_string(),
        "missing_attestation:sub-in:extra".to_string(),
        "missing_attestation:nowhere".to_string(),
        "sequence_gap:-1".to_string(),
        ":".to_string(),
        "unauthorized_transfer".to_string(),
        "UNAUTHORIZED_TRANSFER:5".to_string(),
        "\u{0}".to_string(),
        "x".repeat(4_000),
    ];
    let listed: HashSet<&str> = ours.iter().map(|f| f.id.as_str()).collect();
    for id in forged {
        let shown: String = id.chars().take(60).collect();
        match export(id.clone()).await {
            Ok(r) => {
                if !listed.contains(id.as_str()) {
                    errs.push(format!(
                        "export of forged id {shown:?} answers a bundle ({} bytes) for a finding the replay does not list",
                        r.bundle.len()
                    ));
                }
            }
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) => {}
            Err(s) => errs.push(format!(
                "export of forged id {shown:?}: {:?} {}",
                s.code(),
                s.message()
            )),
        }
        if let Some(e) = h.alive() {
            errs.push(e);
            break;
        }
    }
    // An id of 100 kB: the answer must be a clean refusal the client can
    // read (NOT_FOUND or INVALID_ARGUMENT), and the server must go on
    // answering.
    let long = "unauthorized_transfer:".to_string() + &"9".repeat(100_000);
    match export(long).await {
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) => {}
        other => errs.push(
            format!(
                "export of a 100 kB finding id is not refused cleanly: {:?}",
                other
                    .map(|r| r.file_name)
                    .map_err(|s| (s.code(), s.message().chars().take(120).collect::<String>()))
            ) + &format!(
                "; the server's log ends: {:?}",
                tail(&h.log.server_log(), 300)
            ),
        ),
    }
    // The same echo on the Findings RPC: a rule name of 100 kB.
    let mut fresh = CustodyQueryClient::connect(h.log.grpc.clone())
        .await
        .expect("connect query");
    let got = fresh
        .findings(v1::FindingsRequest {
            rule: "x".repeat(100_000),
            ..Default::default()
        })
        .await;
    match got {
        Err(s) if s.code() == tonic::Code::InvalidArgument => {}
        other => errs.push(format!(
            "a findings question with a rule name of 100 kB is not refused cleanly: {:?}",
            other
                .map(|r| r.into_inner().total)
                .map_err(|s| (s.code(), s.message().chars().take(120).collect::<String>()))
        )),
    }
    // The server goes on answering (on a new connection: the client's
    // may be torn down by the protocol error).
    if let Some(f) = ours.first() {
        let mut fresh = CustodyQueryClient::connect(h.log.grpc.clone())
            .await
            .expect("connect query");
        let again = fresh
            .export_evidence(v1::ExportEvidenceRequest {
                question: Some(v1::export_evidence_request::Question::Finding(
                    v1::FindingRef {
                        id: f.id.clone(),
                        as_of_unix_nanos: as_of,
                    },
                )),
            })
            .await;
        if let Err(s) = again {
            errs.push(format!(
                "after the 100 kB id, export of {} fails: {s}",
                f.id
            ));
        }
    }
    // A finding exported as of a time before it arose does not exist.
    if let Some(f) = ours.iter().find(|f| f.rule == Rule::UnacknowledgedTransfer) {
        let early = f.at - 1;
        let got = qc
            .export_evidence(v1::ExportEvidenceRequest {
                question: Some(v1::export_evidence_request::Question::Finding(
                    v1::FindingRef {
                        id: f.id.clone(),
                        as_of_unix_nanos: early,
                    },
                )),
            })
            .await;
        if got.is_ok() {
            errs.push(format!("{} exports as of {early}, before it arose", f.id));
        }
    }
    assert!(ours.len() >= 5, "precondition: {} findings", ours.len());
    h.finish("i6", errs, started).await;
}

/// I7. Answers as of old checkpoints while the log grows: the answers
/// (every rule's walk and total, pages of 2) at three checkpoints as of
/// three times are recorded, then the log gains entries that would
/// change them if they leaked into an old answer: backdated COPYs and
/// late reports (raised findings dated before the as-of times), receipts
/// of old transfers (late and in time), DELETEs of old intervals dated
/// back, a hold and a rule dated back. Asked again, every old answer must
/// be the same, and equal to a replay.
#[tokio::test(flavor = "multi_thread")]
async fn i7_old_checkpoints_do_not_move_while_the_log_grows() {
    let started = Instant::now();
    let mut h = H::new(vec![face_rule()]).await;
    let t = now() - 3 * HOUR;
    let cam = h.cam.clone();
    let sub = h.sub.clone();
    let faces: Vec<[u8; 32]> = (0..6).map(|_| digest()).collect();
    let evs: Vec<Signed> = faces
        .iter()
        .map(|a| {
            (
                ev("cam", t, capture_as(a, "lane", v1::Modality::FaceImage)),
                cam.clone(),
            )
        })
        .collect();
    h.stream_ok(evs, "capture").await;
    let mut copies = Vec::new();
    for a in &faces {
        copies.push(
            h.cam(t + MIN, xfer(K::Copy, "cam", a, "lane", "sub-in"), "copy")
                .await,
        );
    }
    let old = h.pick(3);
    let times = [t + 30 * MIN, t + 2 * HOUR, now()];
    let mut before = HashMap::new();
    for s in &old {
        for as_of in times {
            for r in std::iter::once("").chain(Rule::ALL.iter().map(|r| r.name())) {
                let got = h.walk((*s, as_of), r, 0, 0, 2).await;
                before.insert((*s, as_of, r), got);
            }
        }
    }
    // The log grows.
    let mut evs: Vec<Signed> = Vec::new();
    for (k, x) in copies.iter().enumerate() {
        let rt = if k % 2 == 0 {
            t + MIN + 10 * SEC
        } else {
            t + 2 * HOUR
        };
        evs.push((ev("sub", rt, receipt("sub", *x)), sub.clone()));
    }
    for a in &faces {
        evs.push((
            ev(
                "cam",
                t + 5 * MIN,
                xfer(K::Copy, "cam", a, "lane", "sub-usb"),
            ),
            cam.clone(),
        ));
        evs.push((
            ev("sub", t + 20 * MIN, delete("sub", a, "sub-in")),
            sub.clone(),
        ));
    }
    h.stream_ok(evs, "growth").await;
    h.owner(t, hold("H-ALL", None, "lane", false), "hold").await;
    h.owner(
        t,
        rule_body(
            "R-LANE-1M",
            v1::Modality::FaceImage,
            "lane",
            MIN,
            v1::RetentionClock::CustodyStart,
        ),
        "rule",
    )
    .await;
    h.wait_size(h.next).await;
    let mut errs = Vec::new();
    for ((s, as_of, r), was) in &before {
        let now_ = h.walk((*s, *as_of), r, 0, 0, 2).await;
        if &now_ != was {
            errs.push(format!(
                "the answer at size {s} as of {as_of}, rule {r:?}, changed as the log grew: before {:?}, after {:?}",
                was.as_ref().map(|(rows, t)| (rows.len(), t.clone())),
                now_.as_ref().map(|(rows, t)| (rows.len(), t.clone()))
            ));
        }
    }
    errs.extend(h.grid(&old, &times, 3, &[]).await);
    h.finish("i7", errs, started).await;
}
