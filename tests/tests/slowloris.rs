//! Connection limits and timeouts on the real server (DESIGN §8, issue
//! 10): one address opens silent gRPC connections and trickles HTTP
//! request headers a line at a time, more than it may hold. The
//! connections over the per-address cap are closed at once, every other
//! one within the timeouts, and an honest client on another address is
//! served throughout.

use std::net::SocketAddr;
use std::time::Duration;

use custody_e2e::*;
use custody_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpSocket;
use tokio::time::Instant;

/// The attacker's address: loopback, but not the honest client's.
const ATTACKER: [u8; 4] = [127, 0, 0, 2];
/// Connections the attacker opens on each listener.
const OPENED: usize = 60;
/// Connections one address may hold on each listener.
const CAP: usize = 40;

async fn connect_from(src: [u8; 4], to: SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::from((src, 0)))
        .expect("bind the attacker's address");
    sock.connect(to).await.expect("connect").into_split()
}

/// `closed_within` is whether the server closes `r` within `within`
/// (whatever it sends first, such as HTTP/2 settings or a 408).
async fn closed_within(r: &mut OwnedReadHalf, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_trickling_and_excess_connections_are_closed_and_honest_clients_served() {
    let mut log = Log::init();
    log.start_with(&[
        "--idle-timeout-secs",
        "2",
        "--header-timeout-secs",
        "1",
        "--max-connections-per-address",
        &CAP.to_string(),
    ]);
    let (grpc, http) = (addr(&log.grpc), addr(&log.http));

    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..OPENED {
        silent.push(connect_from(ATTACKER, grpc).await);
    }
    let mut trickled = Vec::new();
    for _ in 0..OPENED {
        let (r, mut w) = connect_from(ATTACKER, http).await;
        let _ = w
            .write_all(b"GET /checkpoint HTTP/1.1\r\nhost: x\r\n")
            .await;
        trickled.push((r, w));
    }
    // A header line every 200 ms: bytes keep arriving, the headers never
    // end.
    let mut writers: Vec<OwnedWriteHalf> = Vec::new();
    let mut readers: Vec<OwnedReadHalf> = Vec::new();
    for (r, w) in trickled {
        readers.push(r);
        writers.push(w);
    }
    let trickle = tokio::spawn(async move {
        for n in 0..40 {
            for w in &mut writers {
                let _ = w.write_all(format!("x-{n}: y\r\n").as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // The honest client, on 127.0.0.1, is served while all that is open.
    let mut c = log.client().await;
    let web = reqwest::Client::new();
    for _ in 0..10 {
        let cp = c
            .get_checkpoint(v1::GetCheckpointRequest::default())
            .await
            .expect("an honest gRPC call during the attack");
        assert!(!cp.into_inner().checkpoint.is_empty());
        let r = web
            .get(format!("{}/checkpoint", log.http))
            .send()
            .await
            .expect("an honest HTTP request during the attack");
        assert!(r.status().is_success(), "{}", r.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Over the cap: closed at once. Within it: closed by the idle (gRPC)
    // or header (HTTP) timeout, well before the 8 s the trickle lasts.
    let mut at_once = [0usize; 2];
    let mut in_time = [0usize; 2];
    for (k, conns) in [
        silent.iter_mut().map(|(r, _)| r).collect::<Vec<_>>(),
        readers.iter_mut().collect(),
    ]
    .into_iter()
    .enumerate()
    {
        for r in conns {
            let left = Duration::from_secs(5).saturating_sub(started.elapsed());
            if closed_within(r, Duration::from_millis(1)).await {
                at_once[k] += 1;
                in_time[k] += 1;
            } else if closed_within(r, left).await {
                in_time[k] += 1;
            }
        }
    }
    let took = started.elapsed();
    trickle.abort();
    assert_eq!(
        in_time,
        [OPENED, OPENED],
        "connections left open after {took:?} (gRPC, HTTP)"
    );
    assert!(
        at_once.iter().all(|n| *n >= OPENED - CAP),
        "closed by the time they were checked: {at_once:?}; at least {} each were over the cap",
        OPENED - CAP
    );

    // And afterwards, still served; and the server is still up.
    let cp = c
        .get_checkpoint(v1::GetCheckpointRequest::default())
        .await
        .expect("an honest gRPC call after the attack");
    assert!(!cp.into_inner().checkpoint.is_empty());
    assert!(
        log.server_log()
            .contains("connection refused: too many open connections"),
        "the refusals are logged"
    );
}
