//! The border-crossing scenario of DESIGN §1, from a seeded generator.
//!
//! An agency (the data owner) runs two camera lanes at a port of entry.
//! Each lane device captures face and plate images; every hour it copies
//! that hour's captures to the agency's storage in one bulk COPY, which
//! the storage service acknowledges. Citizens' face images are deleted
//! from the lane and from storage within 12 hours of capture, except a
//! few whose deletion never happens. The agency grants its prime vendor
//! on-site maintenance of the lane devices only. In three maintenance
//! sessions the prime's subcontractor copies a batch of images from a
//! lane device to USB media, and from there to its own corporate network,
//! outside the boundary, with no grant; one of those transfers is never
//! acknowledged.
//!
//! The generator keeps its own account of every custody interval it
//! creates (the ground truth), computed from its plan, not from the
//! server, so the server's answers can be checked against it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use custody_domain::{Digest, Timestamp};
use custody_proto::v1;
use ed25519_dalek::SigningKey;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// Party and system ids of the scenario.
pub mod ids {
    /// The data owner.
    pub const AGENCY: &str = "agency";
    /// The prime vendor.
    pub const PRIME: &str = "prime-vendor";
    /// The maintenance subcontractor.
    pub const SUBCO: &str = "maint-subco";
    /// The lane capture devices (parties).
    pub const LANE_CAMS: [&str; 2] = ["lane-1-cam", "lane-2-cam"];
    /// The agency's storage service (party).
    pub const STORAGE_SVC: &str = "agency-storage-svc";
    /// The USB export gateway (party, acting for the subcontractor).
    pub const USB_GW: &str = "usb-export-gw";
    /// The subcontractor's network agent (party).
    pub const SUBCO_AGENT: &str = "subco-net-agent";
    /// The lane devices (systems).
    pub const LANE_DEVICES: [&str; 2] = ["lane-1-device", "lane-2-device"];
    /// The agency's storage (system).
    pub const STORAGE: &str = "agency-storage";
    /// USB export media (system).
    pub const USB: &str = "usb-export";
    /// The subcontractor's corporate network (system).
    pub const SUBCO_NET: &str = "subco-corp-net";
    /// The maintenance grant.
    pub const GRANT: &str = "G-PRIME-ONSITE-MAINT";
    /// Port of entry (capture context).
    pub const PORT: &str = "poe-2019";
}

const HOUR: i64 = 3_600_000_000_000;
const MINUTE: i64 = 60_000_000_000;
/// How long the scenario runs.
pub const DAYS: i64 = 4;
/// Retention for citizens' face images.
pub const CITIZEN_FACE_MAX_AGE: i64 = 12 * HOUR;

/// `TruthInterval` is one custody interval as the generator made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TruthInterval {
    /// Hex digest.
    pub asset: String,
    /// Holder.
    pub party: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339, or null while open.
    pub to: Option<String>,
}

/// `GroundTruth` is what `--ground-truth` writes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroundTruth {
    /// The seed.
    pub seed: u64,
    /// Scenario start, RFC 3339.
    pub from: String,
    /// Scenario end, RFC 3339.
    pub to: String,
    /// For every system id, the custody intervals generated on it.
    pub systems: BTreeMap<String, Vec<TruthInterval>>,
    /// For each finding rule, how many findings the generator planted.
    pub findings: BTreeMap<&'static str, usize>,
    /// The time at which those counts hold: the end of the scenario.
    pub as_of: String,
}

/// What a planned event does to custody, in the generator's own terms.
#[derive(Debug, Clone)]
enum Effect {
    None,
    Open(Vec<Digest>, &'static str),
    Close(Vec<Digest>, &'static str),
}

/// `Planned` is one event to submit, with its signer.
pub struct Planned {
    /// The event (reporter_seq is assigned at submission order).
    pub event: v1::Event,
    /// Whose key signs it.
    pub signer: &'static str,
    /// A manifest the event names, which must be uploaded first.
    pub manifest: Option<Vec<Digest>>,
    /// Skip one sequence number before this event (a planted gap).
    pub skip_seq: bool,
    /// The `receipt_of` target: the position (in plan order) of the
    /// transfer this RECEIPT acknowledges, resolved to a log index at
    /// submission.
    pub receipt_of: Option<usize>,
    effect: Effect,
}

/// `Scenario` is the whole plan.
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// Keys of every party, the owner's included.
    pub keys: HashMap<&'static str, SigningKey>,
    /// Registry events, in order, signed by the owner.
    pub registry: Vec<v1::Event>,
    /// Custody events in event-time order.
    pub events: Vec<Planned>,
    /// Scenario start and end.
    pub start: Timestamp,
    /// Scenario end.
    pub end: Timestamp,
    /// Capture time of every citizen's face image (the retention rule's
    /// clock).
    citizen_faces: HashMap<Digest, Timestamp>,
    /// Findings planted by construction, other than retention (counted
    /// from the intervals in `ground_truth`).
    planted: BTreeMap<&'static str, usize>,
}

struct Capture {
    digest: Digest,
    lane: usize,
    at: Timestamp,
    citizen_face: bool,
    /// When it is deleted from the lane and storage; `None` if never.
    deleted_at: Option<Timestamp>,
}

struct Gen {
    rng: ChaCha8Rng,
    events: Vec<(Timestamp, Planned)>,
}

impl Gen {
    fn uuid(&mut self) -> String {
        let b: [u8; 16] = self.rng.gen();
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    fn event(&mut self, t: Timestamp, reporter: &str, body: v1::event::Body) -> v1::Event {
        v1::Event {
            event_id: self.uuid(),
            event_time_unix_nanos: t,
            reporter: reporter.to_owned(),
            reporter_seq: 0,
            log_origin: super::ORIGIN.to_owned(),
            body: Some(body),
        }
    }

    /// `custody` plans a custody event; returns its position in the plan.
    #[allow(clippy::too_many_arguments)]
    fn custody(
        &mut self,
        t: Timestamp,
        signer: &'static str,
        action: v1::CustodyActionKind,
        actor: &str,
        assets: &[Digest],
        from: &str,
        to: &str,
        effect: Effect,
        fill: impl FnOnce(&mut v1::CustodyAction),
    ) -> usize {
        let mut sorted = assets.to_vec();
        sorted.sort_unstable();
        let (digest, manifest) = match sorted.len() {
            0 => (Vec::new(), None),
            1 => (sorted[0].to_vec(), None),
            _ => (Vec::new(), Some(sorted.clone())),
        };
        let mut a = v1::CustodyAction {
            action: action as i32,
            actor: actor.to_owned(),
            asset_digest: digest,
            from_system: from.to_owned(),
            to_system: to.to_owned(),
            outcome: v1::Outcome::Success as i32,
            ..Default::default()
        };
        fill(&mut a);
        let event = self.event(t, signer, v1::event::Body::Custody(a));
        self.events.push((
            t,
            Planned {
                event,
                signer,
                manifest,
                skip_seq: false,
                receipt_of: None,
                effect,
            },
        ));
        self.events.len() - 1
    }
}

fn key(rng: &mut ChaCha8Rng) -> SigningKey {
    SigningKey::from_bytes(&rng.gen())
}

impl Scenario {
    /// `generate` plans the scenario ending at `end` (Unix ns) from `seed`.
    pub fn generate(seed: u64, end: Timestamp) -> Self {
        use ids::*;
        use v1::CustodyActionKind as K;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let now = end;
        let end = end - end.rem_euclid(HOUR);
        let start = end - DAYS * 24 * HOUR;
        let mut keys = HashMap::new();
        for p in [AGENCY, PRIME, SUBCO, STORAGE_SVC, USB_GW, SUBCO_AGENT]
            .into_iter()
            .chain(LANE_CAMS)
        {
            keys.insert(p, key(&mut rng));
        }
        let mut g = Gen {
            rng,
            events: Vec::new(),
        };

        // First the policy the time-based findings apply to every entry
        // after it, published now: the demo logs four days of history at
        // once, so its agreed reporting deadline is five days.
        let mut registry = vec![g.event(
            now,
            AGENCY,
            v1::event::Body::PolicyPublished(v1::PolicyPublished {
                receipt_window_nanos: HOUR,
                reporting_deadline_nanos: super::REPORTING_DEADLINE_SECS * 1_000_000_000,
                attestation_period_nanos: 24 * HOUR,
            }),
        )];
        // Then the registry, an hour before the scenario starts.
        let t0 = start - HOUR;
        let party = |id: &str, kind: v1::PartyKind, boss: &str| {
            v1::event::Body::PartyRegistered(v1::PartyRegistered {
                party_id: id.to_owned(),
                kind: kind as i32,
                acts_on_behalf_of: boss.to_owned(),
            })
        };
        let mut bodies = vec![
            party(PRIME, v1::PartyKind::Prime, AGENCY),
            party(SUBCO, v1::PartyKind::Subcontractor, PRIME),
            party(LANE_CAMS[0], v1::PartyKind::Device, AGENCY),
            party(LANE_CAMS[1], v1::PartyKind::Device, AGENCY),
            party(STORAGE_SVC, v1::PartyKind::Software, AGENCY),
            party(USB_GW, v1::PartyKind::Software, SUBCO),
            party(SUBCO_AGENT, v1::PartyKind::Software, SUBCO),
        ];
        let system = |id: &str, owner: &str, inside: bool, removable: bool| {
            v1::event::Body::SystemRegistered(v1::SystemRegistered {
                system_id: id.to_owned(),
                owner_party: owner.to_owned(),
                inside_boundary: inside,
                accredited: inside,
                encrypted_at_rest: inside,
                removable_media: removable,
            })
        };
        bodies.extend([
            system(LANE_DEVICES[0], AGENCY, true, false),
            system(LANE_DEVICES[1], AGENCY, true, false),
            system(STORAGE, AGENCY, true, false),
            system(USB, SUBCO, false, true),
            system(SUBCO_NET, SUBCO, false, false),
        ]);
        let mut sorted_parties: Vec<_> = keys.iter().filter(|(p, _)| **p != AGENCY).collect();
        sorted_parties.sort_by_key(|(p, _)| **p);
        for (p, k) in sorted_parties {
            bodies.push(v1::event::Body::KeyAdded(v1::KeyAdded {
                party_id: (*p).to_owned(),
                public_key: k.verifying_key().to_bytes().to_vec(),
                valid_from_unix_nanos: 0,
                valid_to_unix_nanos: 0,
            }));
        }
        bodies.push(v1::event::Body::GrantIssued(v1::GrantIssued {
            grant_id: GRANT.to_owned(),
            grantee: PRIME.to_owned(),
            contract_ref: "TO-2019-0042".to_owned(),
            actions: vec![K::Access as i32],
            purposes: vec![v1::Purpose::Maintenance as i32],
            systems: LANE_DEVICES.iter().map(|s| (*s).to_owned()).collect(),
            modalities: Vec::new(),
            subject_classes: Vec::new(),
            max_onward_transfers: 0,
            valid_from_unix_nanos: t0,
            valid_to_unix_nanos: 0,
        }));
        bodies.push(v1::event::Body::RetentionRulePublished(
            v1::RetentionRulePublished {
                rule_id: "RR-CITIZEN-FACE-12H".to_owned(),
                authority: v1::RetentionAuthority::Sorn as i32,
                authority_ref: "SORN-DHS-CBP-007".to_owned(),
                modality: v1::Modality::FaceImage as i32,
                subject_class: v1::SubjectClass::Citizen as i32,
                system_id: String::new(),
                max_age_nanos: CITIZEN_FACE_MAX_AGE,
                clock: v1::RetentionClock::Capture as i32,
            },
        ));
        for b in bodies {
            let e = g.event(t0, AGENCY, b);
            registry.push(e);
        }

        // Captures, hourly bulk copies to storage with receipts, accesses,
        // and citizens' face images deleted 12 hours after their hour.
        let mut captures: Vec<Capture> = Vec::new();
        for hour in 0..DAYS * 24 {
            let h0 = start + hour * HOUR;
            for lane in 0..2 {
                let n = g.rng.gen_range(8..20);
                let mut batch = Vec::new();
                let mut citizens = Vec::new();
                for _ in 0..n {
                    // Whole seconds, as a camera's clock would report.
                    let at = h0 + g.rng.gen_range(0..3_480) * 1_000_000_000;
                    let digest: Digest = g.rng.gen();
                    let face = g.rng.gen_bool(0.6);
                    let class = if !face {
                        v1::SubjectClass::Unknown
                    } else {
                        match g.rng.gen_range(0..100) {
                            0..50 => v1::SubjectClass::Citizen,
                            50..65 => v1::SubjectClass::PermanentResident,
                            _ => v1::SubjectClass::NonCitizen,
                        }
                    };
                    let citizen_face = class == v1::SubjectClass::Citizen;
                    g.custody(
                        at,
                        LANE_CAMS[lane],
                        K::Capture,
                        LANE_CAMS[lane],
                        &[digest],
                        "",
                        LANE_DEVICES[lane],
                        Effect::Open(vec![digest], LANE_DEVICES[lane]),
                        |a| {
                            a.modality = if face {
                                v1::Modality::FaceImage
                            } else {
                                v1::Modality::PlateImage
                            } as i32;
                            a.subject_class = class as i32;
                            a.purpose = v1::Purpose::BorderInspection as i32;
                            a.capture = Some(v1::CaptureContext {
                                port: PORT.to_owned(),
                                lane: format!("lane-{}", lane + 1),
                                device: LANE_CAMS[lane].to_owned(),
                            });
                        },
                    );
                    // A few deletions never happen.
                    let missed = citizen_face && g.rng.gen_bool(0.004);
                    // Deleted just inside 12 hours of the capture hour.
                    let delete_at = h0 + CITIZEN_FACE_MAX_AGE - 5 * MINUTE;
                    let deleted_at =
                        (citizen_face && !missed && delete_at < end).then_some(delete_at);
                    if citizen_face && deleted_at.is_some() {
                        citizens.push(digest);
                    }
                    batch.push(digest);
                    captures.push(Capture {
                        digest,
                        lane,
                        at,
                        citizen_face,
                        deleted_at,
                    });
                }
                let t_copy = h0 + HOUR - MINUTE;
                let copy = g.custody(
                    t_copy,
                    STORAGE_SVC,
                    K::Copy,
                    STORAGE_SVC,
                    &batch,
                    LANE_DEVICES[lane],
                    STORAGE,
                    Effect::Open(batch.clone(), STORAGE),
                    |a| a.purpose = v1::Purpose::BorderInspection as i32,
                );
                let r = g.custody(
                    t_copy + 30_000_000_000,
                    STORAGE_SVC,
                    K::Receipt,
                    STORAGE_SVC,
                    &[],
                    "",
                    "",
                    Effect::None,
                    |_| {},
                );
                g.events[r].1.receipt_of = Some(copy);
                let looked_at = batch[g.rng.gen_range(0..batch.len())];
                g.custody(
                    t_copy + 10 * MINUTE,
                    STORAGE_SVC,
                    K::Access,
                    STORAGE_SVC,
                    &[looked_at],
                    STORAGE,
                    "",
                    Effect::None,
                    |a| a.purpose = v1::Purpose::BorderInspection as i32,
                );
                let at = h0 + CITIZEN_FACE_MAX_AGE - 5 * MINUTE;
                if !citizens.is_empty() && at < end {
                    for (sys, reporter) in [
                        (LANE_DEVICES[lane], LANE_CAMS[lane]),
                        (STORAGE, STORAGE_SVC),
                    ] {
                        g.custody(
                            at,
                            reporter,
                            K::Delete,
                            reporter,
                            &citizens,
                            sys,
                            "",
                            Effect::Close(citizens.clone(), sys),
                            |a| {
                                a.delete_method = v1::DeleteMethod::CryptoErase as i32;
                                a.purpose = v1::Purpose::RecordsRetention as i32;
                            },
                        );
                    }
                }
            }
        }

        // Three maintenance sessions, on days 1..=3, on alternating lanes.
        let mut on_net: BTreeSet<Digest> = BTreeSet::new();
        for s in 0..3i64 {
            let lane = (s % 2) as usize;
            let at = start
                + (s + 1) * 24 * HOUR
                + g.rng.gen_range(9..15) * HOUR
                + g.rng.gen_range(0..50) * MINUTE;
            let session = format!("MS-{}-{}", lane + 1, s + 1);
            let ev = g.event(
                at,
                LANE_CAMS[lane],
                v1::event::Body::MaintenanceSession(v1::MaintenanceSession {
                    session_id: session,
                    actor: SUBCO.to_owned(),
                    on_behalf_of: PRIME.to_owned(),
                    system_id: LANE_DEVICES[lane].to_owned(),
                    grant_id: GRANT.to_owned(),
                    purpose: v1::Purpose::Maintenance as i32,
                    start_unix_nanos: at,
                    end_unix_nanos: at + 90 * MINUTE,
                }),
            );
            g.events.push((
                at,
                Planned {
                    event: ev,
                    signer: LANE_CAMS[lane],
                    manifest: None,
                    skip_seq: false,
                    receipt_of: None,
                    effect: Effect::None,
                },
            ));
            // What rests on the lane device during the session.
            let t_copy = at + 20 * MINUTE;
            let mut resident: Vec<Digest> = captures
                .iter()
                .filter(|c| c.lane == lane && c.at < t_copy)
                .filter(|c| !c.citizen_face || c.deleted_at.is_none_or(|d| d > t_copy))
                .map(|c| c.digest)
                .collect();
            resident.shuffle(&mut g.rng);
            let take = g.rng.gen_range(250..450).min(resident.len());
            let batch: Vec<Digest> = resident[..take].to_vec();
            let to_usb = g.custody(
                t_copy,
                USB_GW,
                K::Copy,
                USB_GW,
                &batch,
                LANE_DEVICES[lane],
                USB,
                Effect::Open(batch.clone(), USB),
                |a| {
                    a.on_behalf_of = PRIME.to_owned();
                    a.purpose = v1::Purpose::Maintenance as i32;
                },
            );
            let r = g.custody(
                t_copy + MINUTE,
                USB_GW,
                K::Receipt,
                USB_GW,
                &[],
                "",
                "",
                Effect::None,
                |_| {},
            );
            g.events[r].1.receipt_of = Some(to_usb);
            let t_net = t_copy + 3 * HOUR;
            on_net.extend(batch.iter().copied());
            let to_net = g.custody(
                t_net,
                USB_GW,
                K::Copy,
                USB_GW,
                &batch,
                USB,
                SUBCO_NET,
                Effect::Open(batch.clone(), SUBCO_NET),
                |a| a.purpose = v1::Purpose::Maintenance as i32,
            );
            // The second session's transfer is never acknowledged.
            if s != 1 {
                let r = g.custody(
                    t_net + 5 * MINUTE,
                    SUBCO_AGENT,
                    K::Receipt,
                    SUBCO_AGENT,
                    &[],
                    "",
                    "",
                    Effect::None,
                    |_| {},
                );
                g.events[r].1.receipt_of = Some(to_net);
            }
            // The USB media is wiped after the first two sessions only.
            if s != 2 {
                g.custody(
                    t_net + HOUR,
                    USB_GW,
                    K::Delete,
                    USB_GW,
                    &batch,
                    USB,
                    "",
                    Effect::Close(batch.clone(), USB),
                    |a| a.delete_method = v1::DeleteMethod::Overwrite as i32,
                );
            }
        }

        // Planted findings beyond the maintenance sessions (each session
        // made two transfers with no grant to systems outside the boundary,
        // and one of its transfers went unacknowledged).
        let mut planted = BTreeMap::new();
        planted.insert("unauthorized_transfer", 6);
        planted.insert("boundary_violation", 6);
        planted.insert("unacknowledged_transfer", 1);
        // The subcontractor holds data on two systems and never attests.
        planted.insert("missing_attestation", 2);
        // Its network agent reads an image no logged transfer brought
        // there, and uses an exfiltrated image for training.
        let never_copied = captures
            .iter()
            .map(|c| c.digest)
            .find(|d| !on_net.contains(d));
        if let (Some(d), Some(used)) = (never_copied, on_net.iter().next().copied()) {
            let at = end - 2 * HOUR;
            g.custody(
                at,
                SUBCO_AGENT,
                K::Access,
                SUBCO_AGENT,
                &[d],
                SUBCO_NET,
                "",
                Effect::None,
                |a| {
                    a.purpose = v1::Purpose::Maintenance as i32;
                    a.grant_id = GRANT.to_owned();
                },
            );
            g.custody(
                at + MINUTE,
                SUBCO_AGENT,
                K::Use,
                SUBCO_AGENT,
                &[used],
                SUBCO_NET,
                "",
                Effect::None,
                |a| {
                    a.purpose = v1::Purpose::Training as i32;
                    a.grant_id = GRANT.to_owned();
                },
            );
            planted.insert("unexplained_custody", 1);
            planted.insert("purpose_drift", 1);
        }
        // A maintenance session from before the scenario, reported only
        // now: later than the log's agreed deadline.
        let old = end - 6 * 24 * HOUR;
        let ev = g.event(
            old,
            LANE_CAMS[1],
            v1::event::Body::MaintenanceSession(v1::MaintenanceSession {
                session_id: "MS-2-0".to_owned(),
                actor: SUBCO.to_owned(),
                on_behalf_of: PRIME.to_owned(),
                system_id: LANE_DEVICES[1].to_owned(),
                grant_id: GRANT.to_owned(),
                purpose: v1::Purpose::Maintenance as i32,
                start_unix_nanos: old,
                end_unix_nanos: old + HOUR,
            }),
        );
        g.events.push((
            old,
            Planned {
                event: ev,
                signer: LANE_CAMS[1],
                manifest: None,
                skip_seq: false,
                receipt_of: None,
                effect: Effect::None,
            },
        ));
        planted.insert("late_reporting", 1);
        // One of lane 2's reports is missing from its sequence.
        if let Some((_, p)) = g
            .events
            .iter_mut()
            .filter(|(t, p)| p.signer == LANE_CAMS[1] && *t > start + 30 * HOUR)
            .min_by_key(|(t, _)| *t)
        {
            p.skip_seq = true;
            planted.insert("sequence_gap", 1);
        }
        let citizen_faces = captures
            .iter()
            .filter(|c| c.citizen_face)
            .map(|c| (c.digest, c.at))
            .collect();

        // Event-time order, stable, so receipts follow their transfers;
        // positions in `receipt_of` are remapped to the sorted order.
        let mut order: Vec<usize> = (0..g.events.len()).collect();
        order.sort_by_key(|i| (g.events[*i].0, *i));
        let mut new_pos = vec![0; order.len()];
        for (new, old) in order.iter().enumerate() {
            new_pos[*old] = new;
        }
        let mut slots: Vec<Option<Planned>> = g.events.into_iter().map(|(_, p)| Some(p)).collect();
        let mut events = Vec::with_capacity(slots.len());
        for old in order {
            if let Some(mut p) = slots[old].take() {
                p.receipt_of = p.receipt_of.map(|r| new_pos[r]);
                events.push(p);
            }
        }
        Scenario {
            seed,
            keys,
            registry,
            events,
            start,
            end,
            citizen_faces,
            planted,
        }
    }

    /// `ground_truth` replays the plan's own effects into custody
    /// intervals, per system.
    pub fn ground_truth(&self) -> GroundTruth {
        let owners: HashMap<&str, &str> = [
            (ids::LANE_DEVICES[0], ids::AGENCY),
            (ids::LANE_DEVICES[1], ids::AGENCY),
            (ids::STORAGE, ids::AGENCY),
            (ids::USB, ids::SUBCO),
            (ids::SUBCO_NET, ids::SUBCO),
        ]
        .into_iter()
        .collect();
        let mut open: HashMap<(Digest, &str), usize> = HashMap::new();
        let mut intervals: Vec<(Digest, &str, Timestamp, Option<Timestamp>)> = Vec::new();
        for p in &self.events {
            let t = p.event.event_time_unix_nanos;
            match &p.effect {
                Effect::None => {}
                Effect::Open(assets, sys) => {
                    for a in assets {
                        open.entry((*a, sys)).or_insert_with(|| {
                            intervals.push((*a, sys, t, None));
                            intervals.len() - 1
                        });
                    }
                }
                Effect::Close(assets, sys) => {
                    for a in assets {
                        if let Some(i) = open.remove(&(*a, sys)) {
                            intervals[i].3 = Some(t);
                        }
                    }
                }
            }
        }
        let mut systems: BTreeMap<String, Vec<TruthInterval>> = BTreeMap::new();
        let seen: BTreeSet<&str> = owners.keys().copied().collect();
        for s in seen {
            systems.insert(s.to_owned(), Vec::new());
        }
        for (a, sys, from, to) in intervals.iter().copied() {
            systems
                .entry(sys.to_owned())
                .or_default()
                .push(TruthInterval {
                    asset: custody_domain::hex(&a),
                    party: owners.get(sys).copied().unwrap_or_default().to_owned(),
                    from: custody_domain::rfc3339(from),
                    to: to.map(custody_domain::rfc3339),
                });
        }
        // Retention: intervals still open at the end holding a citizen's
        // face image captured more than 12 hours before it.
        let overdue = intervals
            .iter()
            .filter(|(a, _, _, to)| {
                to.is_none()
                    && self
                        .citizen_faces
                        .get(a)
                        .is_some_and(|at| at + CITIZEN_FACE_MAX_AGE < self.end)
            })
            .count();
        let mut findings = self.planted.clone();
        findings.insert("retention_overdue", overdue);
        GroundTruth {
            seed: self.seed,
            from: custody_domain::rfc3339(self.start),
            to: custody_domain::rfc3339(self.end),
            systems,
            findings,
            as_of: custody_domain::rfc3339(self.end),
        }
    }
}
