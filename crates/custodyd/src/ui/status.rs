//! `/ui/`: the log's status: its size, the latest checkpoint with its
//! signatures and witness cosignatures, the recent ingest rate, and the
//! registered systems, each linked to its holdings and breach scope.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use custody_domain::{hex, rfc3339};
use maud::{html, Markup};

use super::layout::{self, enc, thousands, Nav};
use crate::state::LogState;

/// `RATE_WINDOW` is how far back the ingest rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// `MAX_SYSTEMS` is the most registered systems listed.
const MAX_SYSTEMS: usize = 100;
const DAY: i64 = 24 * 3600 * 1_000_000_000;

/// `signers` is the key name on each signature line of a signed note
/// (C2SP signed-note: `— <name> <base64>` after the blank line).
fn signers(note: &str) -> Vec<&str> {
    let Some((_, sigs)) = note.split_once("\n\n") else {
        return Vec::new();
    };
    sigs.lines()
        .filter_map(|l| l.strip_prefix("— "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

/// `rate` is the ingest-rate card's value and caption.
fn rate(state: &LogState) -> Markup {
    match state.ingest.rate(Instant::now(), RATE_WINDOW) {
        None => html! {
            div.v { "–" }
            div.s { "measuring: under a second of samples" }
        },
        Some((r, span)) => {
            let v = if r >= 100.0 {
                thousands(r.round() as u64)
            } else {
                format!("{r:.1}")
            };
            html! {
                div.v #ingest-rate { (v) }
                div.s { "entries/s over the last " (span.as_secs()) " s of checkpoints" }
            }
        }
    }
}

/// `secs` is a window in whole seconds.
fn secs(nanos: i64) -> String {
    format!("{} s", thousands((nanos / 1_000_000_000).max(0) as u64))
}

/// `page` serves `/ui/`.
pub(super) async fn page(State(state): State<Arc<LogState>>) -> Response {
    let cp = state.latest();
    let durable = *state.durable.borrow();
    let origin = state.signer.origin();
    let note = String::from_utf8_lossy(&cp.note).into_owned();
    let names = signers(&note);
    let cosigners: Vec<&str> = names.iter().copied().filter(|n| *n != origin).collect();
    let root64 = note.lines().nth(2).unwrap_or("");
    let registry = state.registry();
    let mut systems: Vec<_> = registry.systems().map(|(_, r)| &r.system).collect();
    systems.sort_by(|a, b| a.system_id.cmp(&b.system_id));
    let (now, total) = (super::now(), systems.len());
    let (at, day_ago) = (rfc3339(now), rfc3339(now - DAY));
    let open = state.access.is_open();
    let (policy, policy_from) = registry.policies().at(cp.size.max(durable));
    let body = html! {
        @if open {
            p.sub #open-access {
                strong { "Open server: " }
                "this data directory has no access list, so every caller may read everything and report for any party. Add tokens with "
                code { "custodyd access add" } "."
            }
        }
        div.cards {
            div.card {
                div.k { "Tree size (checkpointed)" }
                div.v #tree-size data-size=(cp.size) { (thousands(cp.size)) }
                div.s { "entries under the latest signed checkpoint" }
            }
            div.card {
                div.k { "Durable size" }
                div.v { (thousands(durable)) }
                div.s { "entries fsync'd; the next checkpoint covers them" }
            }
            div.card {
                div.k { "Ingest rate" }
                (rate(&state))
            }
            div.card {
                div.k { "Witness cosignatures" }
                div.v #cosignatures { (cosigners.len()) }
                div.s { "independent witnesses on this checkpoint" }
            }
        }

        h2 { "Latest checkpoint" }
        div.toolbar { (layout::evidence("/checkpoint", "Download the signed checkpoint")) }
        dl.facts {
            dt { "Origin" } dd { code { (origin) } }
            dt { "Tree size" } dd.mono { (cp.size) }
            dt { "Root hash (base64, as signed)" } dd.mono { (root64) }
            dt { "Root hash (hex)" } dd.mono { (hex(&cp.root.0)) }
            dt { "Log verifier key" } dd.mono { (state.signer.verifier_key()) }
            dt { "Signed by" } dd {
                @for n in &names {
                    code { (n) }
                    @if *n == origin { " (the log's own key) " }
                }
            }
        }
        p.note-text { "The signed note, exactly as served at " code { "/checkpoint" } ":" }
        pre.note #checkpoint-note { (note) }

        h2 { "Findings policy" }
        p.sub {
            "The windows the time-based findings apply to the next entry. "
            "Each entry is judged by the last POLICY_PUBLISHED before it, or by the defaults."
        }
        dl.facts #policy {
            dt { "Published by" } dd {
                @match policy_from {
                    Some(i) => { "entry " span.mono { (i) } }
                    None => { "none yet: the defaults" }
                }
            }
            dt { "Receipt window" } dd.mono { (secs(policy.receipt_window)) }
            dt { "Reporting deadline" } dd.mono { (secs(policy.reporting_deadline)) }
            dt { "Attestation period" } dd.mono { (secs(policy.attestation_period)) }
        }

        h2 { "Witness cosignatures" }
        @if cosigners.is_empty() {
            p #no-witnesses {
                strong { "None. " }
                "No witness has cosigned this checkpoint: it carries only the log's own signature. "
                "Until witnesses are configured, an auditor detects a split view by checking that "
                "each checkpoint extends the last one seen ("
                code { "custody monitor" } ")."
            }
        } @else {
            ul { @for w in &cosigners { li { code { (w) } } } }
        }

        h2 { "Registered systems" }
        p.sub {
            (total) " systems in the registry"
            @if total > MAX_SYSTEMS { "; the first " (MAX_SYSTEMS) " by id are listed" }
            ". Holdings are as of now; breach scope covers the last 24 hours."
        }
        table.data #systems {
            thead { tr {
                th { "System" } th { "Owner" } th { "Inside boundary" } th { "Accredited" }
                th { "Encrypted at rest" } th { "Removable media" } th { "Custody" }
            } }
            tbody {
                @for s in systems.iter().take(MAX_SYSTEMS) {
                    tr {
                        td { code { (s.system_id) } }
                        td { code { (s.owner_party) } }
                        td { (flag(s.inside_boundary, true)) }
                        td { (flag(s.accredited, true)) }
                        td { (flag(s.encrypted_at_rest, true)) }
                        td { (flag(s.removable_media, false)) }
                        td {
                            a href={ "/ui/holdings?system=" (enc(&s.system_id)) "&at=" (at) } { "holdings" }
                            " · "
                            a href={ "/ui/breach-scope?system=" (enc(&s.system_id)) "&from=" (day_ago) "&to=" (at) } { "breach scope" }
                        }
                    }
                }
            }
        }
    };
    layout::page(&state, Nav::Status, html! { "Log status" }, body)
}

/// `flag` is a yes/no cell, marked when it is the worrying answer.
fn flag(v: bool, good: bool) -> Markup {
    html! {
        @if v == good { span { (if v { "yes" } else { "no" }) } }
        @else { span.outside { (if v { "yes" } else { "no" }) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signers_are_read_from_signature_lines() {
        let note = "o.example/log\n5\nAAAA\n\n— o.example/log abcd\n— witness.example efgh\n";
        assert_eq!(signers(note), ["o.example/log", "witness.example"]);
        assert!(signers("no signatures").is_empty());
    }
}
