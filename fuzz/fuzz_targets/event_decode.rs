//! Arbitrary bytes as each thing the log decodes events from, through
//! custody-proto's conversions and on into custody-domain's validation
//! and custody-admission's sequencing (the same function custodyd's
//! sequencer and `custody audit`'s replay call), over the fixture log:
//!
//! 1. a log entry (`decode_entry`): what every reader of the log, the
//!    registry loader and the audit's replay decode; its event is admitted
//!    at the entry's own integration time, as the audit replays it;
//! 2. a `SignedEvent` (`envelope_from_proto`): what custodyd's Append
//!    decodes from a request, then sequences;
//! 3. an event body (`decode_event`): the body of every envelope. It is
//!    signed here with the key of the party it names as reporter, so that
//!    admission looks past the signatures into the registry and custody
//!    rules and the findings.
//!
//! Nothing is committed: each input is judged against the same log.
#![no_main]

use custody_admission::{grow_tree, sequence_batch, StoreHashes};
use custody_domain::replay::manifest_of;
use custody_domain::{admit, bulk_manifest, Event, Registry, SignedEnvelope};
use custody_fuzz::{fixture, party_key, Fixture, SEC};
use custody_proto::{decode_entry, decode_event, envelope_from_proto, v1, Entry};
use custody_store::index::StoreView;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let now = fx.last_integrated + SEC;

    match decode_entry(data) {
        Ok(Entry::Genesis(g)) => {
            let _ = Registry::new(&g);
        }
        Ok(Entry::Event {
            envelope,
            integrated_time,
        }) => {
            if let Ok(event) = decode_event(&envelope.body) {
                domain(fx, &envelope, &event, integrated_time);
            }
            sequence(fx, &envelope, integrated_time);
        }
        Err(_) => {}
    }

    if let Ok(signed) = v1::SignedEvent::decode(data) {
        if let Ok(envelope) = envelope_from_proto(signed) {
            sequence(fx, &envelope, now);
        }
    }

    if let Ok(event) = decode_event(data) {
        let envelope = SignedEnvelope::sign(data.to_vec(), &[&party_key(&event.reporter)]);
        domain(fx, &envelope, &event, now);
        sequence(fx, &envelope, now);
    }
});

/// `domain` runs custody-domain's pure rules on a decoded event: the
/// registry's validation and the whole admission rule ([`admit`]) over the
/// fixture's custody state, as the replay applies it.
fn domain(fx: &Fixture, envelope: &SignedEnvelope, event: &Event, integrated: i64) {
    let _ = event.body.code();
    let _ = event.body.is_registry();
    let _ = manifest_of(event);
    let _ = fx.registry.validate(event);
    let view = StoreView(&fx.store);
    let _ = bulk_manifest(event, &view);
    let signers: Vec<_> = envelope.signatures.iter().map(|s| s.key_id).collect();
    let size = fx.entries.len() as u64;
    let _ = admit(&fx.registry, &view, &signers, event, size, integrated);
}

/// `sequence` is the sequencer's work on a batch of one, and the tree's
/// growth for what it would commit.
fn sequence(fx: &Fixture, envelope: &SignedEnvelope, time: i64) {
    let size = fx.entries.len() as u64;
    let mut seq = sequence_batch(&fx.store, &fx.registry, size, &[envelope], time);
    if !seq.commit.entries.is_empty() {
        let _ = grow_tree(&mut seq.commit, &StoreHashes(&fx.store));
    }
}
