//! The log's APIs on a real server: unary and streaming appends, proofs
//! checked by the CLI's offline verifier, the C2SP tile API, dedup, and the
//! standard health and reflection services.

use custody_e2e::{append, capture, custody, event, register, signed, stream_requests, Log};
use custody_log::{decode_entry_bundle, leaf_hash, verify_inclusion, Hash, LogVerifier};
use custody_proto::v1;
use tonic::Code;

fn vkey(log: &Log) -> LogVerifier {
    LogVerifier::new(&std::fs::read_to_string(&log.vkey).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn unary_append_returns_a_durable_index_and_a_verifiable_inclusion_proof() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "lane-1-cam", 0, 0).await;
    let e = event("lane-1-cam", capture("lane-1-cam"));
    let r = append(&mut c, &e, &[&key]).await.unwrap();
    assert_eq!(
        r.index, 4,
        "genesis, party, its system, key, then this event"
    );
    assert!(!r.duplicate);
    let cp = vkey(&log).verify(&r.checkpoint).unwrap();
    assert!(cp.size > r.index);
    let entry = c
        .get_entries(v1::GetEntriesRequest {
            start: r.index,
            end: r.index + 1,
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .remove(0);
    let proof: Vec<Hash> = r
        .inclusion_proof
        .iter()
        .map(|h| Hash(h.as_slice().try_into().unwrap()))
        .collect();
    verify_inclusion(&proof, cp.size, &cp.root, r.index, &leaf_hash(&entry)).unwrap();
    // The leaf is the exact LogEntry bytes, holding the exact signed body.
    let decoded = <v1::LogEntry as prost::Message>::decode(entry.as_slice()).unwrap();
    let Some(v1::log_entry::Content::Event(ev)) = decoded.content else {
        panic!("not an event")
    };
    assert_eq!(ev.body, signed(&e, &[&key]).body);
    assert!(decoded.integrated_time_unix_nanos > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_appends_answer_in_order_and_report_refusals_in_band() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "lane-2-cam", 0, 0).await;
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut reqs = Vec::new();
    for i in 0..300 {
        let e = event("lane-2-cam", capture("lane-2-cam"));
        // Every 50th is signed by an unknown key and must be refused alone.
        let k = if i % 50 == 49 { &stranger } else { &key };
        reqs.push(v1::AppendRequest {
            event: Some(signed(&e, &[k])),
            wait_for_checkpoint: false,
        });
    }
    let mut out = c
        .append_stream(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    let mut indexes = Vec::new();
    let mut refused = 0;
    while let Some(r) = out.message().await.unwrap() {
        if r.error_code != 0 {
            assert_eq!(
                r.error_code,
                Code::PermissionDenied as i32,
                "{}",
                r.error_message
            );
            assert!(
                r.error_message.contains("unknown key"),
                "{}",
                r.error_message
            );
            refused += 1;
        } else {
            indexes.push(r.index);
        }
    }
    assert_eq!(refused, 6);
    assert_eq!(indexes.len(), 294);
    let mut sorted = indexes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 294, "every accepted event has its own index");
    assert_eq!(indexes, sorted, "responses come back in request order");
    assert_eq!(*indexes.first().unwrap(), 4);
    assert_eq!(*indexes.last().unwrap(), 4 + 293);
}

#[tokio::test(flavor = "multi_thread")]
async fn resubmitting_the_same_bytes_returns_the_original_index() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let e = event("cam", capture("cam"));
    let first = append(&mut c, &e, &[&key]).await.unwrap();
    let again = append(&mut c, &e, &[&key]).await.unwrap();
    assert_eq!(again.index, first.index);
    assert!(again.duplicate);
    // The same id with other bytes is a conflict, and nothing is appended.
    let mut other = event("cam", capture("cam"));
    other.event_id = e.event_id.clone();
    let size = c
        .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap();
    let err = append(&mut c, &other, &[&key]).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{}", err.message());
    assert!(
        err.message().contains(&first.index.to_string()),
        "{}",
        err.message()
    );
    let after = c
        .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap();
    assert_eq!(size.into_inner().checkpoint, after.into_inner().checkpoint);
    // Dedup survives a restart.
    log.kill();
    log.start();
    let mut c = log.client().await;
    let again = append(&mut c, &e, &[&key]).await.unwrap();
    assert_eq!((again.index, again.duplicate), (first.index, true));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_proofs_verify_offline_and_fail_on_a_tampered_file() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    for _ in 0..20 {
        append(&mut c, &event("cam", capture("cam")), &[&key])
            .await
            .unwrap();
    }
    let vk = log.vkey.to_str().unwrap().to_owned();
    let inc = log.path("inc.json");
    let out = custody(&[
        "prove",
        "inclusion",
        "--server",
        &log.grpc,
        "--index",
        "7",
        "--out",
        inc.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custody(&["verify", inc.to_str().unwrap(), "--log-key", &vk]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("inclusion verified: entry 7"));

    let con = log.path("con.json");
    let out = custody(&[
        "prove",
        "consistency",
        "--server",
        &log.grpc,
        "--old",
        "2",
        "--out",
        con.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custody(&["verify", con.to_str().unwrap(), "--log-key", &vk]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Tamper with the entry: the proof must fail, with a one-line reason.
    let mut f: serde_json::Value = serde_json::from_slice(&std::fs::read(&inc).unwrap()).unwrap();
    f["index"] = serde_json::json!(8);
    std::fs::write(&inc, serde_json::to_vec(&f).unwrap()).unwrap();
    let out = custody(&["verify", inc.to_str().unwrap(), "--log-key", &vk]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("entry 8: inclusion proof: invalid proof"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tile_api_serves_c2sp_tiles_that_rebuild_the_signed_root() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    custody_e2e::stream_captures(&mut c, "cam", &key, 600).await;
    // Wait for a checkpoint covering everything.
    let http = reqwest::Client::new();
    let cp = loop {
        let note = http
            .get(format!("{}/checkpoint", log.http))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let cp = vkey(&log).verify(&note).unwrap();
        if cp.size >= 603 {
            break cp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let size = cp.size;
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}/{path}", log.http);
        async move {
            let r = http.get(&url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap().to_owned()),
                r.bytes().await.unwrap().to_vec(),
            )
        }
    };
    // Entry bundles: two full tiles and a partial one.
    let mut leaves = Vec::new();
    for n in 0..size.div_ceil(256) {
        let w = (size - n * 256).min(256);
        let id = custody_log::TileId {
            kind: custody_log::TileKind::Entries,
            index: n,
            width: w as u32,
        };
        let (status, cache, body) = get(id.path()).await;
        assert_eq!(status, 200, "{}", id.path());
        if w == 256 {
            assert!(cache.unwrap().contains("immutable"));
        }
        let entries = decode_entry_bundle(&body).unwrap();
        assert_eq!(entries.len() as u64, w);
        leaves.extend(entries.iter().map(|e| leaf_hash(e)));
    }
    // Level-0 hash tiles hold exactly the leaf hashes.
    let (status, _, t0) = get("tile/0/000".into()).await;
    assert_eq!(status, 200);
    assert_eq!(t0.len(), 256 * 32);
    for (i, h) in t0.chunks(32).enumerate() {
        assert_eq!(h, leaves[i].0, "leaf {i}");
    }
    // The root rebuilt from the leaves matches the signed checkpoint.
    let mut mem = custody_log::MemoryHashes::default();
    mem.insert_all(custody_log::append_leaves(0, &leaves, &mem).unwrap());
    assert_eq!(custody_log::tree_root(size, &mem).unwrap(), cp.root);
    // Beyond the checkpoint, wrong widths, and bad paths are refused.
    let w = size % 256;
    assert_eq!(get(format!("tile/0/002.p/{}", w + 1)).await.0, 404);
    assert_eq!(get("tile/0/003".into()).await.0, 404);
    assert_eq!(get("tile/1/000".into()).await.0, 404);
    assert_eq!(get("tile/8/0/000".into()).await.0, 400);
    assert_eq!(get(format!("tile/0/002.p/{w}")).await.0, 200);
    assert_eq!(
        get("tile/0/001.p/3".into()).await.0,
        200,
        "prefix of a full tile"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection_are_served() {
    let mut log = Log::init();
    log.start();
    let ch = tonic::transport::Channel::from_shared(log.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "custody.v1.CustodyLog".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let m = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(l)) = m.message_response else {
        panic!("unexpected reflection answer")
    };
    let names: Vec<_> = l.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"custody.v1.CustodyLog"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_registered_earlier_in_a_stream_signs_later_events_in_it() {
    // The five requests usually land in one sequencer batch, where the new
    // key is unknown to the parallel verification stage and must be
    // verified in sequence; the verdicts must not depend on batching.
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let reg = event(
        &log.owner_id,
        custody_e2e::party_registered("usb-gw", &log.owner_id),
    );
    let sys = event(
        &log.owner_id,
        custody_e2e::system_registered("usb-gw-sys", "usb-gw", false, true),
    );
    let add = event(&log.owner_id, custody_e2e::key_added("usb-gw", &key, 0, 0));
    let good = signed(&event("usb-gw", capture("usb-gw")), &[&key]);
    let mut bad = signed(&event("usb-gw", capture("usb-gw")), &[&key]);
    bad.signatures[0].sig[0] ^= 1;
    let reqs: Vec<_> = [
        signed(&reg, &[&log.owner]),
        signed(&sys, &[&log.owner]),
        signed(&add, &[&log.owner]),
        good,
        bad,
    ]
    .into_iter()
    .map(|e| v1::AppendRequest {
        event: Some(e),
        wait_for_checkpoint: false,
    })
    .collect();
    let got: Vec<_> = stream_requests(&mut c, reqs)
        .await
        .into_iter()
        .map(|r| (r.error_code, r.index, r.error_message))
        .collect();
    assert_eq!(got.len(), 5);
    for (i, g) in got[..4].iter().enumerate() {
        assert_eq!((g.0, g.1), (0, i as u64 + 1), "{g:?}");
    }
    assert_eq!(got[4].0, Code::PermissionDenied as i32, "{:?}", got[4]);
    assert!(got[4].2.contains("does not verify"), "{:?}", got[4]);
}

/// Each tile has one path (C2SP tlog-tiles: no groups of leading zeroes
/// in the index): another spelling of a tile that is served is 404 and
/// names the one path, for hash tiles and entry bundles alike.
#[tokio::test(flavor = "multi_thread")]
async fn a_tile_is_served_at_its_canonical_path_only() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let r = append(&mut c, &event("cam", capture("cam")), &[&key])
        .await
        .unwrap();
    let size = vkey(&log).verify(&r.checkpoint).unwrap().size;
    assert!(size < 256);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}/{path}", log.http);
        async move {
            let r = http.get(&url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    for kind in ["0", "entries"] {
        let canonical = format!("tile/{kind}/000.p/{size}");
        let (status, body) = get(canonical.clone()).await;
        assert_eq!(status, 200, "{canonical}");
        assert!(!body.is_empty());
        for other in [
            format!("tile/{kind}/x000/000.p/{size}"),
            format!("tile/{kind}/x000/x000/000.p/{size}"),
            format!("tile/{kind}/x000/x000/x000/x000/x000/x000/000.p/{size}"),
        ] {
            let (status, body) = get(other.clone()).await;
            let body = String::from_utf8_lossy(&body);
            assert_eq!(status, 404, "{other}: {body}");
            assert!(
                body.contains("is not canonical") && body.contains(&canonical),
                "{other}: {body}"
            );
        }
    }
    assert_eq!(get("tile/0/x000/x000/000.p/1".into()).await.0, 404);
}

/// `channel` is a gRPC channel to the running server.
async fn channel(log: &Log) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(log.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Health reports every service the server serves as SERVING.
#[tokio::test(flavor = "multi_thread")]
async fn health_reports_every_service_as_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut log = Log::init();
    log.start();
    let ch = channel(&log).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for service in ["", "custody.v1.CustodyLog", "custody.v1.CustodyQuery"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map(|r| r.into_inner().status);
        assert_eq!(
            r.as_ref().ok(),
            Some(&(ServingStatus::Serving as i32)),
            "health of {service:?}: {r:?}"
        );
    }
}

/// Reflection answers in both versions, v1 and v1alpha (which many
/// clients still use), listing every service and describing the custody
/// services.
#[tokio::test(flavor = "multi_thread")]
async fn reflection_speaks_v1_and_v1alpha() {
    let mut log = Log::init();
    log.start();
    let ch = channel(&log).await;
    let want = [
        "custody.v1.CustodyLog",
        "custody.v1.CustodyQuery",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let mut refl = ServerReflectionClient::new(ch.clone());
        let reqs = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(
                    "custody.v1.CustodyQuery".into(),
                )),
            },
        ];
        let mut resp = refl
            .server_reflection_info(tokio_stream::iter(reqs))
            .await
            .map_err(|s| format!("v1alpha reflection: {s}"))
            .unwrap()
            .into_inner();
        let m = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(l)) = m.message_response else {
            panic!("v1alpha: unexpected answer {:?}", m.message_response)
        };
        let names: Vec<_> = l.service.iter().map(|s| s.name.as_str()).collect();
        for w in want {
            assert!(names.contains(&w), "v1alpha lists {w}: {names:?}");
        }
        let m = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(f)) = m.message_response else {
            panic!("v1alpha: unexpected answer {:?}", m.message_response)
        };
        assert!(!f.file_descriptor_proto.is_empty());
    }
    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let mut refl = ServerReflectionClient::new(ch);
        let reqs = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(
                    "custody.v1.CustodyQuery".into(),
                )),
            },
        ];
        let mut resp = refl
            .server_reflection_info(tokio_stream::iter(reqs))
            .await
            .unwrap()
            .into_inner();
        let m = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(l)) = m.message_response else {
            panic!("v1: unexpected answer {:?}", m.message_response)
        };
        let names: Vec<_> = l.service.iter().map(|s| s.name.as_str()).collect();
        for w in want {
            assert!(names.contains(&w), "v1 lists {w}: {names:?}");
        }
        let m = resp.message().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(f)) = m.message_response else {
            panic!("v1: unexpected answer {:?}", m.message_response)
        };
        assert!(!f.file_descriptor_proto.is_empty());
    }
}
