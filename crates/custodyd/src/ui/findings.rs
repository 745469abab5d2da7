//! `/ui/findings?rule=R&party=P&system=S&as_of=T`: policy findings
//! (DESIGN §6) as of a time, filtered, counted by rule, paged, each with
//! its evidence bundle.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use custody_domain::findings::{FindingsPage, Rule};
use custody_domain::{rfc3339, Timestamp};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, digest_link, enc, thousands, time, Nav};
use super::{given, Params, UiError};
use crate::answer::token::{self, FindingsCursor};
use crate::answer::{self, fields, AnswerError};
use crate::state::LogState;

/// `PAGE` is how many findings one page lists.
const PAGE: usize = 50;

/// `Query` is the form and the paging.
#[derive(Deserialize)]
pub(super) struct Query {
    rule: Option<String>,
    party: Option<String>,
    system: Option<String>,
    as_of: Option<String>,
    page: Option<String>,
    /// The last finding of the page before ([`FindingsCursor`]).
    after: Option<String>,
    /// The checkpoint the pages are pinned at.
    size: Option<String>,
}

fn form(rule: Option<Rule>, party: &str, system: &str, as_of: &str) -> Markup {
    html! {
        form.query method="get" action="/ui/findings" {
            label { "Rule"
                select name="rule" {
                    option value="" selected[rule.is_none()] { "any rule" }
                    @for r in Rule::ALL {
                        option value=(r.name()) selected[rule == Some(r)] { (r.name()) }
                    }
                }
            }
            label { "Party"
                input type="text" name="party" value=(party) placeholder="any party" spellcheck="false";
            }
            label { "System"
                input type="text" name="system" value=(system) placeholder="any system" spellcheck="false";
            }
            label { "As of (RFC 3339, UTC)"
                input type="text" name="as_of" value=(as_of) size="24" spellcheck="false";
            }
            button type="submit" { "Show findings" }
        }
    }
}

/// `page` serves `/ui/findings`.
pub(super) async fn page(
    State(state): State<Arc<LogState>>,
    Params(q): Params<Query>,
) -> Result<Response, UiError> {
    let filter = answer::findings_filter(
        given(&q.rule),
        given(&q.party),
        given(&q.system),
        None,
        None,
    )?;
    let asked = given(&q.as_of)
        .map(|s| fields::time("as_of", s))
        .transpose()?;
    // The page shown is the one after the cursor; its number only
    // labels it.
    let after = given(&q.after)
        .map(|c| token::from_text::<FindingsCursor>("after", c))
        .transpose()?;
    let as_of = match (&after, asked) {
        (None, None) => super::now(),
        (c, asked) => answer::findings_as_of(c.as_ref().map(|c| c.as_of), asked, "as_of")?,
    };
    let page_no = match after {
        None => 1,
        Some(_) => given(&q.page)
            .map(|s| fields::number("page", s))
            .transpose()?
            .unwrap_or(2)
            .clamp(2, u64::from(u32::MAX)),
    };
    let Some(stage) = state.findings.get().cloned() else {
        return Err(UiError(AnswerError::Unavailable(
            "the findings stage is not running".into(),
        )));
    };
    let size = given(&q.size).map(str::to_owned);
    let st = state.clone();
    let size = super::blocking(move || super::pinned(&st, size.as_deref())).await?;
    let found = stage
        .page(
            size,
            as_of,
            filter.clone(),
            after.map(|c| (c.at, c.id)),
            PAGE,
        )
        .await?;
    Ok(render(
        &state,
        Filter {
            rule: filter.rule,
            party: filter.party.as_deref().unwrap_or(""),
            system: filter.system.as_deref().unwrap_or(""),
            as_of,
        },
        size,
        page_no,
        &found,
    ))
}

struct Filter<'a> {
    rule: Option<Rule>,
    party: &'a str,
    system: &'a str,
    as_of: Timestamp,
}

impl Filter<'_> {
    fn query(&self, rule: Option<Rule>) -> String {
        let mut q = format!("as_of={}", rfc3339(self.as_of));
        if let Some(r) = rule {
            q += &format!("&rule={}", r.name());
        }
        if !self.party.is_empty() {
            q += &format!("&party={}", enc(self.party));
        }
        if !self.system.is_empty() {
            q += &format!("&system={}", enc(self.system));
        }
        q
    }
}

fn render(
    state: &LogState,
    filter: Filter<'_>,
    size: u64,
    page_no: u64,
    found: &FindingsPage,
) -> Response {
    let (total, rows, by_rule) = (found.total, &found.rows, &found.by_rule);
    let as_of_s = rfc3339(filter.as_of);
    let base = format!("/ui/findings?{}", filter.query(filter.rule));
    let start = (page_no as usize - 1) * PAGE;
    let next = rows.last().filter(|_| found.more).map(|l| {
        let cursor = FindingsCursor {
            as_of: filter.as_of,
            at: l.at,
            id: l.id.clone(),
        };
        format!(
            "{base}&size={size}&page={}&after={}",
            page_no + 1,
            token::to_text(&cursor)
        )
    });
    let first = (page_no > 1).then(|| format!("{base}&size={size}"));
    let showing = if rows.is_empty() {
        "no findings on this page".to_owned()
    } else {
        format!(
            "findings {}–{} of {}",
            thousands(start as u64 + 1),
            thousands((start + rows.len()) as u64),
            thousands(total)
        )
    };
    let body = html! {
        (form(filter.rule, filter.party, filter.system, &as_of_s))
        p.sub {
            "Time-based rules (retention, receipts, attestations) are evaluated as of "
            (time(filter.as_of)) "; every finding cites log entries proven against checkpoint "
            strong { (thousands(size)) } "."
        }
        table.data #by-rule {
            thead { tr { th { "Rule" } th.num { "Findings" } } }
            tbody {
                @for r in Rule::ALL {
                    tr {
                        td { a href=(format!("/ui/findings?{}", filter.query(Some(r)))) { code { (r.name()) } } }
                        td.num { (thousands(by_rule.get(&r).copied().unwrap_or(0))) }
                    }
                }
            }
        }
        (layout::pager(first.as_deref(), next.as_deref(), &showing))
        table.data #findings {
            thead { tr {
                th { "Rule" } th { "Arose" } th { "Party" } th { "System" } th { "Asset" }
                th { "Entries" } th { "Grant" } th { "Retention rule" } th { "Detail" } th { "Reported" } th { "Evidence" }
            } }
            tbody {
                @for f in rows {
                    tr {
                        td { code { (f.rule.name()) } }
                        td { (time(f.at)) }
                        td { @if let Some(p) = &f.party { code { (p) } } }
                        td { @if let Some(s) = &f.system { code { (s) } } }
                        td { @if let Some(a) = &f.asset { (digest_link(a)) } }
                        td.mono { (f.entries.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
                        td { code { (f.grant.as_deref().unwrap_or("none")) } }
                        td { code { (f.retention_rule.as_deref().unwrap_or("none")) } }
                        td { (f.detail) }
                        td { @if let (Some(by), Some(on)) = (&f.observed_by, &f.observed_on) {
                            "reported by " code { (by) } ", observed on system " code { (on) }
                        } }
                        td { (layout::evidence(&format!("/evidence/finding?id={}&as_of={}", enc(&f.id), as_of_s), "bundle")) }
                    }
                }
            }
        }
        @if first.is_some() || next.is_some() {
            (layout::pager(first.as_deref(), next.as_deref(), &showing))
        }
    };
    layout::page(state, Nav::Findings, html! { "Findings" }, body)
}
