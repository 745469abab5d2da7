//! Manifests: their wire forms, their root, their storage and their use.
//!
//! The input's first byte picks one of:
//!
//! 0. a `PutManifestRequest` (the upload's wire form): its 32-byte members
//!    are hashed into a tree and root as custodyd's PutManifest does
//!    (custody-log `append_leaves`, `tree_root`), stored with
//!    custody-store's `manifest_writes` and read back with its readers
//!    and `StoreView` (what admission reads), each member's membership
//!    proof made and verified (`prove_inclusion`, `verify_inclusion`), and
//!    a bulk CAPTURE of the manifest admitted a slice at a time
//!    (custody-domain `admit_members`, custody-admission `bulk_members`);
//! 1. a `MembershipProof` (from an `Evidence` message or a bundle), checked
//!    as custody-evidence checks one, against any root, count and index;
//! 2. a `Manifest` message inside an event that names it (the
//!    `custody.manifest` and `legal_hold.assets` of an event body, through
//!    custody-proto's `decode_event`).
//!
//! The manifest root check of `custody audit` (`check_manifest` in
//! custody-cli) and the ordering checks of PutManifest (custodyd) live in
//! crates that pull in RocksDB, so they are not called here.
#![no_main]

use std::ops::Range;

use custody_domain::{admit_members, key_id_of, CustodyView, Event, EventBody, ManifestRef};
use custody_fuzz::{custody, fixture, manifest_tree, party_key, uuid, Bytes, ORIGIN, SEC, T0};
use custody_log::{leaf_hash, prove_inclusion, verify_inclusion, Hash, MemoryHashes};
use custody_proto::{decode_event, v1};
use custody_store::index::{self, StoreView};
use custody_store::{LogStore, MemoryStore};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// Members hashed and stored at most per input, so each run stays fast.
const MAX_MEMBERS: usize = 300;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    match b.u8() % 3 {
        0 => upload(&mut b),
        1 => membership(b.rest()),
        _ => in_event(b.rest()),
    }
});

fn upload(b: &mut Bytes<'_>) {
    let start = b.u64() % 512;
    let limit = (b.u64() % 512) as usize;
    let range_start = (b.u64() % 512) as usize;
    let range_len = (b.u64() % 512) as usize;
    let Ok(req) = v1::PutManifestRequest::decode(b.rest()) else {
        return;
    };
    // PutManifest takes distinct 32-byte digests in ascending order.
    let mut members: Vec<[u8; 32]> = req
        .members
        .iter()
        .take(MAX_MEMBERS)
        .filter_map(|m| <[u8; 32]>::try_from(m.as_slice()).ok())
        .collect();
    members.sort_unstable();
    members.dedup();
    let (stored, root) = manifest_tree(&members);
    let Some(root) = root else {
        return;
    };
    if members.is_empty() {
        return;
    }
    let count = members.len() as u64;
    if !req.expected_root.is_empty() && req.expected_root.as_slice() != root.as_slice() {
        return;
    }

    // Stored as PutManifest stores it, read back as admission reads it.
    let store = MemoryStore::default();
    let hashes: Vec<(u64, [u8; 32])> = stored.iter().map(|(i, h)| (*i, h.0)).collect();
    if store
        .index_write(&index::manifest_writes(&root, &members, &hashes))
        .is_err()
    {
        return;
    }
    assert_eq!(index::manifest_count(&store, &root).ok(), Some(Some(count)));
    let page = index::manifest_members(&store, &root, start, limit);
    let want = members
        .get((start as usize).min(members.len())..)
        .unwrap_or(&[]);
    let want = &want[..want.len().min(limit)];
    assert_eq!(page.ok().as_deref(), Some(want), "page {start}+{limit}");
    for (i, m) in members.iter().enumerate().take(8) {
        assert_eq!(
            index::manifest_member(&store, &root, i as u64).ok(),
            Some(Some(*m))
        );
    }
    let m = ManifestRef { root, count };
    let view = StoreView(&store);
    let all = view.manifest(&m);
    assert_eq!(all.ok().flatten().as_deref(), Some(&members));
    let range = range_start..range_start.saturating_add(range_len);
    let slice = view.manifest_members(&m, range.clone());
    let end = range.end.min(members.len());
    let want = members.get(range.start.min(end)..end).unwrap_or(&[]);
    assert_eq!(slice.ok().flatten().as_deref(), Some(want));

    // Every member proves its membership; no other index does.
    let mut tree = MemoryHashes::default();
    tree.insert_all(stored);
    let root_hash = Hash(root);
    for (i, d) in members.iter().enumerate().take(8) {
        let proof = prove_inclusion(count, i as u64, &tree);
        let Ok(proof) = proof else {
            panic!("no proof for member {i} of {count}");
        };
        assert!(verify_inclusion(&proof, count, &root_hash, i as u64, &leaf_hash(d)).is_ok());
        let other = (i as u64 + 1) % count;
        if other != i as u64 && members[other as usize] != *d {
            assert!(verify_inclusion(&proof, count, &root_hash, other, &leaf_hash(d)).is_err());
        }
    }

    bulk_capture(&store, m, range);
}

/// `bulk_capture` admits a CAPTURE of the manifest by the fixture's camera
/// for the members in `range`, and the whole of it.
fn bulk_capture(store: &MemoryStore, m: ManifestRef, range: Range<usize>) {
    let fx = fixture();
    let body = custody(|x| {
        x.action = v1::CustodyActionKind::Capture as i32;
        x.actor = "cam".into();
        x.manifest = Some(v1::Manifest {
            root: m.root.to_vec(),
            count: m.count,
        });
        x.to_system = "cam-sys".into();
        x.modality = v1::Modality::PlateImage as i32;
        x.subject_class = v1::SubjectClass::Unknown as i32;
    });
    let bytes = v1::Event {
        event_id: uuid(1000),
        event_time_unix_nanos: T0 + 60 * SEC,
        reporter: "cam".into(),
        reporter_seq: 1000,
        log_origin: ORIGIN.into(),
        body: Some(body),
    }
    .encode_to_vec();
    let Ok(event) = decode_event(&bytes) else {
        panic!("the fixture's bulk capture does not decode");
    };
    let signers = [key_id_of(&party_key("cam").verifying_key().to_bytes())];
    let view = StoreView(store);
    let at = T0 + 70 * SEC;
    let size = fx.entries.len() as u64;
    let slice = admit_members(
        &fx.registry,
        &view,
        &signers,
        &event,
        size,
        at,
        range.clone(),
    );
    if let Ok(a) = &slice {
        let n = range
            .end
            .min(m.count as usize)
            .saturating_sub(range.start.min(m.count as usize));
        assert_eq!(a.effects.opened.len(), n, "slice {range:?} of {}", m.count);
    }
    let whole = admit_members(
        &fx.registry,
        &view,
        &signers,
        &event,
        size,
        at,
        0..usize::MAX,
    );
    if let Ok(a) = &whole {
        assert_eq!(a.effects.opened.len() as u64, m.count);
    }
    let _ = custody_admission::bulk_members(&event, &view, range.start);
}

/// `membership` checks a membership proof as custody-evidence does.
fn membership(data: &[u8]) {
    let Ok(p) = v1::MembershipProof::decode(data) else {
        return;
    };
    let (Ok(root), Ok(asset)) = (
        <[u8; 32]>::try_from(p.manifest_root.as_slice()),
        <[u8; 32]>::try_from(p.asset.as_slice()),
    ) else {
        return;
    };
    let Some(proof) = p
        .proof
        .iter()
        .map(|h| <[u8; 32]>::try_from(h.as_slice()).ok().map(Hash))
        .collect::<Option<Vec<Hash>>>()
    else {
        return;
    };
    let ok = verify_inclusion(&proof, p.count, &Hash(root), p.index, &leaf_hash(&asset)).is_ok();
    if ok {
        assert!(p.index < p.count);
    }
    // A one-member manifest is its member's leaf hash, with no proof.
    if p.count == 1 && p.index == 0 && proof.is_empty() {
        assert_eq!(ok, leaf_hash(&asset).0 == root);
    }
}

/// `in_event` decodes the input as a `Manifest` and places it where events
/// carry one, then decodes that event as custody-proto does.
fn in_event(data: &[u8]) {
    let Ok(m) = v1::Manifest::decode(data) else {
        return;
    };
    let capture = custody(|x| {
        x.action = v1::CustodyActionKind::Capture as i32;
        x.actor = "cam".into();
        x.manifest = Some(m.clone());
        x.to_system = "cam-sys".into();
    });
    let hold = v1::event::Body::LegalHold(v1::LegalHold {
        hold_id: "h".into(),
        assets: Some(v1::AssetRef {
            r#ref: Some(v1::asset_ref::Ref::Manifest(m.clone())),
        }),
        ..Default::default()
    });
    let attest = v1::event::Body::CustodyAttestation(v1::CustodyAttestation {
        holdings: Some(m.clone()),
        system_id: "cam-sys".into(),
    });
    for body in [capture, hold, attest] {
        let bytes = v1::Event {
            event_id: uuid(1),
            event_time_unix_nanos: T0,
            reporter: "cam".into(),
            reporter_seq: 1,
            log_origin: ORIGIN.into(),
            body: Some(body),
        }
        .encode_to_vec();
        if let Ok(event) = decode_event(&bytes) {
            check_manifest_ref(&event, &m);
        }
    }
}

/// A manifest an event decodes with is the one it was given.
fn check_manifest_ref(event: &Event, m: &v1::Manifest) {
    let named = match &event.body {
        EventBody::Custody(c) => match &c.asset {
            Some(custody_domain::AssetRef::Manifest(r)) => Some(*r),
            _ => None,
        },
        EventBody::LegalHold(h) => match &h.assets {
            Some(custody_domain::AssetRef::Manifest(r)) => Some(*r),
            _ => None,
        },
        EventBody::CustodyAttestation(a) if m.count > 0 => Some(a.holdings),
        _ => None,
    };
    if let Some(r) = named {
        assert_eq!(r.root.as_slice(), m.root.as_slice());
        assert_eq!(r.count, m.count);
        assert!(r.count >= 1 && r.count <= custody_domain::MAX_MANIFEST_MEMBERS);
    }
}
