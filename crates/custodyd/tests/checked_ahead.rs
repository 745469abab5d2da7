//! `check_batch` may run against any earlier registry of the same log, as
//! `custody audit` runs it a batch ahead of admission (and as a checker
//! thread ahead of the sequencer would). Admission must still judge every
//! signer by the registry as of the entry: a key added in the batch before is verified
//! late, a forgery by it is refused, and a key revoked in the batch before
//! is refused even though the checker saw it valid.

use custody_admission::{admit_bounded, check_batch, load_registry, Sequenced};
use custody_domain::{key_id_of, Refusal, Registry, SignedEnvelope};
use custody_proto::v1;
use custody_store::index::check_derived_settings;
use custody_store::{Commit, LogStore};
use custody_store_rocks::RocksStore;
use ed25519_dalek::SigningKey;
use prost::Message as _;

const ORIGIN: &str = "custody.example/checked-ahead";
const T0: i64 = 1_700_000_000_000_000_000;

struct Log {
    _dir: tempfile::TempDir,
    store: RocksStore,
    registry: Registry,
    owner: SigningKey,
    seq: u64,
}

impl Log {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let owner = SigningKey::from_bytes(&[7; 32]);
        check_derived_settings(&store, &mut |_, _| {}).unwrap();
        let genesis = v1::LogEntry {
            content: Some(v1::log_entry::Content::Genesis(v1::Genesis {
                origin: ORIGIN.into(),
                owner_party_id: "owner".into(),
                owner_public_key: owner.verifying_key().to_bytes().to_vec(),
            })),
            integrated_time_unix_nanos: T0,
        }
        .encode_to_vec();
        store
            .commit(&Commit {
                first_index: 0,
                entries: vec![genesis],
                ..Commit::default()
            })
            .unwrap();
        let registry = load_registry(&store).unwrap();
        Self {
            _dir: dir,
            store,
            registry,
            owner,
            seq: 0,
        }
    }

    fn signed(
        &mut self,
        reporter: &str,
        body: v1::event::Body,
        key: &SigningKey,
    ) -> SignedEnvelope {
        self.seq += 1;
        let e = v1::Event {
            event_id: format!("00000000-0000-4000-8000-{:012x}", self.seq),
            event_time_unix_nanos: T0 + self.seq as i64,
            reporter: reporter.into(),
            reporter_seq: self.seq,
            log_origin: ORIGIN.into(),
            body: Some(body),
        };
        SignedEnvelope::sign(e.encode_to_vec(), &[key])
    }

    /// `log` admits `batch` as the sequencer does, checked against
    /// `checked_with`, commits it, and returns the verdicts.
    fn log(
        &mut self,
        checked_with: &Registry,
        batch: &[SignedEnvelope],
    ) -> Vec<Result<u64, Refusal>> {
        let envelopes: Vec<&SignedEnvelope> = batch.iter().collect();
        let checked = check_batch(checked_with, &envelopes);
        let size = self.store.tree_size().unwrap();
        let time = T0 + 1_000_000 * (size as i64 + 1);
        let Sequenced {
            commit,
            registry,
            verdicts,
            bulk,
        } = admit_bounded(
            &self.store,
            &self.registry,
            size,
            &envelopes,
            checked,
            time,
            512,
        );
        assert!(bulk.is_none());
        // As the custody model does, without the tree's hashes: only
        // admission is under test.
        self.store.commit(&commit).unwrap();
        if let Some(r) = registry {
            self.registry = r;
        }
        verdicts.into_iter().map(|v| v.map(|a| a.index)).collect()
    }
}

fn capture(actor: &str, n: u8) -> v1::event::Body {
    v1::event::Body::Custody(v1::CustodyAction {
        action: v1::CustodyActionKind::Capture as i32,
        actor: actor.into(),
        asset_digest: vec![n; 32],
        to_system: "cam-sys".into(),
        modality: v1::Modality::FaceImage as i32,
        subject_class: v1::SubjectClass::Citizen as i32,
        ..Default::default()
    })
}

fn refusal(v: &Result<u64, Refusal>) -> String {
    match v {
        Ok(i) => panic!("admitted at {i}, expected a refusal"),
        Err(r) => r.to_string(),
    }
}

#[test]
fn a_batch_checked_a_registry_behind_is_judged_by_the_registry_of_its_entries() {
    let mut log = Log::new();
    let owner = log.owner.clone();
    let cam = SigningKey::from_bytes(&[9; 32]);
    let before_key = log.registry.clone();

    let setup = vec![
        log.signed(
            "owner",
            v1::event::Body::PartyRegistered(v1::PartyRegistered {
                party_id: "cam".into(),
                kind: v1::PartyKind::Device as i32,
                acts_on_behalf_of: "owner".into(),
            }),
            &owner,
        ),
        log.signed(
            "owner",
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: "cam-sys".into(),
                owner_party: "cam".into(),
                inside_boundary: true,
                accredited: true,
                encrypted_at_rest: true,
                removable_media: false,
            }),
            &owner,
        ),
        log.signed(
            "owner",
            v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: "cam".into(),
                public_key: cam.verifying_key().to_bytes().to_vec(),
                valid_from_unix_nanos: 0,
                valid_to_unix_nanos: 0,
            }),
            &owner,
        ),
    ];
    let behind = log.registry.clone();
    for v in log.log(&behind, &setup) {
        v.unwrap();
    }

    // Checked against the registry from before the key was added: the
    // checker could not verify these, so admission must.
    let good = log.signed("cam", capture("cam", 1), &cam);
    let mut forged = log.signed("cam", capture("cam", 2), &cam);
    forged.signatures[0].sig[5] ^= 1;
    let verdicts = log.log(&before_key, &[good, forged]);
    assert!(verdicts[0].is_ok(), "{:?}", verdicts[0]);
    let r = refusal(&verdicts[1]);
    assert!(r.contains("does not verify"), "{r}");

    // The key is revoked in one batch; the next was checked against the
    // registry from before that, where the key could sign.
    let valid = log.registry.clone();
    let revoke = log.signed(
        "owner",
        v1::event::Body::KeyRevoked(v1::KeyRevoked {
            party_id: "cam".into(),
            key_id: key_id_of(&cam.verifying_key().to_bytes()).0.to_vec(),
        }),
        &owner,
    );
    for v in log.log(&valid, &[revoke]) {
        v.unwrap();
    }
    let late = log.signed("cam", capture("cam", 3), &cam);
    let verdicts = log.log(&valid, &[late]);
    let r = refusal(&verdicts[0]);
    assert!(r.contains("revoked"), "{r}");
    // Nothing of the refused events was logged: genesis, three registry
    // events, one capture, the revocation.
    assert_eq!(log.store.tree_size().unwrap(), 6);
}
