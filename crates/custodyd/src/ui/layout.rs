//! The shell every web-view page shares (header naming the log and its
//! latest checkpoint, navigation, styles, security headers) and the small
//! pieces pages are built from: digest links, numbers, times, evidence
//! links and pagers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_domain::{hex, rfc3339, Digest, Modality, SubjectClass, Timestamp};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::state::LogState;

/// `Nav` is the navigation entry a page belongs to, shown as active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The log's status.
    Status,
    /// An asset's timeline (reached by digest, not from the navigation).
    Asset,
    /// Holdings of a party or system.
    Holdings,
    /// Breach scope of a system.
    BreachScope,
    /// Policy findings.
    Findings,
}

/// `NAV` is the navigation: each entry's page, link and label.
const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Status, "/ui/", "Log status"),
    (Nav::Holdings, "/ui/holdings", "Holdings"),
    (Nav::BreachScope, "/ui/breach-scope", "Breach scope"),
    (Nav::Findings, "/ui/findings", "Findings"),
];

/// `CSS` is the pages' one style sheet, inline; fonts are the system's, so
/// a page fetches nothing else.
const CSS: &str = r#"
:root{--ink:#1b2430;--muted:#5d6878;--line:#d8dde4;--soft:#f3f5f8;--accent:#1d5a9e;
--bad:#a8261c;--head:#15233b}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "Liberation Sans","DejaVu Sans",Arial,sans-serif;color:var(--ink);background:#fff}
code,pre,.mono,input[type=text]{font-family:"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;font-size:12.5px}
a{color:var(--accent)}
p code{white-space:nowrap}
header.top{background:var(--head);color:#fff;display:flex;justify-content:space-between;align-items:center;padding:10px 24px;gap:24px}
header.top a{color:#fff;text-decoration:none}
.brand a{font-weight:700;font-size:17px}
.brand .tag{margin-left:12px;font-size:11px;color:#aebdd2;text-transform:uppercase;letter-spacing:.7px}
.log{font-size:13px;color:#d5dde8;white-space:nowrap}
.log code{color:#fff;background:rgba(255,255,255,.09);padding:2px 6px;border-radius:3px}
.log .label{margin:0 6px 0 18px;color:#9fb0c8;text-transform:uppercase;font-size:11px;letter-spacing:.6px}
.log strong{font-variant-numeric:tabular-nums}
nav.main{display:flex;align-items:center;gap:2px;padding:0 24px;border-bottom:1px solid var(--line);background:var(--soft)}
nav.main>a{padding:10px 14px 8px;color:var(--ink);text-decoration:none;border-bottom:3px solid transparent;font-weight:600}
nav.main>a.active{border-bottom-color:var(--accent);color:var(--accent)}
nav.main form{margin-left:auto;display:flex;gap:6px;padding:6px 0}
nav.main input{min-width:30em}
main{padding:18px 24px 28px;max-width:1400px}
h1{font-size:21px;margin:4px 0 6px}
h1 code{font-size:17px;word-break:break-all}
h2{font-size:16px;margin:26px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.sub{color:var(--muted);margin:0 0 14px}
table.data{border-collapse:collapse;width:100%;font-size:13px}
table.data th{text-align:left;background:var(--soft);border-bottom:2px solid var(--line);padding:6px 8px;font-weight:600;white-space:nowrap}
table.data td{border-bottom:1px solid #e7eaef;padding:4px 8px;vertical-align:top}
table.data tbody tr:hover td{background:#f8fafc}
table.data .num,.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.data tfoot td{font-weight:700;border-top:2px solid var(--line)}
table.narrow{width:auto;min-width:40%}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:5px 18px;margin:0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;word-break:break-all}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin:6px 0 4px}
.card{border:1px solid var(--line);border-radius:6px;padding:10px 16px;min-width:210px}
.card .k{font-size:11px;text-transform:uppercase;color:var(--muted);letter-spacing:.6px}
.card .v{font-size:26px;font-weight:700;font-variant-numeric:tabular-nums}
.card .s{font-size:12px;color:var(--muted)}
.toolbar{display:flex;gap:10px;align-items:center;flex-wrap:wrap;margin:10px 0}
a.evidence{display:inline-block;padding:4px 10px;border:1px solid var(--accent);border-radius:4px;text-decoration:none;font-weight:600;font-size:13px}
a.evidence:hover{background:#eaf1fa}
form.inline{display:flex;gap:6px;align-items:center;margin:0}
form.inline button{background:#fff;color:var(--accent);font-size:13px;padding:4px 10px}
form.inline button:hover{background:#eaf1fa}
form.query+p.sub{margin-top:10px}
td.zero{color:#a3acb8}
form.query{display:flex;gap:14px;align-items:flex-end;flex-wrap:wrap;background:var(--soft);border:1px solid var(--line);padding:10px 12px;border-radius:6px;margin:6px 0 4px}
form.query label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);font-weight:600;gap:3px}
form.query .or{color:var(--muted);padding-bottom:6px}
input[type=text]{padding:5px 7px;border:1px solid #b4bdca;border-radius:4px;min-width:15em;color:var(--ink)}
button{font:inherit;font-weight:600;padding:5px 12px;border-radius:4px;border:1px solid var(--accent);background:var(--accent);color:#fff}
.pager{display:flex;gap:14px;align-items:center;margin:10px 0;color:var(--muted)}
pre.note{background:var(--soft);border:1px solid var(--line);padding:10px 12px;border-radius:4px;overflow-x:auto;margin:6px 0}
.open{color:var(--bad);font-weight:600}
.outside{color:var(--bad);font-weight:600}
.muted,.note-text{color:var(--muted);font-size:12.5px}
.error{border-left:4px solid var(--bad);background:#fcf2f1;padding:12px 16px;max-width:60em}
.chart{border:1px solid var(--line);border-radius:6px;padding:8px;margin:8px 0}
.chart svg{display:block;width:100%;height:auto}
footer{border-top:1px solid var(--line);padding:10px 24px;color:var(--muted);font-size:12px}
"#;

/// `page` is a whole page: `title` and `body` inside the shell, which names
/// the log and its latest checkpoint.
pub fn page(state: &LogState, nav: Nav, title: Markup, body: Markup) -> Response {
    let size = state.latest().size;
    let head = html! {
        div.log {
            span.label { "log" } code #origin { (state.signer.origin()) }
            span.label { "checkpoint" }
            a href="/checkpoint" title="the signed checkpoint (C2SP)" {
                strong #header-size { (thousands(size)) } " entries"
            }
        }
    };
    respond(StatusCode::OK, shell(Some(nav), head, title, body))
}

/// `error_page` is the page of a failed request: `code` and what went
/// wrong.
pub fn error_page(code: StatusCode, message: &str) -> Response {
    let reason = code.canonical_reason().unwrap_or("error");
    let title = html! { (code.as_u16()) " " (reason) };
    let body = html! {
        p.error #error { (message) }
        p { a href="/ui/" { "Back to the log's status" } }
    };
    respond(code, shell(None, html! {}, title, body))
}

/// `shell` wraps a page's `title` and `body` in the header (with `head`
/// on its right), the navigation (with `nav` active) and the footer.
fn shell(nav: Option<Nav>, head: Markup, title: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title.clone()) " · Custody Ledger" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header.top {
                    div.brand {
                        a href="/ui/" { "Custody Ledger" }
                        span.tag { "auditor view · read-only" }
                    }
                    (head)
                }
                nav.main {
                    @for (n, href, label) in NAV {
                        a href=(href) .active[Some(n) == nav] { (label) }
                    }
                    form method="get" action="/ui/asset" {
                        input type="text" name="asset" placeholder="asset digest, 64 hex digits"
                            aria-label="asset digest" spellcheck="false";
                        button type="submit" { "Open timeline" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer {
                    "Read-only. Every answer is computed from the log as of a signed checkpoint; "
                    "download the evidence bundle a page links to and check it offline with "
                    code { "custody verify" } "."
                }
            }
        }
    }
}

/// `respond` sends a page with headers that keep it uncached, unframed and
/// free of scripts.
fn respond(code: StatusCode, doc: Markup) -> Response {
    let mut r = (code, doc).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `thousands` writes `n` with thousands separators: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    // The leading group has one to three digits; every later group three.
    let lead = match s.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    out.push_str(&s[..lead.min(s.len())]);
    for group in s.as_bytes()[lead.min(s.len())..].chunks(3) {
        out.push(',');
        out.extend(group.iter().map(|b| char::from(*b)));
    }
    out
}

/// `clip` is `s` cut to at most `n` characters, marked with an ellipsis
/// when cut.
pub fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `enc` percent-encodes a query-string value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `asset_href` is the timeline page of `asset`.
pub fn asset_href(asset: &Digest) -> String {
    format!("/ui/asset/{}", hex(asset))
}

/// `digest_link` is an asset's digest, shortened, linking to its timeline;
/// the full digest is its title.
pub fn digest_link(asset: &Digest) -> Markup {
    let h = hex(asset);
    html! {
        a.mono href=(asset_href(asset)) title=(h) { (&h[..16]) "…" }
    }
}

/// `time` is a time in RFC 3339 UTC.
pub fn time(t: Timestamp) -> Markup {
    let s = rfc3339(t);
    html! { time.mono datetime=(s) { (s) } }
}

/// `until` is an interval's end, or "open" while it has none.
pub fn until(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.open title="still held as of this checkpoint" { "open" } },
    }
}

/// `class_names` is an interval's modality and subject class, as the log
/// knows them.
pub fn class_names(m: Option<Modality>, s: Option<SubjectClass>) -> (&'static str, &'static str) {
    (
        m.map_or("UNKNOWN", |m| m.name()),
        s.map_or("UNKNOWN", |s| s.name()),
    )
}

/// `evidence` is a link to the evidence bundle proving what a page shows.
pub fn evidence(href: &str, label: &str) -> Markup {
    html! {
        a.evidence href=(href) rel="nofollow" title="evidence bundle: entries with inclusion proofs against a signed checkpoint" {
            "⤓ " (label)
        }
    }
}

/// `pager` is a listing's paging line: where this page starts, and links
/// to the first and the next page.
pub fn pager(first: Option<&str>, next: Option<&str>, showing: &str) -> Markup {
    html! {
        div.pager {
            span { (showing) }
            @if let Some(f) = first { a href=(f) { "« First page" } }
            @if let Some(n) = next { a #next href=(n) rel="next" { "Next page »" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(enc("2026-01-01T00:00:00Z"), "2026-01-01T00:00:00Z");
        assert_eq!(enc("a b&c=d"), "a%20b%26c%3Dd");
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("éé", 5), "éé");
    }

    #[test]
    fn markup_is_escaped() {
        let m = html! { p { ("<script>alert(1)</script>") } };
        assert!(!m.into_string().contains("<script>"));
    }
}
