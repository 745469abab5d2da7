//! Crash safety: SIGKILL `custodyd` in the middle of a streaming load,
//! several times, restarting each time. Every acknowledged index must
//! still hold the same event, and `custody monitor` must accept every
//! checkpoint it saw across the restarts.

use std::collections::HashMap;
use std::time::Duration;

use custody_e2e::{capture, custody, event, register, signed, Log};
use custody_proto::v1;
use prost::Message as _;

fn monitor(log: &Log) {
    let out = custody(&[
        "monitor",
        "--url",
        &log.http,
        "--log-key",
        log.vkey.to_str().unwrap(),
        "--state",
        log.path("monitor.state").to_str().unwrap(),
        "--once",
    ]);
    assert!(
        out.status.success(),
        "monitor refused a checkpoint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_streaming_load_loses_no_acknowledged_entry() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    monitor(&log);

    // index -> the signed event body the server acknowledged at it.
    let mut acked: HashMap<u64, Vec<u8>> = HashMap::new();
    for round in 0..5u64 {
        let events: Vec<v1::SignedEvent> = (0..20_000)
            .map(|_| signed(&event("cam", capture("cam")), &[&key]))
            .collect();
        let bodies: Vec<Vec<u8>> = events.iter().map(|e| e.body.to_vec()).collect();
        let reqs = events.into_iter().map(|e| v1::AppendRequest {
            event: Some(e),
            wait_for_checkpoint: false,
        });
        let mut c = log.client().await;
        let mut out = c
            .append_stream(tokio_stream::iter(reqs))
            .await
            .unwrap()
            .into_inner();
        let kill_after = Duration::from_millis(300 + 150 * round);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok(Some(r)) = out.message().await {
                got.push(r);
            }
            got
        });
        tokio::time::sleep(kill_after / 2).await;
        monitor(&log);
        tokio::time::sleep(kill_after / 2).await;
        log.kill();
        let responses = reader.await.unwrap();
        let mut n = 0;
        for (i, r) in responses.iter().enumerate() {
            if r.error_code == 0 {
                assert!(
                    acked.insert(r.index, bodies[i].clone()).is_none(),
                    "index {} acked twice",
                    r.index
                );
                n += 1;
            }
        }
        eprintln!("round {round}: {n} acknowledged before SIGKILL");

        log.start();
        monitor(&log);
    }
    assert!(
        acked.len() > 1000,
        "the load barely ran: {} acks",
        acked.len()
    );

    // Every acknowledged index still holds the same event.
    let mut c = log.client().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let max = *acked.keys().max().unwrap();
    let mut start = 0;
    while start <= max {
        let end = (start + 1000).min(max + 1);
        let entries = c
            .get_entries(v1::GetEntriesRequest { start, end })
            .await
            .unwrap()
            .into_inner()
            .entries;
        for (k, bytes) in entries.iter().enumerate() {
            let i = start + k as u64;
            if let Some(body) = acked.get(&i) {
                let e = v1::LogEntry::decode(bytes.as_slice()).unwrap();
                let Some(v1::log_entry::Content::Event(ev)) = e.content else {
                    panic!("entry {i} is not an event")
                };
                assert_eq!(&ev.body.to_vec(), body, "entry {i} changed across restarts");
            }
        }
        start = end;
    }
    monitor(&log);
}
