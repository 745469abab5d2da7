//! Custody queries on the real server, every answer verified offline by
//! `custody inspect --verify`, and the demo's answers checked against its
//! generator's own ground truth.

use std::collections::BTreeSet;

use custody_domain::{parse_rfc3339, rfc3339};
use custody_e2e::*;
use custody_proto::v1;
use serde_json::Value;

const SEC: i64 = 1_000_000_000;

fn t(s: &Value) -> i64 {
    parse_rfc3339(s.as_str().expect("a time")).expect("RFC 3339")
}

/// Distinct assets of `intervals` overlapping the closed window [a, b].
fn scope(intervals: &[Value], a: i64, b: i64) -> BTreeSet<String> {
    intervals
        .iter()
        .filter(|i| t(&i["from"]) <= b && (i["to"].is_null() || t(&i["to"]) > a))
        .map(|i| i["asset"].as_str().unwrap().to_owned())
        .collect()
}

fn breach_scope(demo: &Demo, system: &str, a: i64, b: i64) -> Value {
    let vkey = demo.vkey();
    inspect_json(&[
        "breach-scope",
        "--server",
        &demo.grpc,
        "--system",
        system,
        "--from",
        &rfc3339(a),
        "--to",
        &rfc3339(b),
        "--all",
        "--page-size",
        "400",
        "--verify",
        "--log-key",
        vkey.to_str().unwrap(),
    ])
}

fn listed(answer: &Value) -> BTreeSet<String> {
    answer["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["asset"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_demos_breach_scope_matches_its_ground_truth() {
    let demo = Demo::start(7);
    let truth = &demo.truth;
    let (start, end) = (t(&truth["from"]), t(&truth["to"]));
    let systems = truth["systems"].as_object().unwrap();
    let net = systems["subco-corp-net"].as_array().unwrap();
    assert!(!net.is_empty(), "the scenario copies to the subcontractor");
    let first_copy = net.iter().map(|i| t(&i["from"])).min().unwrap();

    // The whole scenario, a day, a window ending exactly when the first
    // batch arrived (inclusive) and one ending a second before it.
    let windows = [
        (start, end),
        (start + 24 * 3600 * SEC, start + 48 * 3600 * SEC),
        (start, first_copy),
        (start, first_copy - SEC),
    ];
    for (system, intervals) in systems {
        let intervals = intervals.as_array().unwrap();
        for (a, b) in windows {
            let want = scope(intervals, a, b);
            let got = breach_scope(&demo, system, a, b);
            assert_eq!(
                got["asset_count"].as_u64().unwrap(),
                want.len() as u64,
                "{system} from {} to {}",
                rfc3339(a),
                rfc3339(b)
            );
            assert_eq!(got["complete"], Value::Bool(true));
            assert_eq!(listed(&got), want, "{system}: listed assets");
            let split: u64 = got["by_class"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["count"].as_u64().unwrap())
                .sum();
            assert_eq!(split, want.len() as u64, "{system}: the split adds up");
        }
    }
    assert_eq!(
        scope(net, first_copy - 2 * SEC, first_copy - SEC).len(),
        0,
        "the window before the first copy is empty in the truth too"
    );

    // The summary the operator sees names the same number.
    let out = std::fs::read_to_string(&demo.stdout).unwrap();
    let want = scope(net, start, end).len();
    assert!(
        out.contains(&format!("{want} distinct images")),
        "summary: {out}"
    );

    // Holders of some exfiltrated assets, at the moment they reached the
    // subcontractor's network, against the truth of every system.
    let vkey = demo.vkey();
    for i in net.iter().step_by(net.len() / 15 + 1) {
        let asset = i["asset"].as_str().unwrap();
        let at = t(&i["from"]);
        let want: BTreeSet<(String, String)> = systems
            .iter()
            .flat_map(|(sys, v)| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .filter(|j| j["asset"] == asset)
                    .filter(|j| t(&j["from"]) <= at && (j["to"].is_null() || t(&j["to"]) > at))
                    .map(|j| (sys.clone(), j["party"].as_str().unwrap().to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let got = inspect_json(&[
            "holders",
            "--server",
            &demo.grpc,
            "--asset",
            asset,
            "--at",
            &rfc3339(at),
            "--verify",
            "--log-key",
            vkey.to_str().unwrap(),
        ]);
        let got: BTreeSet<(String, String)> = got["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["system"].as_str().unwrap().to_owned(),
                    h["party"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(got.contains(&("subco-corp-net".into(), "maint-subco".into())));
        assert_eq!(got, want, "holders of {asset} at {}", rfc3339(at));
    }

    // What the subcontractor holds at the end, over both its systems.
    let at = end;
    let want: usize = ["usb-export", "subco-corp-net"]
        .iter()
        .map(|s| {
            systems[*s]
                .as_array()
                .unwrap()
                .iter()
                .filter(|j| t(&j["from"]) <= at && (j["to"].is_null() || t(&j["to"]) > at))
                .count()
        })
        .sum();
    let got = inspect_json(&[
        "holdings",
        "--server",
        &demo.grpc,
        "--party",
        "maint-subco",
        "--at",
        &rfc3339(at),
        "--all",
        "--page-size",
        "300",
        "--verify",
        "--log-key",
        vkey.to_str().unwrap(),
    ]);
    assert_eq!(got["intervals"].as_array().unwrap().len(), want);
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

#[tokio::test(flavor = "multi_thread")]
async fn every_query_answers_with_evidence_the_cli_verifies() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;
    let vendor = register(&log, &mut c, "vendor", 0, 0).await;
    let t0 = now() - 3600 * SEC;
    let a = [0xaa; 32];
    let mut bulk = [[0x01; 32], [0x02; 32], [0x03; 32]];
    bulk.sort_unstable();

    // A: captured, copied to the vendor, deleted there.
    let mut e = at(event("cam", capture("cam")), t0);
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest = a.to_vec();
    }
    append(&mut c, &e, &[&cam]).await.unwrap();
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
    append(
        &mut c,
        &at(event("vendor", copy(Some(a), None)), t0 + 10 * SEC),
        &[&vendor],
    )
    .await
    .unwrap();
    let delete = custody_body(|x| {
        x.action = v1::CustodyActionKind::Delete as i32;
        x.actor = "vendor".into();
        x.asset_digest = a.to_vec();
        x.from_system = system_of("vendor");
        x.delete_method = v1::DeleteMethod::Overwrite as i32;
    });
    append(
        &mut c,
        &at(event("vendor", delete), t0 + 20 * SEC),
        &[&vendor],
    )
    .await
    .unwrap();

    // B, C, D: one bulk capture and one bulk copy through a manifest.
    let m = put_manifest(&mut c, &bulk).await;
    let mut e = at(event("cam", capture("cam")), t0 + 30 * SEC);
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest.clear();
        x.manifest = Some(m.clone());
    }
    append(&mut c, &e, &[&cam]).await.unwrap();
    append(
        &mut c,
        &at(event("vendor", copy(None, Some(m))), t0 + 40 * SEC),
        &[&vendor],
    )
    .await
    .unwrap();

    let vkey = log.vkey.to_str().unwrap().to_owned();
    let q = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &log.grpc, "--verify", "--log-key", &vkey]);
        inspect_json(&all)
    };
    let hex_a = custody_domain::hex(&a);
    let hex_b = custody_domain::hex(&bulk[1]);

    let h = q(&["history", "--asset", &hex_a]);
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["CAPTURE", "COPY", "DELETE"]);
    assert_eq!(h["verified"], Value::Bool(true));
    let h = q(&["history", "--asset", &hex_b]);
    assert_eq!(
        h["events"].as_array().unwrap().len(),
        2,
        "bulk events count"
    );

    let holders = |asset: &str, time: i64| -> BTreeSet<String> {
        q(&["holders", "--asset", asset, "--at", &rfc3339(time)])["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["system"].as_str().unwrap().to_owned())
            .collect()
    };
    let both = BTreeSet::from([system_of("cam"), system_of("vendor")]);
    assert_eq!(holders(&hex_a, t0 - SEC), BTreeSet::new(), "before capture");
    assert_eq!(holders(&hex_a, t0), BTreeSet::from([system_of("cam")]));
    assert_eq!(holders(&hex_a, t0 + 10 * SEC), both, "from the copy on");
    assert_eq!(
        holders(&hex_a, t0 + 20 * SEC),
        BTreeSet::from([system_of("cam")]),
        "the delete ends the vendor's interval"
    );
    assert_eq!(holders(&hex_b, t0 + 45 * SEC), both, "through the manifest");

    let now_s = rfc3339(now());
    let vendor_sys = system_of("vendor");
    let hold = q(&[
        "holdings",
        "--system",
        &vendor_sys,
        "--at",
        &now_s,
        "--all",
        "--page-size",
        "1",
    ]);
    let held: BTreeSet<&str> = hold["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["asset"].as_str().unwrap())
        .collect();
    assert_eq!(held.len(), 3, "B, C and D; A was deleted: {hold}");
    assert!(!held.contains(hex_a.as_str()));
    let by_party = q(&["holdings", "--party", "vendor", "--at", &now_s, "--all"]);
    assert_eq!(by_party["intervals"], hold["intervals"]);

    let from = rfc3339(t0);
    let bs = q(&[
        "breach-scope",
        "--system",
        &vendor_sys,
        "--from",
        &from,
        "--to",
        &now_s,
        "--all",
        "--page-size",
        "1",
    ]);
    assert_eq!(bs["asset_count"], 4);
    assert_eq!(bs["assets_listed"], 4);
    let bs = q(&[
        "breach-scope",
        "--system",
        &vendor_sys,
        "--from",
        &rfc3339(t0 + 21 * SEC),
        "--to",
        &rfc3339(t0 + 39 * SEC),
    ]);
    assert_eq!(bs["asset_count"], 0, "between the delete and the bulk copy");

    // A pinned key other than the log's makes --verify fail, printing
    // nothing of the answer.
    let other = Log::init();
    let out = custody(&[
        "inspect",
        "history",
        "--asset",
        &hex_a,
        "--server",
        &log.grpc,
        "--verify",
        "--log-key",
        other.vkey.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoint"), "{err}");
}
