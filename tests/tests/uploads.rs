//! Manifest upload limits (`crates/custodyd/src/uploads.rs`): uploads in
//! progress per uploader, the members all uploads may hold in memory,
//! idle and total time, manifests waiting to be named, and the removal of
//! a manifest no entry names in time. Each refusal is RESOURCE_EXHAUSTED
//! with a message that names the limit, and keeps nothing.

use std::time::{Duration, Instant};

use custody_e2e::*;
use custody_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// `manifest` is `n` random digests, sorted.
fn manifest(n: usize) -> Vec<[u8; 32]> {
    let mut m: Vec<[u8; 32]> = (0..n).map(|_| random_digest()).collect();
    m.sort();
    m.dedup();
    m
}

/// `root_of` is the manifest root of `members`, computed here.
fn root_of(members: &[[u8; 32]]) -> v1::Manifest {
    use custody_log::{append_leaves, leaf_hash, tree_root, MemoryHashes};
    let leaves: Vec<_> = members.iter().map(|d| leaf_hash(d)).collect();
    let mut memory = MemoryHashes::default();
    let hashes = append_leaves(0, &leaves, &memory).unwrap();
    memory.insert_all(hashes);
    v1::Manifest {
        root: tree_root(leaves.len() as u64, &memory).unwrap().0.to_vec(),
        count: members.len() as u64,
    }
}

fn chunk(members: &[[u8; 32]]) -> v1::PutManifestRequest {
    v1::PutManifestRequest {
        members: members.iter().map(|d| d.to_vec()).collect(),
        expected_root: Vec::new(),
    }
}

/// `stalled` starts an upload that sends `members` and then nothing, and
/// returns the sender that keeps it open and the call's answer.
async fn stalled(
    log: &Log,
    members: &[[u8; 32]],
) -> (
    mpsc::Sender<v1::PutManifestRequest>,
    tokio::task::JoinHandle<Result<v1::PutManifestResponse, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(chunk(members)).await.unwrap();
    let mut c = log.client().await;
    let call = tokio::spawn(async move {
        c.put_manifest(ReceiverStream::new(rx))
            .await
            .map(|r| r.into_inner())
    });
    // Let the server take it in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (tx, call)
}

async fn try_upload(log: &Log, members: &[[u8; 32]]) -> Result<v1::Manifest, tonic::Status> {
    let mut c = log.client().await;
    let messages: Vec<_> = members.chunks(4096).map(chunk).collect();
    c.put_manifest(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner().manifest.unwrap_or_default())
}

async fn is_stored(log: &Log, m: &v1::Manifest) -> bool {
    let mut c = log.client().await;
    match c
        .get_manifest(v1::GetManifestRequest {
            root: m.root.clone(),
            start: 0,
            limit: 1,
            asset: Vec::new(),
        })
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == tonic::Code::NotFound => false,
        Err(s) => panic!("GetManifest: {s:?}"),
    }
}

fn exhausted(r: Result<impl std::fmt::Debug, tonic::Status>, says: &str) -> String {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message().contains(says),
        "{says:?} not in {:?}",
        s.message()
    );
    s.message().to_owned()
}

/// `bulk_capture` is a CAPTURE of manifest `m` by `actor` into its system.
fn bulk_capture(actor: &str, m: &v1::Manifest) -> v1::Event {
    let mut e = event(actor, capture(actor));
    if let Some(v1::event::Body::Custody(x)) = &mut e.body {
        x.asset_digest.clear();
        x.manifest = Some(m.clone());
    }
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_at_once_memory_and_time_are_bounded_and_a_refused_upload_keeps_nothing() {
    let mut log = Log::init();
    log.start_with(&[
        "--max-uploads-per-reporter",
        "2",
        "--upload-buffer-members",
        "20000",
        "--upload-idle-secs",
        "2",
    ]);
    // Two stalled uploads from this address: a third is refused at once.
    let first = manifest(100);
    let (tx1, call1) = stalled(&log, &first).await;
    let (tx2, call2) = stalled(&log, &manifest(100)).await;
    let m = exhausted(try_upload(&log, &manifest(10)).await, "uploads in progress");
    assert!(m.contains("127.0.0.1"), "{m}");
    // The stalled ones time out, keep nothing, and free their places.
    let started = Instant::now();
    let r1 = call1.await.unwrap();
    exhausted(r1, "--upload-idle-secs");
    exhausted(call2.await.unwrap(), "--upload-idle-secs");
    assert!(started.elapsed() < Duration::from_secs(30));
    drop((tx1, tx2));
    // Nothing of the stalled upload was kept.
    assert!(!is_stored(&log, &root_of(&first)).await);
    let whole = try_upload(&log, &first).await.expect("sent whole");
    assert_eq!(whole, root_of(&first));
    assert!(is_stored(&log, &whole).await);

    // Memory: members all uploads hold at once.
    let big = manifest(25_000);
    exhausted(try_upload(&log, &big).await, "at most 20000");
    assert!(!is_stored(&log, &root_of(&big)).await);
    let small = try_upload(&log, &manifest(5_000))
        .await
        .expect("within the budget");
    assert!(is_stored(&log, &small).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn unnamed_manifests_are_capped_per_uploader_and_removed_after_their_time_unless_named() {
    let mut log = Log::init();
    log.start_with(&["--max-pending-manifests", "2", "--manifest-ttl-secs", "3"]);
    let mut c = log.client().await;
    let cam = register(&log, &mut c, "cam", 0, 0).await;

    let kept = try_upload(&log, &manifest(50)).await.expect("first");
    let dropped_members = manifest(50);
    let dropped = try_upload(&log, &dropped_members).await.expect("second");
    let members = manifest(40);
    let m = exhausted(try_upload(&log, &members).await, "no entry names yet");
    assert!(m.contains("127.0.0.1"), "{m}");
    // Uploading one again is no new manifest: allowed.
    let again = try_upload(&log, &dropped_members).await.expect("again");
    assert_eq!(again, dropped);

    // Naming one frees its place, and keeps it for ever.
    let r = append(&mut c, &bulk_capture("cam", &kept), &[&cam])
        .await
        .expect("a bulk capture naming the first");
    assert!(r.index > 0);
    let third = try_upload(&log, &members).await.expect("a place was freed");

    // After the time, the unnamed ones are gone; the named one stays.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(is_stored(&log, &kept).await, "a named manifest is kept");
    assert!(!is_stored(&log, &dropped).await, "unnamed, so removed");
    assert!(!is_stored(&log, &third).await, "unnamed, so removed");
    // An event naming a removed manifest is refused, and says why.
    let e = append(&mut c, &bulk_capture("cam", &dropped), &[&cam])
        .await
        .expect_err("names a removed manifest");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("was not uploaded"), "{e:?}");
    // Its place is free again, and it can be uploaded again and named.
    let back = try_upload(&log, &manifest(50)).await.expect("places freed");
    append(&mut c, &bulk_capture("cam", &back), &[&cam])
        .await
        .expect("named in time");
    // The log still audits clean: every named manifest is there.
    audit_agrees(&log);
}

/// `rss_mib` is the resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib / 1024
}

/// The attack this limit answers: six stalled uploads of a million
/// members each, from three addresses, once took a server to 6.8 GiB.
/// With the default limits the uploads beyond the memory budget are
/// refused as they grow, and the server stays small.
#[tokio::test(flavor = "multi_thread")]
async fn six_stalled_million_member_uploads_do_not_take_the_servers_memory() {
    let mut log = Log::init();
    log.start();
    let pid = log.child.as_ref().unwrap().id();
    let before = rss_mib(pid);
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..6u8 {
        let from = std::net::IpAddr::from([127, 0, 0, 2 + i / 2]);
        let ch = tonic::transport::Endpoint::from_shared(log.grpc.clone())
            .unwrap()
            .local_address(Some(from))
            .connect()
            .await
            .unwrap();
        let mut c = v1::custody_log_client::CustodyLogClient::new(ch);
        let (tx, rx) = mpsc::channel(8);
        let call = tokio::spawn(async move {
            c.put_manifest(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner())
        });
        // A million members in messages of 4,096, then silence.
        let members = manifest(1_000_000);
        let mut open = true;
        for part in members.chunks(4096) {
            if tx.send(chunk(part)).await.is_err() {
                open = false;
                break;
            }
        }
        drop(members);
        if !open || call.is_finished() {
            let r = call.await.unwrap();
            exhausted(r, "members");
            refused += 1;
        } else {
            held.push((tx, call));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rss_mib(pid);
    assert!(refused >= 2, "{refused} of 6 refused");
    assert!(
        during < before + 1024,
        "the server grew from {before} MiB to {during} MiB"
    );
    eprintln!(
        "server RSS: {before} MiB before, {during} MiB with {} uploads held and {refused} refused",
        held.len()
    );
}
