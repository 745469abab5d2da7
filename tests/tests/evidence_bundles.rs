//! Evidence bundles end to end: `custody export` (and the HTTP download)
//! for every kind of question, `custody verify` offline, the statement's
//! numbers against the demo's ground truth and a known set-up, and single
//! byte changes of every kind of part of a bundle, each of which must fail
//! with a message naming the part.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use custody_domain::{hex, parse_rfc3339, rfc3339};
use custody_e2e::*;
use custody_proto::v1;
use serde_json::Value;

const SEC: i64 = 1_000_000_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn t(s: &Value) -> i64 {
    parse_rfc3339(s.as_str().expect("a time")).expect("RFC 3339")
}

/// `grouped` prints a count as statements do: `1,812`.
fn grouped(n: usize) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    digits
        .rchunks(3)
        .rev()
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(",")
}

/// `export` runs `custody export --server SERVER ARGS --out OUT` and
/// returns the bundle's bytes.
fn export(server: &str, args: &[&str], out: &Path) -> Vec<u8> {
    let mut all = vec!["export", "--server", server];
    all.extend_from_slice(args);
    all.extend(["--out", out.to_str().unwrap()]);
    let o = custody(&all);
    assert!(
        o.status.success(),
        "custody {all:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).unwrap()
}

/// `verify` runs `custody verify FILE --log-key VKEY`: the statement, or
/// the error message.
fn verify(file: &Path, vkey: &Path) -> Result<String, String> {
    let o = custody(&[
        "verify",
        file.to_str().unwrap(),
        "--log-key",
        vkey.to_str().unwrap(),
    ]);
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        assert!(o.stdout.is_empty(), "a failed verification prints nothing");
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

fn verified(file: &Path, vkey: &Path) -> String {
    verify(file, vkey).unwrap_or_else(|e| panic!("{} does not verify: {e}", file.display()))
}

/// Distinct assets of `intervals` overlapping the closed window [a, b].
fn scope(intervals: &[Value], a: i64, b: i64) -> BTreeSet<String> {
    intervals
        .iter()
        .filter(|i| t(&i["from"]) <= b && (i["to"].is_null() || t(&i["to"]) > a))
        .map(|i| i["asset"].as_str().unwrap().to_owned())
        .collect()
}

fn covers(i: &Value, at: i64) -> bool {
    t(&i["from"]) <= at && (i["to"].is_null() || t(&i["to"]) > at)
}

#[test]
fn the_demos_bundles_state_its_ground_truth() {
    let demo = Demo::start(7);
    let vkey = demo.vkey();
    let dir = demo.dir.path();
    let truth = &demo.truth;
    let (start, end) = (t(&truth["from"]), t(&truth["to"]));
    let systems = truth["systems"].as_object().unwrap();
    let net = systems["subco-corp-net"].as_array().unwrap();

    // The breach scope of the subcontractor's network, over the scenario.
    let bs = dir.join("breach.json");
    let bytes = export(
        &demo.grpc,
        &[
            "breach-scope",
            "--system",
            "subco-corp-net",
            "--from",
            &rfc3339(start),
            "--to",
            &rfc3339(end),
        ],
        &bs,
    );
    let want = scope(net, start, end);
    let s = verified(&bs, &vkey);
    assert!(
        s.contains(&format!(
            "between {} and {}, {} distinct assets rested on system subco-corp-net, owned by party maint-subco: ",
            rfc3339(start),
            rfc3339(end),
            grouped(want.len())
        )),
        "{s}"
    );
    let intervals = net
        .iter()
        .filter(|i| want.contains(i["asset"].as_str().unwrap()));
    assert!(
        s.contains(&format!("{} custody intervals", grouped(intervals.count()))),
        "{s}"
    );
    assert!(s.contains("per entries ") && s.contains(" more\n"), "{s}");
    // The split adds up to the count, and matches the demo's own summary.
    let summary = std::fs::read_to_string(&demo.stdout).unwrap();
    assert!(summary.contains(&format!("{} distinct images", want.len())));
    let b: Value = serde_json::from_slice(&bytes).unwrap();
    let split: u64 = b["answer"]["by_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(split, want.len() as u64);
    assert_eq!(b["answer"]["asset_count"], want.len());

    // The web view's download of the same question is the same bundle, and
    // bad parameters are a 400 with a plain message.
    let url = format!(
        "{}/evidence/breach-scope?system=subco-corp-net&from={}&to={}",
        demo.http,
        rfc3339(start).replace(':', "%3A"),
        rfc3339(end)
    );
    let r = reqwest::blocking::get(&url).unwrap();
    assert_eq!(r.status(), 200);
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"evidence-breach-scope-subco-corp-net-"),
        "{disposition}"
    );
    let downloaded = r.bytes().unwrap().to_vec();
    let http_file = dir.join("breach-http.json");
    std::fs::write(&http_file, &downloaded).unwrap();
    assert!(
        verified(&http_file, &vkey).contains(&format!("{} distinct assets", grouped(want.len())))
    );
    let d: Value = serde_json::from_slice(&downloaded).unwrap();
    if d["checkpoint"] == b["checkpoint"] {
        assert_eq!(downloaded, bytes, "one checkpoint, one bundle");
    }
    for (q, phrase) in [
        ("history?asset=zz", "64 hex digits"),
        ("holders?asset=00", "64 hex digits"),
        (
            "holdings?party=p&system=s&at=2026-01-01T00:00:00Z",
            "exactly one of party and system",
        ),
        (
            "breach-scope?system=subco-corp-net&from=yesterday&to=2026-01-01T00:00:00Z",
            "from:",
        ),
        (
            "breach-scope?system=subco-corp-net&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "ends before it starts",
        ),
        ("history?asset=00&page=2", "unknown field `page`"),
    ] {
        let r = reqwest::blocking::get(format!("{}/evidence/{q}", demo.http)).unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body = r.text().unwrap();
        assert!(body.contains(phrase), "{q}: {body}");
    }
    let r = reqwest::blocking::get(format!(
        "{}/evidence/holdings?party=nobody&at=2026-01-01T00:00:00Z",
        demo.http
    ))
    .unwrap();
    assert_eq!(r.status(), 404);

    // What the subcontractor held at the end, over both its systems.
    let held: Vec<&Value> = ["usb-export", "subco-corp-net"]
        .iter()
        .flat_map(|s| systems[*s].as_array().unwrap())
        .filter(|i| covers(i, end))
        .collect();
    let distinct: BTreeSet<&str> = held.iter().map(|i| i["asset"].as_str().unwrap()).collect();
    let on = ["usb-export", "subco-corp-net"]
        .iter()
        .filter(|s| {
            systems[**s]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| covers(i, end))
        })
        .count();
    let hf = dir.join("holdings.json");
    export(
        &demo.grpc,
        &["holdings", "--party", "maint-subco", "--at", &rfc3339(end)],
        &hf,
    );
    let s = verified(&hf, &vkey);
    let copies = if distinct.len() == held.len() {
        String::new()
    } else {
        format!(" ({} copies)", grouped(held.len()))
    };
    assert!(
        s.contains(&format!(
            "at {}, party maint-subco held {} distinct assets{copies} on {on} system{}: ",
            rfc3339(end),
            grouped(distinct.len()),
            if on == 1 { "" } else { "s" }
        )),
        "{s}"
    );

    // Holders of an exfiltrated asset when it reached the network, against
    // the truth of every system; and its history.
    let i = &net[net.len() / 2];
    let asset = i["asset"].as_str().unwrap();
    let at = t(&i["from"]);
    let holders: BTreeSet<(String, String)> = systems
        .iter()
        .flat_map(|(sys, v)| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|j| j["asset"] == asset && covers(j, at))
                .map(|j| (j["party"].as_str().unwrap().to_owned(), sys.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let parties: BTreeSet<&String> = holders.iter().map(|(p, _)| p).collect();
    let hf = dir.join("holders.json");
    export(
        &demo.grpc,
        &["holders", "--asset", asset, "--at", &rfc3339(at)],
        &hf,
    );
    let s = verified(&hf, &vkey);
    assert!(
        s.contains(&format!(
            "at {}, asset {asset} was held by {} part{} on {} systems",
            rfc3339(at),
            parties.len(),
            if parties.len() == 1 { "y" } else { "ies" },
            holders.len()
        )),
        "{s}"
    );
    for (party, system) in &holders {
        assert!(s.contains(&format!("\n  {party} on {system} from ")), "{s}");
    }
    let hf = dir.join("history.json");
    let bytes = export(&demo.grpc, &["history", "--asset", asset], &hf);
    let s = verified(&hf, &vkey);
    let b: Value = serde_json::from_slice(&bytes).unwrap();
    let events = b["answer"]["events"].as_array().unwrap();
    let first = events.iter().map(|e| t(&e["event_time"])).min().unwrap();
    assert!(
        s.contains(&format!(
            "asset {asset} has {} logged events from {} to ",
            events.len(),
            rfc3339(first)
        )),
        "{s}"
    );
    // Every interval of the asset in the truth opens with an event listed,
    // and every closed one closes with one.
    let truth: Vec<&Value> = systems
        .values()
        .flat_map(|v| v.as_array().unwrap())
        .filter(|j| j["asset"] == asset)
        .collect();
    let kinds = |ks: &[&str]| {
        events
            .iter()
            .filter(|e| ks.contains(&e["kind"].as_str().unwrap()))
            .count()
    };
    assert!(kinds(&["CAPTURE", "COPY", "MOVE", "DERIVE"]) >= truth.len());
    assert!(kinds(&["DELETE", "MOVE"]) >= truth.iter().filter(|j| !j["to"].is_null()).count());
}

fn at(mut e: v1::Event, time: i64) -> v1::Event {
    e.event_time_unix_nanos = time;
    e
}

fn custody_body(f: impl FnOnce(&mut v1::CustodyAction)) -> v1::event::Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    v1::event::Body::Custody(a)
}

/// `Tamper` changes one byte of a bundle and checks that `custody verify`
/// refuses it, naming the part.
struct Tamper<'a> {
    bytes: &'a [u8],
    text: &'a str,
    file: PathBuf,
    vkey: &'a Path,
}

impl Tamper<'_> {
    /// `at` sets byte `pos` to `to` and expects a failure whose message
    /// contains every one of `phrases`.
    fn at(&self, what: &str, pos: usize, to: u8, phrases: &[&str]) {
        assert_ne!(self.bytes[pos], to, "{what}: not a change");
        let mut bad = self.bytes.to_vec();
        bad[pos] = to;
        std::fs::write(&self.file, &bad).unwrap();
        let e = match verify(&self.file, self.vkey) {
            Ok(s) => panic!("{what}: byte {pos} changed and the bundle still verifies: {s}"),
            Err(e) => e,
        };
        for p in phrases {
            assert!(
                e.contains(p),
                "{what}: byte {pos}: {e:?} does not say {p:?}"
            );
        }
    }

    /// `find` is the offset of the one occurrence of `needle` after `from`.
    fn find(&self, needle: &str, from: usize) -> usize {
        from + self.text[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the bundle"))
    }

    /// `b64_char` replaces the base64 character at `pos` with another one.
    fn b64_char(&self, pos: usize) -> u8 {
        if self.bytes[pos] == b'A' {
            b'B'
        } else {
            b'A'
        }
    }

    /// `entry` is the offset of the base64 string of the entry with log
    /// index `index` in `part`, and its decoded bytes.
    fn entry(&self, part: &str, index: u64) -> (usize, Vec<u8>) {
        let p = self.find(&format!("\n  \"{part}\": ["), 0);
        let e = self.find(&format!("\"index\": {index},\n      \"entry\": \""), p);
        let start = self.find("\"entry\": \"", e) + "\"entry\": \"".len();
        let end = self.find("\"", start);
        (start, B64.decode(&self.text[start..end]).unwrap())
    }
}

/// `b64_pos` is the position, in the base64 of some bytes, of a character
/// that encodes only bits of byte `k` (rounded up to a multiple of 3).
fn b64_pos(k: usize) -> usize {
    k.div_ceil(3) * 4
}

fn part_word(text: &str, pos: usize) -> &'static str {
    // A sampled byte may fall inside a multi-byte character.
    let pos = (0..=pos)
        .rev()
        .find(|p| text.is_char_boundary(*p))
        .unwrap_or(0);
    let mut part = "";
    for (n, line) in text[..pos].split('\n').enumerate() {
        if n > 0 {
            if let Some(rest) = line.strip_prefix("  \"") {
                part = rest.split('"').next().unwrap_or_default();
            }
        }
    }
    match part {
        "format" => "format",
        "question" => "question",
        "answer" => "answer",
        "checkpoint" => "checkpoint",
        "entries" => "entr",
        "registry" => "registry",
        "memberships" => "membership",
        "digest" => "digest",
        _ => "",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bundle_verifies_and_any_changed_byte_fails() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let vendor = register(&log, &mut c, "vendor", 0, 0).await;
    let t0 = (now() / SEC - 3600) * SEC;
    let a = [0xaa; 32];
    let mut bulk = [[0x01; 32], [0x02; 32], [0x03; 32]];
    bulk.sort_unstable();

    // A: captured, copied to the vendor, deleted there.
    let mut e = at(event("cam", capture("cam")), t0);
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest = a.to_vec();
    }
    let captured_a = append(&mut c, &e, &[&cam]).await.unwrap().index;
    let copy = |asset: Option<[u8; 32]>, manifest: Option<v1::Manifest>| {
        custody_body(|x| {
            x.action = v1::CustodyActionKind::Copy as i32;
            x.actor = "vendor".into();
            x.asset_digest = asset.map(|d| d.to_vec()).unwrap_or_default();
            x.manifest = manifest;
            x.from_system = system_of("cam");
            x.to_system = system_of("vendor");
        })
    };
    let copied_a = append(
        &mut c,
        &at(event("vendor", copy(Some(a), None)), t0 + 10 * SEC),
        &[&vendor],
    )
    .await
    .unwrap()
    .index;
    let delete = custody_body(|x| {
        x.action = v1::CustodyActionKind::Delete as i32;
        x.actor = "vendor".into();
        x.asset_digest = a.to_vec();
        x.from_system = system_of("vendor");
        x.delete_method = v1::DeleteMethod::Overwrite as i32;
    });
    let deleted_a = append(
        &mut c,
        &at(event("vendor", delete), t0 + 20 * SEC),
        &[&vendor],
    )
    .await
    .unwrap()
    .index;

    // B, C, D: plate images captured in bulk, copied in bulk, acknowledged.
    let m = put_manifest(&mut c, &bulk).await;
    let mut e = at(event("cam", capture("cam")), t0 + 30 * SEC);
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest.clear();
        x.manifest = Some(m.clone());
        x.modality = v1::Modality::PlateImage as i32;
        x.subject_class = v1::SubjectClass::Unknown as i32;
    }
    append(&mut c, &e, &[&cam]).await.unwrap();
    let bulk_copy = append(
        &mut c,
        &at(event("vendor", copy(None, Some(m))), t0 + 40 * SEC),
        &[&vendor],
    )
    .await
    .unwrap()
    .index;
    let receipt = custody_body(|x| {
        x.action = v1::CustodyActionKind::Receipt as i32;
        x.actor = "vendor".into();
        x.receipt_of = bulk_copy;
    });
    append(
        &mut c,
        &at(event("vendor", receipt), t0 + 50 * SEC),
        &[&vendor],
    )
    .await
    .unwrap();

    let dir = log.dir.path().to_owned();
    let vkey = log.vkey.clone();
    let later = rfc3339(t0 + 3000 * SEC);
    let hex_a = hex(&a);
    let hex_b = hex(&bulk[1]);
    let cam_sys = system_of("cam");
    let vendor_sys = system_of("vendor");

    // Each kind of question, with the numbers the set-up makes.
    let f = dir.join("history-a.json");
    export(&log.grpc, &["history", "--asset", &hex_a], &f);
    let s = verified(&f, &vkey);
    assert!(
        s.starts_with(&format!(
            "verified: asset {hex_a} has 3 logged events from {} to {}: 1 CAPTURE, 1 COPY and 1 DELETE\n",
            rfc3339(t0),
            rfc3339(t0 + 20 * SEC)
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "per entries {captured_a}, {copied_a} and {deleted_a}\n"
        )),
        "{s}"
    );
    let f = dir.join("history-b.json");
    export(&log.grpc, &["history", "--asset", &hex_b], &f);
    let s = verified(&f, &vkey);
    assert!(
        s.contains("has 3 logged events") && s.contains("1 CAPTURE, 1 COPY and 1 RECEIPT"),
        "{s}"
    );

    let f = dir.join("holders.json");
    export(
        &log.grpc,
        &[
            "holders",
            "--asset",
            &hex_a,
            "--at",
            &rfc3339(t0 + 15 * SEC),
        ],
        &f,
    );
    let s = verified(&f, &vkey);
    assert!(
        s.contains(&format!(
            "at {}, asset {hex_a} was held by 2 parties on 2 systems (a face image of a citizen)\n",
            rfc3339(t0 + 15 * SEC)
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "  vendor on {vendor_sys} from {} (entry {copied_a}) to {} (entry {deleted_a})",
            rfc3339(t0 + 10 * SEC),
            rfc3339(t0 + 20 * SEC)
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "  cam on {cam_sys} from {} (entry {captured_a}), still there at the checkpoint",
            rfc3339(t0)
        )),
        "{s}"
    );

    let f = dir.join("holdings-party.json");
    export(
        &log.grpc,
        &["holdings", "--party", "vendor", "--at", &later],
        &f,
    );
    let s = verified(&f, &vkey);
    assert!(
        s.contains(&format!(
            "at {later}, party vendor held 3 distinct assets on 1 system: 3 plate images of unknown subjects\n"
        )),
        "{s}"
    );
    let f = dir.join("holdings-system.json");
    export(
        &log.grpc,
        &["holdings", "--system", &cam_sys, "--at", &later],
        &f,
    );
    let s = verified(&f, &vkey);
    assert!(
        s.contains(&format!(
            "at {later}, system {cam_sys} (owned by party cam) held 4 distinct assets: 1 face image of a citizen and 3 plate images of unknown subjects\n"
        )),
        "{s}"
    );

    let bs = dir.join("breach.json");
    let bytes = export(
        &log.grpc,
        &[
            "breach-scope",
            "--system",
            &vendor_sys,
            "--from",
            &rfc3339(t0),
            "--to",
            &later,
        ],
        &bs,
    );
    let s = verified(&bs, &vkey);
    assert!(
        s.contains(&format!(
            "4 distinct assets rested on system {vendor_sys}, owned by party vendor: 1 face image of a citizen and 3 plate images of unknown subjects\n"
        )),
        "{s}"
    );
    assert!(
        s.contains("  4 custody intervals, arrived from ") && s.contains("; 1 left the system"),
        "{s}"
    );
    assert!(s.contains("3 membership proofs"), "{s}");

    // Empty answers verify too, and say so.
    let f = dir.join("holders-before.json");
    export(
        &log.grpc,
        &["holders", "--asset", &hex_a, "--at", &rfc3339(t0 - SEC)],
        &f,
    );
    let s = verified(&f, &vkey);
    assert!(
        s.contains(&format!(
            "at {}, the answer names no holder of asset {hex_a}\nper no entry: the answer is empty\n",
            rfc3339(t0 - SEC)
        )),
        "{s}"
    );
    let f = dir.join("history-unknown.json");
    let unknown = hex(&[0x77; 32]);
    export(&log.grpc, &["history", "--asset", &unknown], &f);
    let s = verified(&f, &vkey);
    assert!(
        s.contains(&format!(
            "the answer lists no logged event about asset {unknown}"
        )),
        "{s}"
    );

    // A finding that does not exist: a clear refusal.
    let o = custody(&[
        "export",
        "--server",
        &log.grpc,
        "finding",
        "--id",
        "x",
        "--out",
        dir.join("f.json").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("NotFound: there is no finding \"x\" as of"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = custody(&[
        "export",
        "--server",
        &log.grpc,
        "holdings",
        "--party",
        "nobody",
        "--at",
        &later,
        "--out",
        dir.join("f.json").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("party nobody is not registered"));

    // Another log's key fails on the checkpoint.
    let other = Log::init();
    let e = verify(&bs, &other.vkey).unwrap_err();
    assert!(e.contains("does not verify: checkpoint: "), "{e}");

    // Tampering, part by part, through `custody verify`.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let tamper = Tamper {
        bytes: &bytes,
        text: &text,
        file: dir.join("tampered.json"),
        vkey: &vkey,
    };
    let b: Value = serde_json::from_slice(&bytes).unwrap();

    // The checkpoint: its note body (tree size, root) and signature line.
    let cp = tamper.find("\n  \"checkpoint\": \"", 0) + "\n  \"checkpoint\": \"".len();
    let size_line = tamper.find("\\n", cp) + 2;
    tamper.at(
        "checkpoint size",
        size_line,
        bytes[size_line] ^ 0x01,
        &["checkpoint: "],
    );
    let root_line = tamper.find("\\n", size_line) + 2 + 5;
    tamper.at(
        "checkpoint root",
        root_line,
        tamper.b64_char(root_line),
        &["checkpoint: "],
    );
    let sig_line = tamper.find("\u{2014} ", cp);
    let sig = tamper.find(" ", tamper.find(" ", sig_line) + 1) + 10;
    tamper.at(
        "checkpoint signature",
        sig,
        tamper.b64_char(sig),
        &["checkpoint: "],
    );
    tamper.at("checkpoint signer", sig_line + 6, b'X', &["checkpoint: "]);

    // An event signature inside an entry.
    let (start, entry) = tamper.entry("entries", copied_a);
    let Ok(custody_proto::Entry::Event { envelope, .. }) = custody_proto::decode_entry(&entry)
    else {
        panic!("entry {copied_a} is an event");
    };
    let sig = envelope.signatures[0].sig;
    let k = entry.windows(64).position(|w| w == sig).unwrap() + 6;
    let pos = start + b64_pos(k);
    tamper.at(
        "event signature",
        pos,
        tamper.b64_char(pos),
        &[
            &format!("entry {copied_a}: the signature by key"),
            "does not verify",
        ],
    );
    // The entry's other bytes: its integration time (not signed).
    let pos = start + b64_pos(entry.len() - 6);
    tamper.at(
        "entry bytes",
        pos,
        tamper.b64_char(pos),
        &[&format!("entry {copied_a}: ")],
    );
    tamper.at(
        "entry base64",
        start + 8,
        b'*',
        &[&format!("entry {copied_a}: ")],
    );
    tamper.at(
        "entry index",
        tamper.find(&format!("\"index\": {copied_a}"), 0) + 9,
        b'9',
        &["entr"],
    );

    // An inclusion-proof hash in an entry's tlog-proof, and its index line.
    let tp = tamper.find("\"tlog_proof\": \"c2sp.org/tlog-proof@v1\\nindex ", start);
    let hash = tamper.find("\\n", tamper.find("\\nindex ", tp) + 2) + 2 + 3;
    tamper.at(
        "inclusion proof hash",
        hash,
        tamper.b64_char(hash),
        &[
            "entry ",
            "the inclusion proof does not verify against the checkpoint",
        ],
    );
    tamper.at(
        "tlog-proof header",
        tp + 16,
        b'd',
        &["entry ", "tlog-proof"],
    );

    // A membership proof hash.
    let mp = tamper.find("\n  \"memberships\": [", 0);
    let hash = tamper.find("\"proof\": [\n        \"", mp) + "\"proof\": [\n        \"".len() + 4;
    tamper.at(
        "membership proof hash",
        hash,
        tamper.b64_char(hash),
        &["membership proof of asset", "does not verify"],
    );
    let count = tamper.find("\"count\": 3", mp) + 9;
    tamper.at(
        "membership count",
        count,
        b'4',
        &["membership proof of asset"],
    );

    // A registry entry: the vendor's key, and the genesis entry.
    let vendor_key_at = b["registry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .filter(|i| *i > 0)
        .max()
        .unwrap();
    let (start, entry) = tamper.entry("registry", vendor_key_at);
    let pos = start + b64_pos(entry.len() / 2);
    tamper.at(
        "registry entry",
        pos,
        tamper.b64_char(pos),
        &[&format!("registry entry {vendor_key_at}: ")],
    );
    let (start, _) = tamper.entry("registry", 0);
    tamper.at(
        "genesis",
        start + 12,
        tamper.b64_char(start + 12),
        &["registry entry 0: "],
    );

    // Answer fields: the count, the split, a row's party, times and index,
    // its class; and the question.
    let ans = tamper.find("\n  \"answer\": {", 0);
    let pos = tamper.find("\"asset_count\": 4", ans) + 15;
    tamper.at("asset_count", pos, b'5', &["answer: asset_count is 5"]);
    let pos = tamper.find("\"count\": 3", ans) + 9;
    tamper.at("by_class count", pos, b'2', &["answer: by_class"]);
    let pos = tamper.find("\"party\": \"vendor\"", ans) + 10;
    tamper.at(
        "row party",
        pos,
        b'w',
        &["answer: row 1", "registered to vendor, not wendor"],
    );
    let pos = tamper.find("\"from\": \"", tamper.find("\"intervals\"", ans)) + 9 + 18;
    tamper.at("row time", pos, bytes[pos] ^ 0x01, &["answer: row 1"]);
    let pos = tamper.find("\"opened_by\": ", tamper.find("\"intervals\"", ans)) + 13;
    tamper.at("row opened_by", pos, bytes[pos] ^ 0x02, &["answer: row 1"]);
    let pos = tamper.find("\"modality\": \"", tamper.find("\"intervals\"", ans)) + 13;
    tamper.at("row modality", pos, bytes[pos] ^ 0x01, &["answer: row 1"]);
    let pos = tamper.find(&hex_b[..20], ans) + 3;
    tamper.at("row asset", pos, b'9', &["answer: row"]);
    let q = tamper.find("\n  \"question\": {", 0);
    let pos = tamper.find("\"system\": \"", q) + 12;
    tamper.at(
        "question system",
        pos,
        b'E',
        &["question's system vEndor-sys"],
    );
    let pos = tamper.find("\"to\": \"", q) + 7 + 18;
    tamper.at(
        "question window",
        pos,
        if bytes[pos] == b'0' { b'1' } else { b'0' },
        &["digest: ", "question"],
    );
    let pos = tamper.find("\n  \"digest\": \"", 0) + 14;
    tamper.at(
        "digest",
        pos,
        if bytes[pos] == b'0' { b'1' } else { b'0' },
        &["digest"],
    );
    tamper.at("whitespace", q + 2, b'\t', &["line "]);
    tamper.at(
        "letter case",
        tamper.find("\"vendor\"", ans) + 1,
        b'V',
        &["answer"],
    );

    // A sample of positions across the whole file, checked in-process with
    // the same library the CLI uses (`custody verify` is checked above).
    let verifier = custody_log::LogVerifier::new(&std::fs::read_to_string(&vkey).unwrap()).unwrap();
    let step = (bytes.len() / 500).max(1);
    let mut checked = 0;
    for pos in (0..bytes.len())
        .step_by(step)
        .chain([bytes.len() - 1, bytes.len() - 2])
    {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x01;
        let e = match custody_evidence::verify_bundle(&bad, &verifier) {
            Ok(_) => panic!(
                "byte {pos} ({:?}) flipped and the bundle verifies",
                bytes[pos] as char
            ),
            Err(e) => e.to_string(),
        };
        let word = part_word(&text, pos);
        assert!(
            e.contains(word) || e.contains(" at line "),
            "byte {pos} in the {word:?} part: {e:?} does not name it"
        );
        checked += 1;
    }
    assert!(checked >= 500);
}

/// One finding of every rule the demo plants, exported as a bundle as of
/// the scenario's end and verified offline; one also through the web
/// view's link; a changed byte fails.
#[test]
fn the_demos_findings_export_as_bundles_that_verify() {
    let demo = Demo::start(11);
    let vkey = demo.vkey();
    let dir = demo.dir.path();
    let as_of = demo.truth["as_of"].as_str().unwrap().to_owned();
    let all = inspect_json(&[
        "findings", "--server", &demo.grpc, "--as-of", &as_of, "--all",
    ]);
    let mut first: std::collections::BTreeMap<String, Value> = Default::default();
    for f in all.as_array().unwrap() {
        first
            .entry(f["rule"].as_str().unwrap().to_owned())
            .or_insert_with(|| f.clone());
    }
    assert!(first.len() >= 3, "the demo plants findings: {first:?}");
    let mut files = Vec::new();
    for (rule, f) in &first {
        let id = f["id"].as_str().unwrap();
        let out = dir.join(format!("finding-{rule}.json"));
        let bytes = export(
            &demo.grpc,
            &["finding", "--id", id, "--as-of", &as_of],
            &out,
        );
        let s = verified(&out, &vkey);
        assert!(s.contains(&format!("finding {id} (rule {rule})")), "{s}");
        for field in ["party", "system"] {
            if let Some(v) = f[field].as_str().filter(|v| *v != "none" && !v.is_empty()) {
                assert!(s.contains(&format!("{field} {v}")), "{rule}: {s}");
            }
        }
        assert!(s.contains("not proven: "), "{s}");
        let b: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(b["answer"]["id"], id);
        assert_eq!(b["answer"]["entries"], f["entries"]);
        files.push((rule.clone(), id.to_owned(), out, bytes));
    }
    // The absences a bundle cannot show are said plainly.
    for (rule, _, out, _) in &files {
        if matches!(
            rule.as_str(),
            "unacknowledged_transfer" | "missing_attestation" | "unexplained_custody"
        ) {
            let s = verified(out, &vkey);
            assert!(s.contains("custody audit"), "{rule}: {s}");
        }
    }

    // The web view's link gives a bundle of the same finding.
    let (rule, id, _, bytes) = &files[0];
    let url = format!(
        "{}/evidence/finding?id={}&as_of={}",
        demo.http,
        id.replace(':', "%3A"),
        as_of.replace(':', "%3A")
    );
    let r = reqwest::blocking::get(&url).unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let downloaded = r.bytes().unwrap().to_vec();
    let http_file = dir.join("finding-http.json");
    std::fs::write(&http_file, &downloaded).unwrap();
    assert!(verified(&http_file, &vkey).contains(&format!("(rule {rule})")));
    let d: Value = serde_json::from_slice(&downloaded).unwrap();
    let b: Value = serde_json::from_slice(bytes).unwrap();
    if d["checkpoint"] == b["checkpoint"] {
        assert_eq!(&downloaded, bytes, "one checkpoint, one bundle");
    }
    let r = reqwest::blocking::get(format!(
        "{}/evidence/finding?id=no_such_rule%3A1&as_of=2026-01-01T00%3A00%3A00Z",
        demo.http
    ))
    .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::blocking::get(format!("{}/evidence/finding", demo.http)).unwrap();
    assert_eq!(r.status(), 400);

    // A flipped byte of the answer fails, naming it.
    let text = String::from_utf8(bytes.clone()).unwrap();
    let pos = text.find("\"detail\": \"").unwrap() + 12;
    let mut bad = bytes.clone();
    bad[pos] ^= 0x01;
    let bad_file = dir.join("finding-bad.json");
    std::fs::write(&bad_file, &bad).unwrap();
    let e = verify(&bad_file, &vkey).unwrap_err();
    assert!(e.contains("answer"), "{e}");
}

/// A C2SP tlog-proof may carry an `extra` line of unauthenticated data:
/// `custody verify` accepts a bundle whose proofs carry one, ignores it
/// (the statement is the one without it), and still refuses an `extra`
/// line that is not base64.
#[tokio::test(flavor = "multi_thread")]
async fn a_tlog_proof_with_an_extra_line_verifies_and_its_data_is_ignored() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let a = [0xab; 32];
    let mut e = event("cam", capture("cam"));
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest = a.to_vec();
    }
    append(&mut c, &e, &[&cam]).await.unwrap();
    let dir = log.dir.path().to_owned();
    let plain = dir.join("history.json");
    let bytes = export(&log.grpc, &["history", "--asset", &hex(&a)], &plain);
    let want = verified(&plain, &log.vkey);

    let (mut b, _) = custody_evidence::Bundle::parse(&bytes).unwrap();
    assert!(!b.entries.is_empty() && !b.registry.is_empty());
    for p in b.entries.iter_mut().chain(b.registry.iter_mut()) {
        assert_eq!(p.proof.extra, None, "the log writes no extra line");
        p.proof.extra = Some(b"age-v1.2.1-darwin-arm64.tar.gz".to_vec());
    }
    let with = b.to_bytes().unwrap();
    let text = String::from_utf8(with.clone()).unwrap();
    assert!(
        text.contains(
            "c2sp.org/tlog-proof@v1\\nextra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\\nindex "
        ),
        "{text}"
    );
    let extra = dir.join("history-extra.json");
    std::fs::write(&extra, &with).unwrap();
    assert_eq!(verified(&extra, &log.vkey), want);

    // Not base64: refused, naming the proof at fault.
    let bad = text.replace("extra YWdl", "extra !Wdl");
    let bad_file = dir.join("history-bad-extra.json");
    std::fs::write(&bad_file, bad).unwrap();
    let err = verify(&bad_file, &log.vkey).unwrap_err();
    assert!(err.contains("tlog-proof") && err.contains("extra"), "{err}");
}
