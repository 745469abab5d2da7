//! Verification of a whole bundle: its proofs and signatures, that its
//! answer is exactly what the proven entries support for its question,
//! that it holds nothing else, and that it is in canonical form. Then the
//! plain-language statement of what it proves.
//!
//! Each kind of question has one function that checks its answer against
//! the verified entries and says, in plain language, what that proves; a
//! new kind (a policy finding) adds one such function.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_domain::{hex, rfc3339, Digest, Modality, SubjectClass, Timestamp};
use custody_log::{LogVerifier, VerifiedCheckpoint};
use custody_proto::v1;

use crate::bundle::{
    digest_of, line_column, part_at, with_digest, Answer, Bundle, Holder, Question,
};
use crate::evidence::{
    class_text, verify_checkpoint, verify_parts, Creations, Used, VerifiedEvidence,
};
use crate::rows::{AssetClass, ClassCount, HistoryEvent, IntervalRow};
use crate::EvidenceError;

/// `LIST_CAP` is how many log indexes a statement names before "and N
/// more".
const LIST_CAP: usize = 20;

/// `ROWS_CAP` is how many rows a statement details before "and N more".
const ROWS_CAP: usize = 10;

/// `VerifiedBundle` is a bundle whose every proof, signature and row
/// checked out.
#[derive(Debug)]
pub struct VerifiedBundle {
    /// The bundle's content.
    pub bundle: Bundle,
    /// The checkpoint it is proven against.
    pub checkpoint: VerifiedCheckpoint,
    /// Log indexes of the entries the answer rests on, ascending.
    pub rests_on: Vec<u64>,
    /// What the bundle proves, in plain language, one line per fact.
    pub statement: String,
}

/// `verify_bundle` checks an evidence bundle against the pinned log key:
///
/// 1. it parses, every field in its canonical form;
/// 2. the checkpoint is signed by the log key (signature lines by other
///    keys, such as witness cosignatures, are ignored);
/// 3. every registry entry and entry is signed by a key that the registry
///    entries add (rooted in the genesis entry), and its tlog-proof proves
///    it in the checkpoint's tree;
/// 4. every manifest membership proof checks;
/// 5. the answer is exactly what the proven entries support for the
///    question, row by row, and for a breach scope its counts are those of
///    its rows;
/// 6. the bundle holds no entry, registry entry or membership that no row
///    rests on;
/// 7. the file is byte for byte its canonical serialisation;
/// 8. it hashes to its recorded digest.
///
/// # Errors
///
/// The first check that fails, naming the part of the bundle at fault.
pub fn verify_bundle(
    bytes: &[u8],
    verifier: &LogVerifier,
) -> Result<VerifiedBundle, EvidenceError> {
    let (bundle, digest) = Bundle::parse(bytes)?;
    if bundle.question.kind() != bundle.answer.kind() {
        return Err(EvidenceError::answer(format!(
            "it answers a {} question, but the question is a {} question",
            bundle.answer.kind(),
            bundle.question.kind()
        )));
    }
    let cp = verify_checkpoint(&bundle.checkpoint, verifier)?;
    for p in &bundle.registry {
        if p.proof.checkpoint != bundle.checkpoint {
            return Err(EvidenceError::registry(
                p.index,
                "its tlog-proof's checkpoint is not the bundle's checkpoint",
            ));
        }
    }
    for p in &bundle.entries {
        if p.proof.checkpoint != bundle.checkpoint {
            return Err(EvidenceError::entry(
                p.index,
                "its tlog-proof's checkpoint is not the bundle's checkpoint",
            ));
        }
    }
    let registry: Vec<v1::ProvenEntry> = bundle.registry.iter().map(|p| p.to_proto()).collect();
    let registry: Vec<&v1::ProvenEntry> = registry.iter().collect();
    let entries: Vec<v1::ProvenEntry> = bundle.entries.iter().map(|p| p.to_proto()).collect();
    let ev = verify_parts(cp.clone(), &registry, &entries, &bundle.memberships)?;

    let mut used = Used::default();
    let claim = check_answer(&bundle.question, &bundle.answer, &ev, &mut used)?;
    check_nothing_else(&bundle, &ev, &used)?;

    let empty = bundle.canonical_without_digest()?;
    let canonical = with_digest(&empty, &hex(&digest));
    if canonical != bytes {
        let at = canonical
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(canonical.len().min(bytes.len()));
        let (line, column) = line_column(bytes, at);
        return Err(EvidenceError::NotCanonical {
            line,
            column,
            part: part_at(bytes, at),
        });
    }
    if digest_of(&empty) != digest {
        return Err(EvidenceError::Digest);
    }

    let rests_on: Vec<u64> = used.entries.iter().copied().collect();
    let statement = statement(&claim, &bundle, &ev, &cp, &rests_on);
    Ok(VerifiedBundle {
        bundle,
        checkpoint: cp,
        rests_on,
        statement,
    })
}

/// `Claim` is what one kind's check established: the lines saying what is
/// proven, and what is not.
pub(crate) struct Claim {
    /// What is proven, one line per fact.
    pub(crate) lines: Vec<String>,
    /// What is not proven.
    pub(crate) limits: String,
}

fn check_answer(
    q: &Question,
    a: &Answer,
    ev: &VerifiedEvidence,
    used: &mut Used,
) -> Result<Claim, EvidenceError> {
    match (q, a) {
        (Question::History { asset }, Answer::History { events }) => {
            check_history(asset, events, ev, used)
        }
        (Question::Holders { asset, at }, Answer::Holders { holders }) => {
            check_holders(asset, *at, holders, ev, used)
        }
        (Question::Holdings { holder, at }, Answer::Holdings { intervals }) => {
            check_holdings(holder, *at, intervals, ev, used)
        }
        (
            Question::BreachScope { system, from, to },
            Answer::BreachScope {
                asset_count,
                by_class,
                intervals,
            },
        ) => check_breach_scope(
            system,
            *from,
            *to,
            *asset_count,
            by_class,
            intervals,
            ev,
            used,
        ),
        (Question::Finding { id, as_of }, Answer::Finding { finding }) => {
            crate::finding::check_finding(id, *as_of, finding, ev, used)
        }
        _ => Err(EvidenceError::answer(format!(
            "it answers a {} question, but the question is a {} question",
            a.kind(),
            q.kind()
        ))),
    }
}

/// `NOT_PROVEN_LISTING` is what a listing of intervals cannot prove.
const NOT_PROVEN_LISTING: &str = "that the log holds no other entry relevant to the question (the bundle lists what the server found), that an interval still open at the checkpoint was not closed by a later entry, or that a signing key was not revoked after it signed";

fn check_history(
    asset: &Digest,
    events: &[HistoryEvent],
    ev: &VerifiedEvidence,
    used: &mut Used,
) -> Result<Claim, EvidenceError> {
    for (n, e) in events.iter().enumerate() {
        if n > 0 && events[n - 1].index >= e.index {
            return Err(EvidenceError::answer(format!(
                "event {}: events are not in ascending order of log index",
                n + 1
            )));
        }
        ev.check_event(
            &format!("event {} (entry {})", n + 1, e.index),
            asset,
            e,
            used,
        )?;
    }
    let mut lines = Vec::new();
    if events.is_empty() {
        lines.push(format!(
            "the answer lists no logged event about asset {}",
            hex(asset)
        ));
    } else {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for e in events {
            *kinds.entry(e.kind.as_str()).or_default() += 1;
        }
        let first = events
            .iter()
            .map(|e| e.event_time)
            .min()
            .unwrap_or_default();
        let last = events
            .iter()
            .map(|e| e.event_time)
            .max()
            .unwrap_or_default();
        lines.push(format!(
            "asset {} has {} from {} to {}: {}",
            hex(asset),
            counted(events.len() as u64, "logged event", "logged events"),
            rfc3339(first),
            rfc3339(last),
            join_and(
                &kinds
                    .iter()
                    .map(|(k, n)| format!("{} {k}", grouped(*n as u64)))
                    .collect::<Vec<_>>()
            )
        ));
        for e in events.iter().take(ROWS_CAP) {
            lines.push(format!(
                "  entry {}: {} at {}, reported by {}",
                e.index,
                e.kind,
                rfc3339(e.event_time),
                e.reporter
            ));
        }
        if events.len() > ROWS_CAP {
            lines.push(format!(
                "  and {} more",
                counted((events.len() - ROWS_CAP) as u64, "event", "events")
            ));
        }
    }
    Ok(Claim {
        lines,
        limits: "that the log holds no other event about the asset (the bundle lists what the server found), or that a signing key was not revoked after it signed".into(),
    })
}

/// `check_rows` checks every interval row against the verified entries,
/// with `matches` the question's own condition on a row, and refuses
/// duplicate rows.
fn check_rows(
    rows: &[IntervalRow],
    ev: &VerifiedEvidence,
    used: &mut Used,
    matches: impl Fn(&IntervalRow) -> Option<String>,
) -> Result<(), EvidenceError> {
    let creations: Creations = ev.creations();
    let mut seen = HashSet::new();
    for (n, r) in rows.iter().enumerate() {
        let label = format!("row {}", n + 1);
        if !seen.insert((r.asset, r.system.as_str(), r.opened_by)) {
            return Err(EvidenceError::answer(format!(
                "{label} repeats an earlier row"
            )));
        }
        if let Some(why) = matches(r) {
            return Err(EvidenceError::answer(format!("{label}: {why}")));
        }
        ev.check_row(&label, r, used, Some(&creations))?;
    }
    Ok(())
}

fn check_holders(
    asset: &Digest,
    at: Timestamp,
    rows: &[IntervalRow],
    ev: &VerifiedEvidence,
    used: &mut Used,
) -> Result<Claim, EvidenceError> {
    check_rows(rows, ev, used, |r| {
        if r.asset != *asset {
            Some(format!(
                "it is about asset {}, not the question's asset {}",
                hex(&r.asset),
                hex(asset)
            ))
        } else if !r.holds_at(at) {
            Some(format!(
                "its interval {} does not cover the question's time {}",
                span(r),
                rfc3339(at)
            ))
        } else {
            None
        }
    })?;
    let mut lines = Vec::new();
    if rows.is_empty() {
        lines.push(format!(
            "at {}, the answer names no holder of asset {}",
            rfc3339(at),
            hex(asset)
        ));
    } else {
        let parties: BTreeSet<&str> = rows.iter().map(|r| r.party.as_str()).collect();
        let systems: BTreeSet<&str> = rows.iter().map(|r| r.system.as_str()).collect();
        lines.push(format!(
            "at {}, asset {} was held by {} on {}{}",
            rfc3339(at),
            hex(asset),
            counted(parties.len() as u64, "party", "parties"),
            counted(systems.len() as u64, "system", "systems"),
            class_suffix(rows)
        ));
        for r in rows.iter().take(ROWS_CAP) {
            lines.push(format!(
                "  {} on {} {}",
                r.party,
                r.system,
                span_with_entries(r)
            ));
        }
        if rows.len() > ROWS_CAP {
            lines.push(format!(
                "  and {} more",
                counted((rows.len() - ROWS_CAP) as u64, "holder", "holders")
            ));
        }
    }
    Ok(Claim {
        lines,
        limits: NOT_PROVEN_LISTING.into(),
    })
}

fn check_holdings(
    holder: &Holder,
    at: Timestamp,
    rows: &[IntervalRow],
    ev: &VerifiedEvidence,
    used: &mut Used,
) -> Result<Claim, EvidenceError> {
    check_rows(rows, ev, used, |r| {
        let wrong = match holder {
            Holder::Party(p) if r.party != *p => Some(format!(
                "it is held by {}, not the question's party {p}",
                r.party
            )),
            Holder::System(s) if r.system != *s => Some(format!(
                "it is on system {}, not the question's system {s}",
                r.system
            )),
            _ => None,
        };
        wrong.or_else(|| {
            (!r.holds_at(at)).then(|| {
                format!(
                    "its interval {} does not cover the question's time {}",
                    span(r),
                    rfc3339(at)
                )
            })
        })
    })?;
    let who = match holder {
        Holder::Party(p) => format!("party {p}"),
        Holder::System(s) => match rows.first() {
            Some(r) => format!("system {s} (owned by party {})", r.party),
            None => format!("system {s}"),
        },
    };
    let mut lines = Vec::new();
    if rows.is_empty() {
        lines.push(format!(
            "at {}, the answer lists nothing held by {who}",
            rfc3339(at)
        ));
    } else {
        let assets: BTreeSet<&Digest> = rows.iter().map(|r| &r.asset).collect();
        let mut by_system: BTreeMap<&str, Vec<&IntervalRow>> = BTreeMap::new();
        for r in rows {
            by_system.entry(r.system.as_str()).or_default().push(r);
        }
        let copies = if assets.len() == rows.len() {
            String::new()
        } else {
            format!(" ({})", counted(rows.len() as u64, "copy", "copies"))
        };
        let on = match holder {
            Holder::Party(_) => format!(
                " on {}",
                counted(by_system.len() as u64, "system", "systems")
            ),
            Holder::System(_) => String::new(),
        };
        lines.push(format!(
            "at {}, {who} held {}{copies}{on}: {}",
            rfc3339(at),
            counted(assets.len() as u64, "distinct asset", "distinct assets"),
            class_list(&classes_of(rows))
        ));
        if let Holder::System(_) = holder {
            let refs: Vec<&IntervalRow> = rows.iter().collect();
            lines.push(format!("  they {}", arrivals(&refs)));
        }
        for (system, rs) in by_system
            .iter()
            .take(ROWS_CAP)
            .filter(|_| matches!(holder, Holder::Party(_)))
        {
            lines.push(format!(
                "  on {system}: {}, {}",
                class_list(&classes_of_refs(rs)),
                arrivals(rs)
            ));
        }
        if by_system.len() > ROWS_CAP {
            lines.push(format!(
                "  and {} more",
                counted((by_system.len() - ROWS_CAP) as u64, "system", "systems")
            ));
        }
    }
    Ok(Claim {
        lines,
        limits: NOT_PROVEN_LISTING.into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn check_breach_scope(
    system: &str,
    from: Timestamp,
    to: Timestamp,
    asset_count: u64,
    by_class: &[ClassCount],
    rows: &[IntervalRow],
    ev: &VerifiedEvidence,
    used: &mut Used,
) -> Result<Claim, EvidenceError> {
    if to < from {
        return Err(EvidenceError::Question(format!(
            "the window ends ({}) before it starts ({})",
            rfc3339(to),
            rfc3339(from)
        )));
    }
    check_rows(rows, ev, used, |r| {
        if r.system != system {
            Some(format!(
                "it is on system {}, not the question's system {system}",
                r.system
            ))
        } else if !r.overlaps(from, to) {
            Some(format!(
                "its interval {} does not overlap the question's window {} to {}",
                span(r),
                rfc3339(from),
                rfc3339(to)
            ))
        } else {
            None
        }
    })?;
    // A breach-scope bundle is complete: its counts are its rows' counts.
    let classes = classes_of(rows);
    let distinct: u64 = classes.values().sum();
    if asset_count != distinct {
        return Err(EvidenceError::answer(format!(
            "asset_count is {asset_count} but the rows hold {distinct} distinct assets"
        )));
    }
    let want: Vec<ClassCount> = classes
        .iter()
        .map(|((m, s), n)| ClassCount {
            modality: *m,
            subject_class: *s,
            count: *n,
        })
        .collect();
    if by_class != want.as_slice() {
        return Err(EvidenceError::answer(format!(
            "by_class does not split the rows' assets by their proven class, which is {}",
            if want.is_empty() {
                "empty".to_owned()
            } else {
                want.iter()
                    .map(|c| {
                        format!(
                            "{} {}",
                            grouped(c.count),
                            class_text((c.modality, c.subject_class))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    let owner = rows
        .first()
        .map(|r| format!(", owned by party {}", r.party))
        .unwrap_or_default();
    let mut lines = Vec::new();
    if rows.is_empty() {
        lines.push(format!(
            "between {} and {}, the answer finds no asset on system {system}",
            rfc3339(from),
            rfc3339(to)
        ));
    } else {
        lines.push(format!(
            "between {} and {}, {} rested on system {system}{owner}: {}",
            rfc3339(from),
            rfc3339(to),
            counted(distinct, "distinct asset", "distinct assets"),
            class_list(&classes)
        ));
        let refs: Vec<&IntervalRow> = rows.iter().collect();
        let left = rows
            .iter()
            .filter(|r| r.to.is_some_and(|t| t <= to))
            .count();
        lines.push(format!(
            "  {}, {}; {} left the system by the end of the window",
            counted(rows.len() as u64, "custody interval", "custody intervals"),
            arrivals(&refs),
            grouped(left as u64)
        ));
    }
    Ok(Claim {
        lines,
        limits: "that the server left out no interval (the counts cover every interval it found on the system at this checkpoint), that an interval still open at the checkpoint was not closed by a later entry, or that a signing key was not revoked after it signed".into(),
    })
}

/// `check_nothing_else` refuses a bundle that holds an entry, registry
/// entry or membership that no row of its answer rests on.
fn check_nothing_else(
    bundle: &Bundle,
    ev: &VerifiedEvidence,
    used: &Used,
) -> Result<(), EvidenceError> {
    for p in &bundle.entries {
        if !used.entries.contains(&p.index) {
            return Err(EvidenceError::Superfluous(format!(
                "entry {}: no row of the answer rests on it",
                p.index
            )));
        }
    }
    for i in ev.registry_entries() {
        if !ev.signer_entries().contains(i) && !used.registry.contains(i) {
            return Err(EvidenceError::Superfluous(format!(
                "registry entry {i}: it adds no key that signs an entry of the bundle and registers no system of the answer"
            )));
        }
    }
    for (m, a) in ev.memberships() {
        if !used.memberships.contains(&(*m, *a)) {
            return Err(EvidenceError::Superfluous(format!(
                "membership proof of asset {} in manifest {}: no entry of the answer names the asset through that manifest",
                hex(a),
                hex(&m.root)
            )));
        }
    }
    Ok(())
}

fn statement(
    claim: &Claim,
    bundle: &Bundle,
    ev: &VerifiedEvidence,
    cp: &VerifiedCheckpoint,
    rests_on: &[u64],
) -> String {
    let mut out = String::from("verified: ");
    out += &claim.lines.join("\n");
    out.push('\n');
    if rests_on.is_empty() {
        out += "per no entry: the answer is empty\n";
    } else {
        out += &format!("per entries {}\n", index_list(rests_on));
    }
    let others = signature_lines(&bundle.checkpoint).saturating_sub(1);
    let ignored = match others {
        0 => String::new(),
        n => format!(
            " ({} by keys this verifier does not know ignored)",
            counted(n as u64, "other signature line", "other signature lines")
        ),
    };
    let registry: Vec<u64> = ev.registry_entries().iter().copied().collect();
    out += &format!(
        "proven against the checkpoint of {} at tree size {} (root {}), signed by the pinned log key{ignored}; every entry listed is in that tree (C2SP tlog-proof inclusion proofs) and signed by its reporter's key as added by registry entries {} (rooted in the genesis entry){}\n",
        cp.origin,
        grouped(cp.size),
        B64.encode(cp.root.0),
        index_list(&registry),
        if bundle.memberships.is_empty() {
            String::new()
        } else {
            format!(
                "; {} of assets in bulk events' manifests check",
                counted(bundle.memberships.len() as u64, "membership proof", "membership proofs")
            )
        }
    );
    out += &format!("not proven: {}", claim.limits);
    out
}

/// `signature_lines` counts a signed note's signature lines.
fn signature_lines(note: &[u8]) -> usize {
    let text = String::from_utf8_lossy(note);
    match text.split_once("\n\n") {
        Some((_, sigs)) => sigs.lines().filter(|l| l.starts_with("\u{2014} ")).count(),
        None => 0,
    }
}

/// `grouped` prints a count with thousands separators: `1,812`.
pub(crate) fn grouped(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    digits
        .rchunks(3)
        .rev()
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

pub(crate) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
    }
}

/// `index_list` names log indexes, capped with "and N more".
fn index_list(indexes: &[u64]) -> String {
    let shown: Vec<String> = indexes.iter().take(LIST_CAP).map(u64::to_string).collect();
    if indexes.len() > LIST_CAP {
        format!(
            "{} and {} more",
            shown.join(", "),
            grouped((indexes.len() - LIST_CAP) as u64)
        )
    } else {
        join_and(&shown)
    }
}

/// `classes_of` counts the distinct assets of rows by class: an asset's
/// class is the one its rows prove (the rows of one asset never prove two,
/// as the row checks ensure).
fn classes_of(rows: &[IntervalRow]) -> BTreeMap<AssetClass, u64> {
    classes_of_refs(&rows.iter().collect::<Vec<_>>())
}

fn classes_of_refs(rows: &[&IntervalRow]) -> BTreeMap<AssetClass, u64> {
    let mut per_asset: BTreeMap<&Digest, AssetClass> = BTreeMap::new();
    for r in rows {
        let c = per_asset.entry(&r.asset).or_insert((None, None));
        if c.0.is_none() {
            *c = r.class();
        }
    }
    let mut out = BTreeMap::new();
    for c in per_asset.values() {
        *out.entry(*c).or_default() += 1;
    }
    out
}

fn noun(m: Option<Modality>, many: bool) -> &'static str {
    match (m, many) {
        (Some(Modality::FaceImage), false) => "face image",
        (Some(Modality::FaceImage), true) => "face images",
        (Some(Modality::PlateImage), false) => "plate image",
        (Some(Modality::PlateImage), true) => "plate images",
        (Some(Modality::SceneImage), false) => "scene image",
        (Some(Modality::SceneImage), true) => "scene images",
        (Some(Modality::FaceTemplate), false) => "face template",
        (Some(Modality::FaceTemplate), true) => "face templates",
        (Some(Modality::Other), false) => "other asset",
        (Some(Modality::Other), true) => "other assets",
        (None, false) => "asset of a kind the bundle does not prove",
        (None, true) => "assets of a kind the bundle does not prove",
    }
}

fn whose(s: Option<SubjectClass>, many: bool) -> &'static str {
    match (s, many) {
        (Some(SubjectClass::Citizen), false) => " of a citizen",
        (Some(SubjectClass::Citizen), true) => " of citizens",
        (Some(SubjectClass::PermanentResident), false) => " of a permanent resident",
        (Some(SubjectClass::PermanentResident), true) => " of permanent residents",
        (Some(SubjectClass::NonCitizen), false) => " of a non-citizen",
        (Some(SubjectClass::NonCitizen), true) => " of non-citizens",
        (Some(SubjectClass::Unknown), false) => " of an unknown subject",
        (Some(SubjectClass::Unknown), true) => " of unknown subjects",
        (None, _) => "",
    }
}

/// `class_list` is e.g. "1,200 face images of citizens and 3 plate images
/// of unknown subjects".
fn class_list(classes: &BTreeMap<AssetClass, u64>) -> String {
    join_and(
        &classes
            .iter()
            .map(|((m, s), n)| {
                format!(
                    "{} {}{}",
                    grouped(*n),
                    noun(*m, *n != 1),
                    whose(*s, *n != 1)
                )
            })
            .collect::<Vec<_>>(),
    )
}

/// `class_suffix` names the class of a set of rows of one asset.
fn class_suffix(rows: &[IntervalRow]) -> String {
    match rows.iter().map(IntervalRow::class).find(|c| c.0.is_some()) {
        Some((m, s)) => format!(" (a {}{})", noun(m, false), whose(s, false)),
        None => String::new(),
    }
}

/// `span` is a row's interval as text.
fn span(r: &IntervalRow) -> String {
    match r.to {
        Some(t) => format!("from {} to {}", rfc3339(r.from), rfc3339(t)),
        None => format!("from {} on", rfc3339(r.from)),
    }
}

/// `span_with_entries` is a row's interval with the entries it rests on.
fn span_with_entries(r: &IntervalRow) -> String {
    match (r.to, r.closed_by) {
        (Some(t), Some(c)) => format!(
            "from {} (entry {}) to {} (entry {})",
            rfc3339(r.from),
            r.opened_by,
            rfc3339(t),
            c
        ),
        _ => format!(
            "from {} (entry {}), still there at the checkpoint",
            rfc3339(r.from),
            r.opened_by
        ),
    }
}

/// `arrivals` says when rows' intervals opened.
fn arrivals(rows: &[&IntervalRow]) -> String {
    let first = rows.iter().map(|r| r.from).min().unwrap_or_default();
    let last = rows.iter().map(|r| r.from).max().unwrap_or_default();
    if first == last {
        format!("arrived at {}", rfc3339(first))
    } else {
        format!("arrived from {} to {}", rfc3339(first), rfc3339(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lists_read_plainly() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1812), "1,812");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(index_list(&[1, 2, 3]), "1, 2 and 3");
        let many: Vec<u64> = (0..25).collect();
        assert!(index_list(&many).ends_with("19 and 5 more"));
        let mut c = BTreeMap::new();
        c.insert(
            (Some(Modality::FaceImage), Some(SubjectClass::Citizen)),
            1812,
        );
        c.insert((Some(Modality::PlateImage), Some(SubjectClass::Unknown)), 1);
        assert_eq!(
            class_list(&c),
            "1,812 face images of citizens and 1 plate image of an unknown subject"
        );
    }
}
