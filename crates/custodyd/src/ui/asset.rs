//! `/ui/asset/<hex>`: an asset's custody timeline (the chart of its
//! custody intervals, with its events on the time axis), its intervals,
//! and its events, paged.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{Redirect, Response};
use custody_domain::{hex, rfc3339, AssetMeta, Digest, EventBody, Interval, Timestamp};
use custody_proto::{decode_entry, decode_event, Entry};
use custody_store::{index, LogStore};
use maud::html;
use serde::Deserialize;

use super::layout::{self, class_names, thousands, time, until, Nav};
use super::timeline::{self, Mark};
use super::{blocking, given, pinned, Params, UiError, MAX_INTERVALS};
use crate::answer::{fields, token, AnswerError};
use crate::query::AsOf;
use crate::state::LogState;

/// `PAGE` is how many events one page lists.
const PAGE: usize = 50;

/// `Lookup` is the navigation's asset form.
#[derive(Deserialize)]
pub(super) struct Lookup {
    asset: Option<String>,
}

/// `lookup` sends the navigation's asset form to the asset's page.
pub(super) async fn lookup(Params(q): Params<Lookup>) -> Result<Redirect, UiError> {
    let s = given(&q.asset)
        .ok_or_else(|| super::bad("asset", "give an asset digest, 64 hex digits"))?;
    Ok(Redirect::to(&layout::asset_href(&fields::digest_hex(
        "asset", s,
    )?)))
}

/// `Query` is the page's paging: events after log index `after`, as of
/// tree size `size`.
#[derive(Deserialize)]
pub(super) struct Query {
    after: Option<String>,
    size: Option<String>,
}

/// `EventRow` is one event about the asset, as the events table shows it.
struct EventRow {
    index: u64,
    time: Timestamp,
    integrated: Timestamp,
    kind: &'static str,
    reporter: String,
    actor: String,
    from_system: String,
    to_system: String,
    /// The system on which the reporter observed the actor's action, when
    /// it reported another party's action (`Registry::attribute`).
    observed_on: Option<String>,
}

/// `View` is what the page shows, read as of one tree size.
struct View {
    size: u64,
    meta: Option<AssetMeta>,
    intervals: Vec<Interval>,
    more_intervals: bool,
    events: Vec<EventRow>,
    more_events: bool,
}

/// `event_row` reads and decodes the entry at `index` for the events
/// table.
fn event_row(
    store: &dyn LogStore,
    registry: &custody_domain::Registry,
    index: u64,
) -> Result<EventRow, UiError> {
    let bytes = store.read_entries(index, index + 1)?.pop().ok_or_else(|| {
        UiError(AnswerError::internal(
            "read entry",
            format!("entry {index} is missing"),
        ))
    })?;
    let bad = |e: custody_domain::Refusal| {
        UiError(AnswerError::internal(
            "decode entry",
            format!("entry {index}: {e}"),
        ))
    };
    let Entry::Event {
        envelope,
        integrated_time,
    } = decode_entry(&bytes).map_err(bad)?
    else {
        return Err(UiError(AnswerError::internal(
            "read entry",
            format!("entry {index} is indexed under an asset but is the genesis entry"),
        )));
    };
    let e = decode_event(&envelope.body).map_err(bad)?;
    let (actor, from_system, to_system) = match &e.body {
        EventBody::Custody(c) => (c.actor.clone(), c.from_system.clone(), c.to_system.clone()),
        EventBody::MaintenanceSession(m) => (m.actor.clone(), String::new(), String::new()),
        _ => Default::default(),
    };
    let maintained = match &e.body {
        EventBody::MaintenanceSession(m) => m.system_id.as_str(),
        _ => "",
    };
    let observed_on = if actor.is_empty() {
        None
    } else {
        match registry.attribute(&e.reporter, &actor, &[&from_system, &to_system, maintained]) {
            Ok(custody_domain::Attribution::Observed { system }) => Some(system),
            _ => None,
        }
    };
    Ok(EventRow {
        index,
        time: e.event_time,
        integrated: integrated_time,
        kind: e.body.code(),
        reporter: e.reporter,
        actor,
        from_system,
        to_system,
        observed_on,
    })
}

/// `load` reads everything the page shows, as of one tree size.
fn load(
    state: &LogState,
    asset: Digest,
    after: Option<u64>,
    size: Option<&str>,
) -> Result<View, UiError> {
    let size = pinned(state, size)?;
    let store = state.store.as_ref();
    let q = AsOf { store, size };
    let (mut intervals, more_intervals) = q.asset_intervals(&asset, MAX_INTERVALS)?;
    intervals
        .sort_by(|a, b| (a.from, a.opened_by, &a.system).cmp(&(b.from, b.opened_by, &b.system)));
    let (indexes, more_events) = q.asset_history(&asset, after, PAGE)?;
    if intervals.is_empty() && indexes.is_empty() && q.asset_history(&asset, None, 1)?.0.is_empty()
    {
        return Err(UiError(AnswerError::NotFound(format!(
            "asset {} is not in the log as of checkpoint {size}",
            hex(&asset)
        ))));
    }
    let meta = index::asset_meta(store, &asset)?.filter(|m| m.created_by < size);
    let registry = state.registry();
    let events = indexes
        .iter()
        .map(|i| event_row(store, &registry, *i))
        .collect::<Result<_, _>>()?;
    Ok(View {
        size,
        meta,
        intervals,
        more_intervals,
        events,
        more_events,
    })
}

/// `page` serves `/ui/asset/<hex>`.
pub(super) async fn page(
    State(state): State<Arc<LogState>>,
    path: Result<Path<String>, PathRejection>,
    Params(q): Params<Query>,
) -> Result<Response, UiError> {
    let Path(digest) = path.map_err(|e| super::bad("path", e.body_text()))?;
    let asset = fields::digest_hex("asset", &digest)?;
    let after = given(&q.after)
        .map(|s| token::from_text::<u64>("after", s))
        .transpose()?;
    let size = given(&q.size).map(str::to_owned);
    let st = state.clone();
    let v = blocking(move || load(&st, asset, after, size.as_deref())).await?;
    Ok(render(&state, &asset, after, &v))
}

/// `render` is the page for the view `v` of `asset`.
fn render(state: &LogState, asset: &Digest, after: Option<u64>, v: &View) -> Response {
    let h = hex(asset);
    let now = super::now();
    let registry = state.registry();
    // Drawn as the boundary-violation rule judges a destination.
    let outside = |s: &str| {
        registry
            .system(s)
            .is_some_and(|r| !r.system.boundary_breaches().is_empty())
    };
    let marks: Vec<Mark> = v
        .events
        .iter()
        .map(|e| Mark {
            index: e.index,
            time: e.time,
            kind: e.kind,
        })
        .collect();
    let mut systems: Vec<&str> = v.intervals.iter().map(|i| i.system.as_str()).collect();
    systems.sort_unstable();
    systems.dedup();
    let mut parties: Vec<&str> = v.intervals.iter().map(|i| i.party.as_str()).collect();
    parties.sort_unstable();
    parties.dedup();
    let open = v.intervals.iter().filter(|i| i.to.is_none()).count();
    let self_href = format!("/ui/asset/{h}");
    let next = match (v.more_events, v.events.last()) {
        (true, Some(l)) => Some(format!(
            "{self_href}?after={}&size={}",
            token::to_text(&l.index),
            v.size
        )),
        _ => None,
    };
    let first = after.map(|_| format!("{self_href}?size={}", v.size));
    let showing = if v.events.is_empty() {
        "no events on this page".to_owned()
    } else {
        format!("{} events on this page", v.events.len())
    };
    let body = html! {
        p.sub {
            "As of checkpoint " strong { (thousands(v.size)) }
            @if let Some(m) = v.meta {
                " · " code { (m.modality.name()) } " · " code { (m.subject_class.name()) }
                " · created by entry " (m.created_by) " at " (time(m.created_at))
            }
        }
        div.toolbar {
            (layout::evidence(&format!("/evidence/history?asset={h}"), "Download the history evidence"))
            form.inline method="get" action="/evidence/holders" {
                input type="hidden" name="asset" value=(h);
                input type="text" name="at" value=(rfc3339(now)) aria-label="time, RFC 3339 UTC" size="22";
                button type="submit" { "⤓ Holders evidence at this time" }
            }
        }
        p #summary {
            "Held on " strong { (systems.len()) } " systems by " strong { (parties.len()) } " parties: "
            (v.intervals.len()) " custody intervals, " (open) " still open."
            @if v.more_intervals {
                " " strong.open { "Only the first " (MAX_INTERVALS) " intervals are shown." }
            }
        }

        h2 { "Custody timeline" }
        div.chart {
            (timeline::chart(&v.intervals, &marks, &outside, now))
        }
        p.note-text {
            "Each bar is a custody interval: from the event that opened it to the one that closed it; "
            "an open interval runs to now. Diamonds are the events listed below (this page of them). "
            "Hover a bar or a diamond for its times and log entries."
        }

        h2 { "Custody intervals" }
        table.data #intervals {
            thead { tr {
                th { "System" } th { "Held by" } th { "From" } th { "To" }
                th.num { "Opened by entry" } th.num { "Closed by entry" } th { "Modality" } th { "Subject class" } th { "Evidence" }
            } }
            tbody {
                @for i in &v.intervals {
                    @let (m, s) = class_names(i.modality, i.subject_class);
                    tr data-system=(i.system) {
                        td { code { (i.system) } @if outside(&i.system) { " " span.outside { "outside" } } }
                        td { code { (i.party) } }
                        td { (time(i.from)) }
                        td { (until(i.to)) }
                        td.num { (i.opened_by) }
                        td.num { @if let Some(c) = i.closed_by { (c) } @else { "–" } }
                        td { code { (m) } }
                        td { code { (s) } }
                        td { a href={ "/evidence/holders?asset=" (h) "&at=" (rfc3339(i.from)) } { "holders at start" } }
                    }
                }
            }
        }

        h2 { "Events" }
        (layout::pager(first.as_deref(), next.as_deref(), &showing))
        table.data #events {
            thead { tr {
                th.num { "Log index" } th { "Event time" } th { "Kind" } th { "Reporter" } th { "Actor" }
                th { "From system" } th { "To system" } th { "Integrated" }
            } }
            tbody {
                @for e in &v.events {
                    tr {
                        td.num { (e.index) }
                        td { (time(e.time)) }
                        td { code { (e.kind) } }
                        td {
                            code { (e.reporter) }
                            @if let Some(s) = &e.observed_on {
                                ", observed on system " code { (s) }
                            }
                        }
                        td { code { (e.actor) } }
                        td { code { (e.from_system) } }
                        td { code { (e.to_system) } }
                        td { (time(e.integrated)) }
                    }
                }
            }
        }
        @if first.is_some() || next.is_some() {
            (layout::pager(first.as_deref(), next.as_deref(), &showing))
        }
    };
    layout::page(
        state,
        Nav::Asset,
        html! { "Asset " code #asset { (h) } },
        body,
    )
}
