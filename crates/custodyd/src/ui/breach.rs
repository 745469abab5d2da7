//! `/ui/breach-scope?system=S&from=T&to=T`: the distinct assets that
//! rested on a system at any moment of a window, counted (in one scan) and
//! split by modality and subject class, and their intervals listed a page
//! of assets at a time.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use custody_domain::{hex, rfc3339, Digest, Registry, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, class_names, digest_link, enc, thousands, time, until, Nav};
use super::{blocking, given, pinned, Params, UiError};
use crate::answer::{self, fields, token, AnswerError};
use crate::query::{AsOf, BreachScope};
use crate::state::LogState;

/// `PAGE` is how many assets one page lists (each with all its intervals
/// in the window).
const PAGE: usize = 50;
const DAY: i64 = 24 * 3600 * 1_000_000_000;

/// `Query` is the form and the paging.
#[derive(Deserialize)]
pub(super) struct Query {
    system: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    size: Option<String>,
    page: Option<String>,
}

/// `form` is the query form, prefilled, suggesting registered systems.
fn form(registry: &Registry, system: &str, from: &str, to: &str) -> Markup {
    let mut systems: Vec<&str> = registry.systems().map(|(id, _)| id.as_str()).collect();
    systems.sort_unstable();
    systems.truncate(200);
    html! {
        form.query method="get" action="/ui/breach-scope" {
            label { "System"
                input type="text" name="system" value=(system) list="systems" placeholder="system id" spellcheck="false";
            }
            label { "From (RFC 3339, UTC)"
                input type="text" name="from" value=(from) size="24" spellcheck="false";
            }
            label { "To (RFC 3339, UTC)"
                input type="text" name="to" value=(to) size="24" spellcheck="false";
            }
            button type="submit" { "Show breach scope" }
            datalist #systems { @for s in systems { option value=(s) {} } }
        }
    }
}

/// `page` serves `/ui/breach-scope`.
pub(super) async fn page(
    State(state): State<Arc<LogState>>,
    Params(q): Params<Query>,
) -> Result<Response, UiError> {
    let registry = state.registry();
    let now = super::now();
    let to = match given(&q.to) {
        Some(s) => fields::time("to", s)?,
        None => now,
    };
    let from = match given(&q.from) {
        Some(s) => fields::time("from", s)?,
        // The log's times start at 1970 (`parse_rfc3339`): a default
        // window that would begin earlier is refused, not invented.
        None => to.checked_sub(DAY).filter(|t| *t >= 0).ok_or_else(|| {
            super::bad(
                "from",
                format!(
                    "the default window, the day before to ({}), starts before 1970; give from",
                    rfc3339(to)
                ),
            )
        })?,
    };
    fields::window(from, to)?;
    let system = given(&q.system)
        .map(|s| fields::id("system", s))
        .transpose()?;
    let form = form(
        &registry,
        system.as_deref().unwrap_or(""),
        &rfc3339(from),
        &rfc3339(to),
    );
    let Some(system) = system else {
        let body = html! {
            (form)
            p.sub { "Choose a system and a window: every asset that rested on it at any moment of the window is in scope." }
        };
        return Ok(layout::page(
            &state,
            Nav::BreachScope,
            html! { "Breach scope" },
            body,
        ));
    };
    answer::registered_system(&registry, &system)?;
    let Some(record) = registry.system(&system) else {
        return Err(UiError(AnswerError::internal(
            "breach scope",
            "a registered system has no record",
        )));
    };
    let owner = record.system.owner_party.clone();
    let r = &record.system;
    let concerns: Vec<&'static str> = [
        (!r.inside_boundary, "outside the boundary"),
        (!r.accredited, "not accredited"),
        (!r.encrypted_at_rest, "not encrypted at rest"),
        (r.removable_media, "removable media"),
    ]
    .into_iter()
    .filter_map(|(worry, what)| worry.then_some(what))
    .collect();
    let after = given(&q.after)
        .map(|s| token::from_text::<Digest>("after", s))
        .transpose()?;
    let page_no = given(&q.page)
        .map(|s| fields::number("page", s))
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let size = given(&q.size).map(str::to_owned);
    let (st, sys) = (state.clone(), system.clone());
    let (size, scope) = blocking(move || {
        let size = pinned(&st, size.as_deref())?;
        let q = AsOf {
            store: st.store.as_ref(),
            size,
        };
        Ok((
            size,
            q.breach_scope(&st.scopes, &sys, from, to, after, PAGE)?,
        ))
    })
    .await?;
    let ctx = Context {
        system: &system,
        owner: &owner,
        concerns,
        from,
        to,
        size,
        page_no,
    };
    Ok(render(&state, form, &ctx, &scope))
}

/// `Context` is what the answer is about.
struct Context<'a> {
    system: &'a str,
    owner: &'a str,
    /// The system's properties that put data on it at risk.
    concerns: Vec<&'static str>,
    from: Timestamp,
    to: Timestamp,
    size: u64,
    page_no: u64,
}

/// `split` is the count by modality (rows) and subject class (columns).
fn split(scope: &BreachScope) -> Markup {
    let modalities: BTreeSet<_> = scope.by_class.keys().map(|(m, _)| *m).collect();
    let classes: BTreeSet<_> = scope.by_class.keys().map(|(_, s)| *s).collect();
    let cell = |m, s| scope.by_class.get(&(m, s)).copied().unwrap_or(0);
    html! {
        table.data.narrow #split {
            thead { tr {
                th { "Modality \\ subject class" }
                @for s in &classes { th.num { (class_names(None, *s).1) } }
                th.num { "Total" }
            } }
            tbody {
                @for m in &modalities {
                    tr {
                        td { code { (class_names(*m, None).0) } }
                        @for s in &classes {
                            @let n = cell(*m, *s);
                            td.num.zero[n == 0] { (thousands(n)) }
                        }
                        td.num { strong { (thousands(classes.iter().map(|s| cell(*m, *s)).sum::<u64>())) } }
                    }
                }
            }
            tfoot { tr {
                td { "Total" }
                @for s in &classes { td.num { (thousands(modalities.iter().map(|m| cell(*m, *s)).sum::<u64>())) } }
                td.num { (thousands(scope.asset_count)) }
            } }
        }
    }
}

/// `render` is the page for the answer `scope`.
fn render(state: &LogState, form: Markup, c: &Context<'_>, scope: &BreachScope) -> Response {
    let (from_s, to_s) = (rfc3339(c.from), rfc3339(c.to));
    let base = format!(
        "/ui/breach-scope?system={}&from={from_s}&to={to_s}",
        enc(c.system)
    );
    let next = scope.next.map(|d: Digest| {
        format!(
            "{base}&size={}&after={}&page={}",
            c.size,
            hex(&d),
            c.page_no.saturating_add(1)
        )
    });
    let first = (c.page_no > 1).then(|| format!("{base}&size={}", c.size));
    let listed: BTreeSet<Digest> = scope.intervals.iter().map(|i| i.asset).collect();
    let start = (c.page_no - 1).saturating_mul(PAGE as u64);
    let showing = if listed.is_empty() {
        "no assets on this page".to_owned()
    } else {
        format!(
            "assets {}–{} of {}",
            thousands(start.saturating_add(1)),
            thousands(start.saturating_add(listed.len() as u64)),
            thousands(scope.asset_count)
        )
    };
    let evidence = format!(
        "/evidence/breach-scope?system={}&from={from_s}&to={to_s}",
        enc(c.system)
    );
    let body = html! {
        (form)
        p.sub {
            "System " code { (c.system) } ", owned by " code { (c.owner) }
            @if !c.concerns.is_empty() { " " span.outside #concerns { "(" (c.concerns.join(", ")) ")" } }
            ", from " (time(c.from)) " to " (time(c.to)) ", as of checkpoint " strong { (thousands(c.size)) } "."
        }
        div.toolbar { (layout::evidence(&evidence, "Download the breach-scope evidence")) }
        div.cards {
            div.card {
                div.k { "Distinct assets in scope" }
                div.v #asset-count data-count=(scope.asset_count) { (thousands(scope.asset_count)) }
                div.s { "every asset that rested on the system at any moment of the window" }
            }
        }
        h2 { "By modality and subject class" }
        (split(scope))
        p.note-text { "Each asset counts once, under the modality and subject class the log recorded at its creation." }
        h2 { "Custody intervals in the window" }
        (layout::pager(first.as_deref(), next.as_deref(), &showing))
        table.data #scope-intervals {
            thead { tr {
                th { "Asset" } th { "Held by" } th { "From" } th { "To" }
                th.num { "Opened by entry" } th.num { "Closed by entry" } th { "Modality" } th { "Subject class" }
            } }
            tbody {
                @for i in &scope.intervals {
                    @let (m, s) = class_names(i.modality, i.subject_class);
                    tr {
                        td { (digest_link(&i.asset)) }
                        td { code { (i.party) } }
                        td { (time(i.from)) }
                        td { (until(i.to)) }
                        td.num { (i.opened_by) }
                        td.num { @if let Some(x) = i.closed_by { (x) } @else { "–" } }
                        td { code { (m) } }
                        td { code { (s) } }
                    }
                }
            }
        }
        @if first.is_some() || next.is_some() {
            (layout::pager(first.as_deref(), next.as_deref(), &showing))
        }
    };
    layout::page(state, Nav::BreachScope, html! { "Breach scope" }, body)
}
