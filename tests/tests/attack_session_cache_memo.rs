//! Attacks on the server's shared caches: the bounded cache of the tree's
//! upper stored hashes (`custody_log::HashCache`, shared by every proof,
//! hash tile and append) and the breach-scope count memo
//! (`custodyd::query::ScopeMemo`, keyed by system, window and tree size).
//!
//! Each test warms a cache at one tree size, grows the log, and then asks
//! again at old checkpoints, at the new one, at sizes that are no
//! checkpoint, with forged page tokens (arbitrary cursors, sizes that were
//! never published) and extreme windows. Every answer is compared with
//! what the test computes itself from the entries it read back (proofs,
//! roots, tiles) or from the events it logged (breach scopes).

use std::collections::BTreeMap;
use std::time::Duration;

use custody_e2e::random_digest as digest;
use custody_e2e::*;
use custody_log::{
    append_leaves, hash_tile, leaf_hash, prove_consistency, prove_inclusion, tree_root,
    verify_consistency, verify_inclusion, Hash, LogVerifier, MemoryHashes, VerifiedCheckpoint,
};
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use custody_proto::v1::event::Body;
use custody_proto::v1::CustodyActionKind as K;
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

const SEC: i64 = 1_000_000_000;

fn verifier(log: &Log) -> LogVerifier {
    LogVerifier::new(&std::fs::read_to_string(&log.vkey).unwrap()).unwrap()
}

fn hashes(v: &[Vec<u8>]) -> Vec<Hash> {
    v.iter()
        .map(|h| Hash(h.as_slice().try_into().expect("32-byte hash")))
        .collect()
}

/// `checkpoint_at_least` waits for a published checkpoint of at least `n`
/// entries and returns it, verified.
async fn checkpoint_at_least(
    log: &Log,
    c: &mut CustodyLogClient<Channel>,
    n: u64,
) -> VerifiedCheckpoint {
    for _ in 0..400 {
        let note = c
            .get_checkpoint(v1::GetCheckpointRequest { tree_size: 0 })
            .await
            .unwrap()
            .into_inner()
            .checkpoint;
        let cp = verifier(log).verify(&note).unwrap();
        if cp.size >= n {
            return cp;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no checkpoint of {n} entries");
}

/// `local_tree` reads the first `n` entries back and builds their tree.
async fn local_tree(c: &mut CustodyLogClient<Channel>, n: u64) -> MemoryHashes {
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + 1000).min(n);
        let got = c
            .get_entries(v1::GetEntriesRequest { start, end })
            .await
            .unwrap()
            .into_inner()
            .entries;
        assert_eq!(got.len() as u64, end - start);
        leaves.extend(got.iter().map(|e| leaf_hash(e)));
        start = end;
    }
    let mut mem = MemoryHashes::default();
    mem.insert_all(append_leaves(0, &leaves, &mem).unwrap());
    mem
}

async fn inclusion(
    c: &mut CustodyLogClient<Channel>,
    index: u64,
    size: u64,
) -> Result<v1::GetInclusionProofResponse, tonic::Status> {
    c.get_inclusion_proof(v1::GetInclusionProofRequest {
        index,
        tree_size: size,
    })
    .await
    .map(|r| r.into_inner())
}

async fn consistency(
    c: &mut CustodyLogClient<Channel>,
    old: u64,
    new: u64,
) -> Result<v1::GetConsistencyProofResponse, tonic::Status> {
    c.get_consistency_proof(v1::GetConsistencyProofRequest {
        old_size: old,
        new_size: new,
    })
    .await
    .map(|r| r.into_inner())
}

async fn http_get(log: &Log, path: &str) -> (u16, Vec<u8>) {
    let r = reqwest::get(format!("{}/{path}", log.http)).await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// The hash cache is warmed at one checkpoint (proofs, a partial level-1
/// tile), the log grows past several more level-8 subtrees, and then
/// proofs at the old and new checkpoints, consistency proofs from sizes
/// that are no checkpoint, and partial and full upper tiles must all be
/// what the entries themselves give, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn cached_upper_hashes_never_answer_for_another_size() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;

    stream_captures(&mut c, "cam", &key, 600).await;
    let a = checkpoint_at_least(&log, &mut c, 604).await;
    // Warm the cache at size A: proofs of leaves in both level-8
    // subtrees, the root's upper hashes, a partial level-1 tile.
    for i in [0, 1, 255, 256, 300, 511, 512, a.size - 1] {
        let r = inclusion(&mut c, i, a.size).await.unwrap();
        verify_inclusion(&hashes(&r.proof), a.size, &a.root, i, &leaf_hash(&r.entry))
            .unwrap_or_else(|e| panic!("proof of {i} at {}: {e}", a.size));
    }
    let w_a = a.size / 256;
    let (status, tile_a) = http_get(&log, &format!("tile/1/000.p/{w_a}")).await;
    assert_eq!(status, 200);
    // Ask for things not in the tree yet: nothing may be cached for them.
    assert!(inclusion(&mut c, a.size + 300, a.size + 400).await.is_err());
    assert!(consistency(&mut c, a.size, a.size + 1000).await.is_err());
    assert_eq!(
        http_get(&log, &format!("tile/1/000.p/{}", w_a + 1)).await.0,
        404
    );

    stream_captures(&mut c, "cam", &key, 1100).await;
    let b = checkpoint_at_least(&log, &mut c, a.size + 1100).await;
    let mem = local_tree(&mut c, b.size).await;
    assert_eq!(tree_root(a.size, &mem).unwrap(), a.root, "root of A");
    assert_eq!(tree_root(b.size, &mem).unwrap(), b.root, "root of B");

    // Inclusion proofs at both checkpoints, equal to the local ones.
    for size in [a.size, b.size, a.size] {
        for i in (0..size).step_by(37).chain([size - 1, 256, 511, 512, 767]) {
            if i >= size {
                continue;
            }
            let r = inclusion(&mut c, i, size).await.unwrap();
            assert_eq!(
                hashes(&r.proof),
                prove_inclusion(size, i, &mem).unwrap(),
                "ATTACK SUCCEEDED: the proof of {i} at {size} is not the entries' own"
            );
        }
    }
    // Every other tree size: refused when no checkpoint of it was
    // stored, and otherwise its own signed root and proof, whatever the
    // cache holds from the sizes asked before.
    let v = verifier(&log);
    let mut answered = 0;
    for s in (1..=b.size).step_by(41).chain([
        a.size - 1,
        a.size,
        a.size + 1,
        b.size - 1,
        b.size,
        256,
        512,
        768,
    ]) {
        let i = (s * 7 + 3) % s;
        match inclusion(&mut c, i, s).await {
            Err(_) => {}
            Ok(r) => {
                answered += 1;
                let cp = v.verify(&r.checkpoint).unwrap();
                assert_eq!((cp.size, r.tree_size), (s, s));
                assert_eq!(
                    cp.root,
                    tree_root(s, &mem).unwrap(),
                    "ATTACK SUCCEEDED: the checkpoint of {s} is not the entries' root"
                );
                assert_eq!(
                    hashes(&r.proof),
                    prove_inclusion(s, i, &mem).unwrap(),
                    "ATTACK SUCCEEDED: the proof of {i} at {s} is not the entries' own"
                );
            }
        }
    }
    assert!(answered >= 2, "the checkpoints A and B answer");
    for s in [b.size + 1, b.size + 300, u64::MAX] {
        assert!(
            inclusion(&mut c, 0, s).await.is_err(),
            "a proof at {s}, past the log, was served"
        );
    }
    // Consistency from every kind of old size (no checkpoint, exact
    // subtree boundaries, one past them) to both checkpoints.
    for new in [b.size, a.size] {
        let new_root = if new == b.size { b.root } else { a.root };
        for old in [
            1, 2, 255, 256, 257, 511, 512, 513, 600, 767, 768, 1024, 1025, a.size, new,
        ] {
            if old > new {
                continue;
            }
            let r = consistency(&mut c, old, new).await.unwrap();
            let p = hashes(&r.proof);
            assert_eq!(
                p,
                prove_consistency(old, new, &mem).unwrap(),
                "ATTACK SUCCEEDED: consistency {old} -> {new} is not the entries' own"
            );
            verify_consistency(&p, old, &tree_root(old, &mem).unwrap(), new, &new_root)
                .unwrap_or_else(|e| panic!("consistency {old} -> {new}: {e}"));
        }
    }
    // Upper tiles: the partial one served at A is a prefix of the one at
    // B, and both are the local level-8 hashes.
    let w_b = b.size / 256;
    let (status, tile_b) = http_get(&log, &format!("tile/1/000.p/{w_b}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        tile_b,
        hash_tile(1, 0, w_b as u32, &mem).unwrap(),
        "ATTACK SUCCEEDED: the level-1 tile at {} is not the entries' own",
        b.size
    );
    assert_eq!(&tile_b[..tile_a.len()], &tile_a[..]);
    for w in 1..=w_b {
        let (status, t) = http_get(&log, &format!("tile/1/000.p/{w}")).await;
        assert_eq!(status, 200);
        assert_eq!(t, hash_tile(1, 0, w as u32, &mem).unwrap(), "width {w}");
    }
    // The append path reads the same cache: a waited append's proof
    // verifies at its checkpoint.
    let e = event("cam", capture("cam"));
    let r = append(&mut c, &e, &[&key]).await.unwrap();
    let cp = verifier(&log).verify(&r.checkpoint).unwrap();
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
    verify_inclusion(
        &hashes(&r.inclusion_proof),
        cp.size,
        &cp.root,
        r.index,
        &leaf_hash(&entry),
    )
    .unwrap();
    // A point read past the end is refused, not answered.
    let past = c
        .get_entries(v1::GetEntriesRequest {
            start: cp.size + 5,
            end: cp.size + 6,
        })
        .await;
    assert!(past
        .map(|r| r.into_inner().entries.is_empty())
        .unwrap_or(true));
}

// ---------------------------------------------------------------------
// Breach scope

fn act(f: impl FnOnce(&mut v1::CustodyAction)) -> Body {
    let mut a = v1::CustodyAction::default();
    f(&mut a);
    Body::Custody(a)
}

fn capture_into(asset: &[u8; 32], system: &str, m: v1::Modality) -> Body {
    act(|a| {
        a.action = K::Capture as i32;
        a.actor = "cam".into();
        a.asset_digest = asset.to_vec();
        a.to_system = system.into();
        a.modality = m as i32;
        a.subject_class = v1::SubjectClass::Citizen as i32;
    })
}

fn moved(asset: &[u8; 32], from: &str, to: &str) -> Body {
    act(|a| {
        a.action = K::Move as i32;
        a.actor = "cam".into();
        a.asset_digest = asset.to_vec();
        a.from_system = from.into();
        a.to_system = to.into();
        a.purpose = v1::Purpose::Maintenance as i32;
    })
}

fn timed(t: i64, body: Body) -> v1::Event {
    let mut e = event("cam", body);
    e.event_time_unix_nanos = t;
    e.reporter_seq = 0;
    e
}

/// `ModelInterval` is what the test logged: an interval on a system.
#[derive(Clone, Debug)]
struct ModelInterval {
    asset: [u8; 32],
    system: String,
    from: i64,
    opened_by: u64,
    closed: Option<(i64, u64)>,
    modality: i32,
}

/// `Rows` is (asset, opened_by, to, closed_by) per listed interval.
type Rows = Vec<([u8; 32], u64, i64, u64)>;

/// `expected` is the breach scope as of `size` over `[from, to]`:
/// (asset, opened_by, to, closed_by) per interval in key order, and the
/// count by modality.
fn expected(
    model: &[ModelInterval],
    system: &str,
    size: u64,
    from: i64,
    to: i64,
) -> (Rows, BTreeMap<i32, u64>) {
    let mut rows = Vec::new();
    for i in model {
        if i.system != system || i.opened_by >= size {
            continue;
        }
        let closed = i.closed.filter(|(_, by)| *by < size);
        let overlaps = i.from <= to && closed.is_none_or(|(t, _)| t > from);
        if overlaps {
            let (t, by) = closed.unwrap_or((0, 0));
            rows.push((i.asset, i.opened_by, t, by, i.modality));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let mut classes = BTreeMap::new();
    let mut last = None;
    for r in &rows {
        if last != Some(r.0) {
            *classes.entry(r.4).or_insert(0) += 1;
            last = Some(r.0);
        }
    }
    (
        rows.into_iter()
            .map(|(a, o, t, b, _)| (a, o, t, b))
            .collect(),
        classes,
    )
}

fn rows_of(r: &v1::BreachScopeResponse) -> Rows {
    r.intervals
        .iter()
        .map(|i| {
            (
                <[u8; 32]>::try_from(i.asset.as_slice()).unwrap(),
                i.opened_by,
                i.to_unix_nanos,
                if i.to_unix_nanos != 0 { i.closed_by } else { 0 },
            )
        })
        .collect()
}

fn classes_of(r: &v1::BreachScopeResponse) -> BTreeMap<i32, u64> {
    r.by_class
        .iter()
        .map(|c| (c.modality, c.count))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn token(size: u64, cursor: &[u8]) -> Vec<u8> {
    let mut t = size.to_be_bytes().to_vec();
    t.extend_from_slice(cursor);
    t
}

async fn scope(
    q: &mut CustodyQueryClient<Channel>,
    system: &str,
    from: i64,
    to: i64,
    page: u32,
    page_token: Vec<u8>,
) -> Result<v1::BreachScopeResponse, tonic::Status> {
    q.breach_scope(v1::BreachScopeRequest {
        system_id: system.into(),
        from_unix_nanos: from,
        to_unix_nanos: to,
        page_size: page,
        page_token,
    })
    .await
    .map(|r| r.into_inner())
}

/// `walk` follows the tokens from `first` to the end: the counts of every
/// page (they must agree) and every interval listed.
async fn walk(
    q: &mut CustodyQueryClient<Channel>,
    system: &str,
    from: i64,
    to: i64,
    page: u32,
    first: Vec<u8>,
) -> (u64, BTreeMap<i32, u64>, Rows, Option<u64>) {
    let mut rows = Vec::new();
    let mut tok = first;
    let mut counts: Option<(u64, BTreeMap<i32, u64>)> = None;
    let mut size = None;
    for _ in 0..1000 {
        let r = scope(q, system, from, to, page, tok).await.unwrap();
        let c = (r.asset_count, classes_of(&r));
        if let Some(prev) = &counts {
            assert_eq!(
                prev, &c,
                "ATTACK SUCCEEDED: one listing's pages disagree on the counts ({system} [{from}, {to}])"
            );
        }
        counts = Some(c);
        rows.extend(rows_of(&r));
        if r.next_page_token.is_empty() {
            let (n, by) = counts.unwrap();
            return (n, by, rows, size);
        }
        size = Some(u64::from_be_bytes(
            r.next_page_token[..8].try_into().unwrap(),
        ));
        tok = r.next_page_token;
    }
    panic!("the walk did not end");
}

struct World {
    log: Log,
    c: CustodyLogClient<Channel>,
    q: CustodyQueryClient<Channel>,
    key: SigningKey,
    model: Vec<ModelInterval>,
}

impl World {
    async fn stream(&mut self, evs: Vec<v1::Event>) -> Vec<u64> {
        let reqs: Vec<_> = evs
            .iter()
            .map(|e| v1::AppendRequest {
                event: Some(signed(e, &[&self.key])),
                wait_for_checkpoint: false,
            })
            .collect();
        let mut out = self
            .c
            .append_stream(tokio_stream::iter(reqs))
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        while let Some(r) = out.message().await.unwrap() {
            assert_eq!(r.error_code, 0, "refused: {}", r.error_message);
            got.push(r.index);
        }
        assert_eq!(got.len(), evs.len());
        got
    }

    async fn capture(&mut self, assets: &[[u8; 32]], system: &str, t0: i64) {
        let evs: Vec<_> = assets
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let m = if k % 3 == 0 {
                    v1::Modality::PlateImage
                } else {
                    v1::Modality::FaceImage
                };
                timed(t0 + k as i64 * SEC, capture_into(a, system, m))
            })
            .collect();
        let idx = self.stream(evs).await;
        for (k, (a, i)) in assets.iter().zip(idx).enumerate() {
            let m = if k % 3 == 0 {
                v1::Modality::PlateImage
            } else {
                v1::Modality::FaceImage
            };
            self.model.push(ModelInterval {
                asset: *a,
                system: system.into(),
                from: t0 + k as i64 * SEC,
                opened_by: i,
                closed: None,
                modality: m as i32,
            });
        }
    }

    async fn move_all(&mut self, assets: &[[u8; 32]], from: &str, to: &str, t0: i64) {
        let evs: Vec<_> = assets
            .iter()
            .enumerate()
            .map(|(k, a)| timed(t0 + k as i64 * SEC, moved(a, from, to)))
            .collect();
        let idx = self.stream(evs).await;
        for (k, (a, i)) in assets.iter().zip(idx).enumerate() {
            let t = t0 + k as i64 * SEC;
            let open = self
                .model
                .iter_mut()
                .find(|m| m.asset == *a && m.system == from && m.closed.is_none())
                .expect("an open interval to move from");
            open.closed = Some((t, i));
            let modality = open.modality;
            self.model.push(ModelInterval {
                asset: *a,
                system: to.into(),
                from: t,
                opened_by: i,
                closed: None,
                modality,
            });
        }
    }

    /// `check` walks `[from, to]` on `system` pinned at `size` and
    /// compares it with the model as of `size`; false when the server
    /// refuses the size (no checkpoint of it).
    async fn check(&mut self, system: &str, from: i64, to: i64, page: u32, size: u64) -> bool {
        if scope(&mut self.q, system, from, to, page, token(size, &[]))
            .await
            .is_err()
        {
            return false;
        }
        let (n, by, rows, pinned) =
            walk(&mut self.q, system, from, to, page, token(size, &[])).await;
        if let Some(p) = pinned {
            assert_eq!(p, size, "a page token moved to another size");
        }
        let (want_rows, want_by) = expected(&self.model, system, size, from, to);
        let want_n = want_by.values().sum::<u64>();
        assert_eq!(
            (n, &by),
            (want_n, &want_by),
            "ATTACK SUCCEEDED: breach scope counts on {system} [{from}, {to}] as of {size}"
        );
        assert_eq!(
            rows, want_rows,
            "ATTACK SUCCEEDED: breach scope intervals on {system} [{from}, {to}] as of {size}"
        );
        true
    }
}

/// Breach-scope answers pinned at a checkpoint stay what the log said at
/// that size while the log grows, intervals close after it and a system is
/// registered after it; forged tokens (cursors that name no asset,
/// sizes never published) give the scan's answer or are refused; and the
/// same window asked at a later size counts again.
#[tokio::test(flavor = "multi_thread")]
async fn breach_scope_memo_is_never_stale_nor_forged() {
    let mut log = Log::init();
    log.start();
    let mut c = log.client().await;
    let key = register(&log, &mut c, "cam", 0, 0).await;
    let q = CustodyQueryClient::connect(log.grpc.clone()).await.unwrap();
    let mut w = World {
        log,
        c,
        q,
        key,
        model: Vec::new(),
    };
    let sys = system_of("cam");
    let base = now() - 600 * SEC;
    let mut assets: Vec<[u8; 32]> = (0..30).map(|_| digest()).collect();
    // Include the extreme digests a forged cursor might name.
    assets[0] = [0u8; 32];
    assets[1] = [0xffu8; 32];
    w.capture(&assets, &sys, base).await;
    let n0 = w.model.iter().map(|m| m.opened_by).max().unwrap() + 1;
    let a = checkpoint_at_least(&w.log, &mut w.c, n0).await;

    let windows = [
        (i64::MIN, i64::MAX),
        (base, base + 10 * SEC),
        (base + 15 * SEC, base + 15 * SEC),
        (base + 100 * SEC, base + 130 * SEC),
        // After the moves: every asset at A, half of them at B.
        (base + 140 * SEC, base + 150 * SEC),
        (0, base + 5 * SEC),
    ];
    // Warm the memo at A: every window, page size 4.
    let mut tokens_at_a = Vec::new();
    for (from, to) in windows {
        let first = scope(&mut w.q, &sys, from, to, 4, Vec::new())
            .await
            .unwrap();
        if first.next_page_token.is_empty() {
            continue;
        }
        assert_eq!(&first.next_page_token[..8], &a.size.to_be_bytes()[..]);
        // The rest of this walk reads the counts the first page kept.
        let (n, _, _, _) = walk(&mut w.q, &sys, from, to, 4, first.next_page_token.clone()).await;
        assert_eq!(n, first.asset_count);
        assert!(w.check(&sys, from, to, 4, a.size).await);
        tokens_at_a.push((from, to));
    }
    assert!(!tokens_at_a.is_empty());

    // Grow: a new system (registered after A), half the assets moved to
    // it (closing their intervals after A), more captures.
    let vault = "vault-sys";
    let reg = event(
        &w.log.owner_id,
        system_registered(vault, "cam", true, false),
    );
    append(&mut w.c, &reg, &[&w.log.owner]).await.unwrap();
    let half: Vec<_> = assets[..15].to_vec();
    w.move_all(&half, &sys, vault, base + 120 * SEC).await;
    let more: Vec<[u8; 32]> = (0..12).map(|_| digest()).collect();
    w.capture(&more, &sys, base + 200 * SEC).await;
    let n1 = w.model.iter().map(|m| m.opened_by).max().unwrap() + 1;
    let b = checkpoint_at_least(&w.log, &mut w.c, n1).await;
    assert!(b.size > a.size);

    // 1. Pinned at A, walked now: what the log said at A.
    for &(from, to) in &tokens_at_a {
        assert!(w.check(&sys, from, to, 4, a.size).await);
        assert!(w.check(&sys, from, to, 7, a.size).await);
        // And from every forged cursor: the scan's rows after it.
        let (_, want_by) = expected(&w.model, &sys, a.size, from, to);
        let (want_rows, _) = expected(&w.model, &sys, a.size, from, to);
        let mut cursors: Vec<[u8; 32]> = vec![[0u8; 32], [0xffu8; 32], digest(), digest()];
        cursors.extend(want_rows.iter().map(|r| r.0).take(3));
        let mut bumped = want_rows[0].0;
        bumped[31] ^= 1;
        cursors.push(bumped);
        for cur in cursors {
            let r = scope(&mut w.q, &sys, from, to, 1000, token(a.size, &cur))
                .await
                .unwrap();
            let after: Rows = want_rows.iter().filter(|r| r.0 > cur).cloned().collect();
            assert_eq!(
                rows_of(&r),
                after,
                "ATTACK SUCCEEDED: a forged cursor {cur:02x?} at {} lists other rows",
                a.size
            );
            assert_eq!(classes_of(&r), want_by, "counts after a forged cursor");
            assert!(r.next_page_token.is_empty());
        }
    }
    // 2. The same windows now, at B: counted again, not A's counts.
    for (from, to) in windows {
        let first = scope(&mut w.q, &sys, from, to, 4, Vec::new())
            .await
            .unwrap();
        let (want_rows, want_by) = expected(&w.model, &sys, b.size.max(n1), from, to);
        let latest = checkpoint_at_least(&w.log, &mut w.c, 0).await;
        assert_eq!(latest.size, b.size, "the log did not grow meanwhile");
        assert_eq!(
            (first.asset_count, classes_of(&first)),
            (want_by.values().sum::<u64>(), want_by.clone()),
            "ATTACK SUCCEEDED: [{from}, {to}] at {} counted as of an older size",
            b.size
        );
        if first.next_page_token.is_empty() {
            assert_eq!(rows_of(&first), want_rows);
        } else {
            let mut all = rows_of(&first);
            let (_, _, rest, _) =
                walk(&mut w.q, &sys, from, to, 4, first.next_page_token.clone()).await;
            all.extend(rest);
            assert_eq!(all, want_rows, "[{from}, {to}] at {}", b.size);
        }
    }
    // 3. The system registered after A, asked as of A: nothing was there.
    let r = scope(&mut w.q, vault, i64::MIN, i64::MAX, 2, token(a.size, &[]))
        .await
        .unwrap();
    assert_eq!(r.asset_count, 0, "ATTACK SUCCEEDED: vault had assets at A");
    assert!(r.intervals.is_empty());
    let r = scope(&mut w.q, vault, i64::MIN, i64::MAX, 2, Vec::new())
        .await
        .unwrap();
    assert_eq!(r.asset_count, 15, "vault at B");
    assert!(w.check(vault, i64::MIN, i64::MAX, 2, b.size).await);
    assert!(w.check(vault, i64::MIN, i64::MAX, 2, a.size).await);
    // Every size between A and B: its own answer where a checkpoint of
    // it was stored (the memo keeps each size's counts apart).
    for s in a.size..=b.size {
        w.check(&sys, i64::MIN, i64::MAX, 4, s).await;
        w.check(vault, base, base + 125 * SEC, 3, s).await;
    }
    // 4. Forged sizes: never published, past the end, zero. Refused, and
    // nothing they could have memoised shows up later.
    for bad in [b.size + 1, b.size + 1000, 0, u64::MAX] {
        if bad == a.size || bad == b.size {
            continue;
        }
        let r = scope(&mut w.q, &sys, i64::MIN, i64::MAX, 4, token(bad, &[])).await;
        assert!(
            r.is_err(),
            "ATTACK SUCCEEDED: a token pinned at {bad}, no checkpoint, was answered"
        );
    }
    // Short and long cursors.
    for cur in [vec![1u8; 31], vec![1u8; 33], vec![1u8; 7]] {
        let t = if cur.len() == 7 {
            cur
        } else {
            token(a.size, &cur)
        };
        assert!(scope(&mut w.q, &sys, i64::MIN, i64::MAX, 4, t)
            .await
            .is_err());
    }
    // A window that ends before it starts, and extreme page sizes.
    assert!(scope(&mut w.q, &sys, 5, 4, 4, Vec::new()).await.is_err());
    assert!(scope(&mut w.q, &sys, i64::MAX, i64::MIN, 4, Vec::new())
        .await
        .is_err());
    assert!(scope(&mut w.q, &sys, 0, 1, u32::MAX, Vec::new())
        .await
        .is_err());
    // Grow once more and ask the A-pinned walk again: still A's answer.
    let late: Vec<[u8; 32]> = (0..5).map(|_| digest()).collect();
    w.capture(&late, &sys, base + 300 * SEC).await;
    let rest: Vec<_> = assets[15..20].to_vec();
    w.move_all(&rest, &sys, vault, base + 320 * SEC).await;
    let n2 = w.model.iter().map(|m| m.opened_by).max().unwrap() + 1;
    checkpoint_at_least(&w.log, &mut w.c, n2).await;
    for &(from, to) in &tokens_at_a {
        assert!(w.check(&sys, from, to, 3, a.size).await);
        assert!(w.check(&sys, from, to, 5, b.size).await);
    }
    // The server still answers.
    let r = scope(&mut w.q, &sys, i64::MIN, i64::MAX, 0, Vec::new()).await;
    assert!(r.is_ok(), "{}", w.log.server_log());
}
