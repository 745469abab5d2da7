//! `/ui/holdings?party=P&at=T` or `?system=S&at=T`: what a party (on every
//! system it owns) or one system held at a time, paged, with a form to
//! choose them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use custody_domain::{rfc3339, Interval, Registry, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, class_names, digest_link, enc, thousands, time, until, Nav};
use super::{blocking, given, pinned, Params, UiError};
use crate::answer::{self, fields, token};
use crate::query::{AsOf, HoldingsCursor};
use crate::state::LogState;
use custody_evidence::Holder;

/// `PAGE` is how many intervals one page lists.
const PAGE: usize = 100;
/// `MAX_CHOICES` is the most ids the form suggests.
const MAX_CHOICES: usize = 200;

/// `Query` is the form and the paging: the holder, the time, and where
/// the page resumes.
#[derive(Deserialize)]
pub(super) struct Query {
    party: Option<String>,
    system: Option<String>,
    at: Option<String>,
    after: Option<String>,
    size: Option<String>,
    page: Option<String>,
}

/// `holder_param` is the query-string part that names `holder`.
fn holder_param(holder: &Holder) -> String {
    match holder {
        Holder::Party(p) => format!("party={}", enc(p)),
        Holder::System(s) => format!("system={}", enc(s)),
    }
}

/// `choices` is the form: holder, time, and the registered ids to pick
/// from.
fn choices(registry: &Registry, party: &str, system: &str, at: &str) -> Markup {
    let mut systems: Vec<&str> = registry.systems().map(|(id, _)| id.as_str()).collect();
    systems.sort_unstable();
    systems.truncate(MAX_CHOICES);
    let mut owners: Vec<&str> = registry
        .systems()
        .map(|(_, r)| r.system.owner_party.as_str())
        .collect();
    owners.sort_unstable();
    owners.dedup();
    owners.truncate(MAX_CHOICES);
    html! {
        form.query method="get" action="/ui/holdings" {
            label { "Party (its systems)"
                input type="text" name="party" value=(party) list="parties" placeholder="party id" spellcheck="false";
            }
            span.or { "or" }
            label { "System"
                input type="text" name="system" value=(system) list="systems" placeholder="system id" spellcheck="false";
            }
            label { "At (RFC 3339, UTC)"
                input type="text" name="at" value=(at) size="24" spellcheck="false";
            }
            button type="submit" { "Show holdings" }
            datalist #parties { @for p in owners { option value=(p) {} } }
            datalist #systems { @for s in systems { option value=(s) {} } }
        }
    }
}

/// `page` serves `/ui/holdings`.
pub(super) async fn page(
    State(state): State<Arc<LogState>>,
    Params(q): Params<Query>,
) -> Result<Response, UiError> {
    let registry = state.registry();
    let at = match given(&q.at) {
        Some(s) => fields::time("at", s)?,
        None => super::now(),
    };
    let holder = match (given(&q.party), given(&q.system)) {
        (Some(_), Some(_)) => {
            return Err(super::bad("party", "give a party or a system, not both"))
        }
        (Some(p), None) => Some(Holder::Party(fields::id("party", p)?)),
        (None, Some(s)) => Some(Holder::System(fields::id("system", s)?)),
        (None, None) => None,
    };
    let (party, system) = match &holder {
        Some(Holder::Party(p)) => (p.as_str(), ""),
        Some(Holder::System(s)) => ("", s.as_str()),
        None => ("", ""),
    };
    let form = choices(&registry, party, system, &rfc3339(at));
    let Some(holder) = holder else {
        let body = html! {
            (form)
            p.sub { "Choose a party, to list what rests on every system it owns, or one system; and a time." }
        };
        return Ok(layout::page(
            &state,
            Nav::Holdings,
            html! { "Holdings" },
            body,
        ));
    };
    let after = given(&q.after)
        .map(|s| token::from_text::<HoldingsCursor>("after", s))
        .transpose()?;
    let page_no = given(&q.page)
        .map(|s| fields::number("page", s))
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let size = given(&q.size).map(str::to_owned);
    let (st, who) = (state.clone(), holder.clone());
    let (size, systems, intervals, next) = blocking(move || {
        let size = pinned(&st, size.as_deref())?;
        let systems = answer::holder_systems(&st.registry(), &who, size)?;
        let q = AsOf {
            store: st.store.as_ref(),
            size,
        };
        let (intervals, next) = q.holdings(&systems, at, after, PAGE)?;
        Ok((size, systems, intervals, next))
    })
    .await?;
    Ok(render(
        &state, form, &holder, &systems, at, size, page_no, &intervals, next,
    ))
}

/// `render` is the page for the answer `intervals` about `holder`.
#[allow(clippy::too_many_arguments)]
fn render(
    state: &LogState,
    form: Markup,
    holder: &Holder,
    systems: &[String],
    at: Timestamp,
    size: u64,
    page_no: u64,
    intervals: &[Interval],
    next: Option<HoldingsCursor>,
) -> Response {
    let at_s = rfc3339(at);
    let base = format!("/ui/holdings?{}&at={at_s}", holder_param(holder));
    let next = next.map(|c| {
        format!(
            "{base}&size={size}&after={}&page={}",
            token::to_text(&c),
            page_no.saturating_add(1)
        )
    });
    let first = (page_no > 1).then(|| format!("{base}&size={size}"));
    let start = (page_no - 1).saturating_mul(PAGE as u64);
    let showing = if intervals.is_empty() {
        "nothing held on this page".to_owned()
    } else {
        format!(
            "rows {}–{}",
            thousands(start.saturating_add(1)),
            thousands(start.saturating_add(intervals.len() as u64))
        )
    };
    let evidence = format!("/evidence/holdings?{}&at={at_s}", holder_param(holder));
    let body = html! {
        (form)
        p.sub {
            @match holder {
                Holder::Party(p) => {
                    "Party " code { (p) } " on the " (systems.len()) " systems it owns"
                    @if !systems.is_empty() { " (" @for (n, s) in systems.iter().enumerate() { @if n > 0 { ", " } code { (s) } } ")" }
                }
                Holder::System(s) => { "System " code { (s) } }
            }
            ", at " (time(at)) ", as of checkpoint " strong { (thousands(size)) } "."
        }
        div.toolbar { (layout::evidence(&evidence, "Download the holdings evidence")) }
        (layout::pager(first.as_deref(), next.as_deref(), &showing))
        table.data #holdings {
            thead { tr {
                th.num { "#" } th { "Asset" } th { "System" } th { "Held by" } th { "Held from" } th { "Until" }
                th.num { "Opened by entry" } th { "Modality" } th { "Subject class" }
            } }
            tbody {
                @for (n, i) in intervals.iter().enumerate() {
                    @let (m, s) = class_names(i.modality, i.subject_class);
                    tr {
                        td.num { (thousands(start.saturating_add(n as u64 + 1))) }
                        td { (digest_link(&i.asset)) }
                        td { code { (i.system) } }
                        td { code { (i.party) } }
                        td { (time(i.from)) }
                        td { (until(i.to)) }
                        td.num { (i.opened_by) }
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
    layout::page(state, Nav::Holdings, html! { "Holdings" }, body)
}
