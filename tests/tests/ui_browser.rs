//! The auditors' web view in a real browser: headless Chromium (Debian's
//! `chromium`, which `deploy/install-deps.sh --test` installs) loads each
//! page of a seeded demo; the DOM it built is checked against the demo's
//! ground truth, and a screenshot of each page is saved under
//! `$CARGO_TARGET_TMPDIR/ui-screenshots/`. Plain HTTP requests check the
//! error pages.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use custody_domain::{parse_rfc3339, rfc3339};
use custody_e2e::{Demo, Log};
use serde_json::Value;

/// `chromium` runs headless Chromium on `url` with a fresh profile and
/// returns what it printed.
fn chromium(extra: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium: install it with `deploy/install-deps.sh --test`");
    assert!(
        out.status.success(),
        "chromium {extra:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dom` is the page's DOM as the browser built it, with `&amp;` in
/// attribute values turned back into `&`.
fn dom(url: &str) -> String {
    chromium(&["--dump-dom"], url).replace("&amp;", "&")
}

/// `screenshot` saves a 1400×1000 screenshot of `url` as `NAME.png`.
fn screenshot(url: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    chromium(
        &[
            &format!("--screenshot={}", path.display()),
            "--window-size=1400,1000",
            "--hide-scrollbars",
        ],
        url,
    );
    let png = std::fs::read(&path).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
    println!("screenshot: {}", path.display());
    path
}

/// `attr` is attribute `name` of the element with id `id`.
fn attr(dom: &str, id: &str, name: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = dom[..at].rfind('<').unwrap();
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let key = format!(" {name}=\"");
    let v = &tag[tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {name}"))
        + key.len()..];
    v[..v.find('"').unwrap()].to_owned()
}

/// `section` is the markup of the element with id `id` up to its closing
/// `</tag>`.
fn section<'a>(dom: &'a str, id: &str, tag: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let end = dom[at..].find(&format!("</{tag}>")).unwrap();
    &dom[at..at + end]
}

/// `asset_links` is every asset linked to its timeline in `html`.
fn asset_links(html: &str) -> Vec<String> {
    html.match_indices("href=\"/ui/asset/")
        .map(|(i, m)| html[i + m.len()..i + m.len() + 64].to_owned())
        .collect()
}

/// `next_link` is the page's "next page" link, if it has one.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("id=\"next\" href=\"")? + "id=\"next\" href=\"".len();
    Some(html[at..at + html[at..].find('"')?].replace("&amp;", "&"))
}

fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::get(url).unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn t(s: &Value) -> i64 {
    parse_rfc3339(s.as_str().expect("a time")).expect("RFC 3339")
}

/// `held` is whether a ground-truth interval covers time `at`.
fn held(i: &Value, at: i64) -> bool {
    t(&i["from"]) <= at && (i["to"].is_null() || t(&i["to"]) > at)
}

#[test]
fn every_page_shows_the_demos_ground_truth_in_a_browser() {
    let started = Instant::now();
    let demo = Demo::start(11);
    let seeded = started.elapsed();
    let truth = &demo.truth;
    let (start, end) = (t(&truth["from"]), t(&truth["to"]));
    let systems = truth["systems"].as_object().unwrap();
    let net = systems["subco-corp-net"].as_array().unwrap();
    let ui = format!("{}/ui", demo.http);

    // Status: the checkpoint's tree size, the origin, and the demo's
    // witness's cosignature.
    let (_, note) = get(&format!("{}/checkpoint", demo.http));
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let status = dom(&format!("{ui}/"));
    assert_eq!(attr(&status, "tree-size", "data-size"), size.to_string());
    assert!(status.contains(&note.lines().take(3).collect::<Vec<_>>().join("\n")));
    assert!(status.contains("demo.custody-ledger.example/border-poe"));
    assert!(
        !status.contains("id=\"no-witnesses\"")
            && status.contains("witness.demo.custody-ledger.example"),
        "the demo's witness cosigns its checkpoints: {status}"
    );
    assert!(status.contains("id=\"cosignatures\">1<"), "one cosignature");
    assert!(status.contains("href=\"/checkpoint\""));
    assert!(
        status.contains("href=\"/ui/findings\""),
        "findings in the nav"
    );
    for s in systems.keys() {
        assert!(
            section(&status, "systems", "table").contains(s.as_str()),
            "{s}"
        );
    }

    // Breach scope of the subcontractor's network over the whole scenario:
    // the count, every listed digest linked, and the evidence link.
    let want: BTreeSet<String> = net
        .iter()
        .filter(|i| t(&i["from"]) <= end && (i["to"].is_null() || t(&i["to"]) > start))
        .map(|i| i["asset"].as_str().unwrap().to_owned())
        .collect();
    let (from_s, to_s) = (rfc3339(start), rfc3339(end));
    let scope_url = format!("{ui}/breach-scope?system=subco-corp-net&from={from_s}&to={to_s}");
    let scope = dom(&scope_url);
    assert_eq!(
        attr(&scope, "asset-count", "data-count"),
        want.len().to_string()
    );
    assert!(scope.contains(&format!(
        "href=\"/evidence/breach-scope?system=subco-corp-net&from={from_s}&to={to_s}\""
    )));
    assert!(
        section(&scope, "concerns", "span")
            .contains("outside the boundary, not accredited, not encrypted at rest"),
        "the system's risks, as registered"
    );
    let first: BTreeSet<String> = asset_links(section(&scope, "scope-intervals", "table"))
        .into_iter()
        .collect();
    assert_eq!(first.len(), want.len().min(50), "one page of assets");
    assert!(first.is_subset(&want));
    // Every page, through the "next" links: exactly the truth's assets.
    let mut listed = BTreeSet::new();
    let mut url = Some(scope_url.clone());
    while let Some(u) = url {
        let (code, html) = get(&u);
        assert_eq!(code, 200, "{u}");
        listed.extend(asset_links(section(&html, "scope-intervals", "table")));
        url = next_link(&html).map(|n| format!("{}{n}", demo.http));
    }
    assert_eq!(listed, want, "the pages list exactly the assets in scope");

    // An exfiltrated asset's timeline: the systems that held it, one bar
    // per interval, its events, and the evidence link.
    let asset = net[0]["asset"].as_str().unwrap();
    let held_on: BTreeSet<&str> = systems
        .iter()
        .filter(|(_, v)| v.as_array().unwrap().iter().any(|i| i["asset"] == asset))
        .map(|(s, _)| s.as_str())
        .collect();
    let intervals: usize = systems
        .values()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|i| i["asset"] == asset)
                .count()
        })
        .sum();
    let asset_url = format!("{ui}/asset/{asset}");
    let page = dom(&asset_url);
    let table = section(&page, "intervals", "table");
    let shown: BTreeSet<&str> = table
        .match_indices("data-system=\"")
        .map(|(i, m)| {
            let v = &table[i + m.len()..];
            &v[..v.find('"').unwrap()]
        })
        .collect();
    assert_eq!(shown, held_on, "systems that held {asset}");
    assert!(held_on.contains("subco-corp-net") && held_on.contains("usb-export"));
    assert_eq!(page.matches("<g class=\"bar\"").count(), intervals, "bars");
    let events = section(&page, "events", "table");
    for kind in ["CAPTURE", "COPY"] {
        assert!(events.contains(kind), "{kind} in the events");
    }
    assert!(page.contains(&format!("href=\"/evidence/history?asset={asset}\"")));

    // The subcontractor's holdings at the end, over both its systems: the
    // first page in the browser, then every page by its "next" link.
    let want_held: usize = ["usb-export", "subco-corp-net"]
        .iter()
        .map(|s| {
            systems[*s]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| held(i, end))
                .count()
        })
        .sum();
    assert!(want_held > 100, "more than one page");
    let holdings_url = format!("{ui}/holdings?party=maint-subco&at={to_s}");
    let holdings = dom(&holdings_url);
    assert!(holdings.contains(&format!(
        "href=\"/evidence/holdings?party=maint-subco&at={to_s}\""
    )));
    assert_eq!(
        asset_links(section(&holdings, "holdings", "table")).len(),
        100
    );
    let mut rows = 0;
    let mut url = Some(holdings_url.clone());
    while let Some(u) = url {
        let (code, html) = get(&u);
        assert_eq!(code, 200, "{u}");
        rows += asset_links(section(&html, "holdings", "table")).len();
        url = next_link(&html).map(|n| format!("{}{n}", demo.http));
    }
    assert_eq!(rows, want_held, "holdings over every page");

    // Findings as of the scenario's end: the count of each rule is what
    // the generator planted.
    let as_of = demo.truth["as_of"].as_str().unwrap();
    let findings_url = format!("{ui}/findings?as_of={as_of}");
    let findings = dom(&findings_url);
    let by_rule = section(&findings, "by-rule", "table");
    for (rule, n) in demo.truth["findings"].as_object().unwrap() {
        let row = &by_rule[by_rule.find(&format!(">{rule}<")).unwrap()..];
        let cell = &row[row.find("class=\"num\">").unwrap() + 12..];
        let got: String = cell[..cell.find('<').unwrap()].replace(',', "");
        assert_eq!(got, n.to_string(), "{rule} on the findings page");
    }
    assert!(findings.contains("href=\"/evidence/finding?id="));
    // Every page, through the "next" links (each resumes after the last
    // finding of the one before): each planted finding exactly once.
    let planted: u64 = demo.truth["findings"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut url = Some(findings_url.clone());
    while let Some(u) = url {
        let (code, html) = get(&u);
        assert_eq!(code, 200, "{u}");
        let table = section(&html, "findings", "table");
        ids.extend(table.match_indices("/evidence/finding?id=").map(|(i, m)| {
            table[i + m.len()..][..table[i + m.len()..].find('&').unwrap()].to_owned()
        }));
        pages += 1;
        url = next_link(&html).map(|n| format!("{}{n}", demo.http));
    }
    assert!(
        planted > 50,
        "the demo plants {planted} findings, one page's worth"
    );
    assert_eq!(pages as u64, planted.div_ceil(50), "pages of 50");
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len() as u64, planted, "findings over every page");
    assert_eq!(distinct.len(), ids.len(), "a finding listed twice");
    let (code, _) = get(&format!("{findings_url}&page=2&after=nonsense"));
    assert_eq!(code, 400, "a cursor no link made");

    // A screenshot of each page, for a person to look at.
    for (url, name) in [
        (format!("{ui}/"), "status"),
        (asset_url, "asset"),
        (holdings_url, "holdings"),
        (scope_url, "breach-scope"),
        (findings_url, "findings"),
    ] {
        screenshot(&url, name);
    }
    println!(
        "seeded in {:.1} s, whole test {:.1} s",
        seeded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn bad_input_is_400_unknown_ids_are_404_and_everything_is_escaped() {
    let mut log = Log::init();
    log.start();
    let ui = format!("{}/ui", log.http);

    let r = reqwest::blocking::get(format!("{ui}/")).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(r.text().unwrap().contains("e2e.test/custody"));
    assert_eq!(get(&format!("{}/ui", log.http)).0, 200, "/ui redirects");

    let cases: [(&str, u16, &str); 9] = [
        ("/asset/xyz", 400, "64 hex digits"),
        ("/asset?asset=12", 400, "64 hex digits"),
        (&format!("/asset/{}", "0".repeat(64)), 404, "not in the log"),
        (
            &format!("/asset/{}?size=999999", "0".repeat(64)),
            400,
            "no checkpoint of size 999999",
        ),
        (
            "/holdings?party=nobody",
            404,
            "party nobody is not registered",
        ),
        ("/holdings?party=a&system=b", 400, "not both"),
        (
            "/breach-scope?system=nowhere",
            404,
            "system nowhere is not registered",
        ),
        ("/breach-scope?system=s&from=yesterday", 400, "RFC 3339"),
        (
            "/breach-scope?system=s&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "ends",
        ),
    ];
    for (path, code, says) in cases {
        let (got, body) = get(&format!("{ui}{path}"));
        assert_eq!(got, code, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
        assert!(body.contains("id=\"error\""), "{path}: an error page");
    }

    // Input comes back escaped, never as markup.
    let (code, body) = get(&format!(
        "{ui}/holdings?system=%3Cscript%3Ealert(1)%3C/script%3E"
    ));
    assert_eq!(code, 400);
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
}

/// Times at the ends of the range the log can hold (1970 to 2262) get an
/// answer on every page that takes one, never a panic and a dropped
/// connection: a page whose window would start before 1970 is a 400 that
/// says so, as is a time past the range.
#[test]
fn times_out_of_range_are_400_and_extreme_times_are_answered() {
    let mut log = Log::init();
    log.start();
    // A party with a system and one asset on it (and so findings replayed).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = log.client().await;
        let cam = custody_e2e::register(&log, &mut c, "cam", 0, 0).await;
        let e = custody_e2e::event("cam", custody_e2e::capture("cam"));
        custody_e2e::append(&mut c, &e, &[&cam]).await.unwrap();
    });
    let base = &log.http;
    let (party, system) = ("cam", "cam-sys");
    let (first, last) = ("1970-01-01T00:00:00Z", "2262-04-11T23:47:16.854775807Z");
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "/ui/breach-scope?system=s&from=&to=1970-01-01T00:00:00Z".into(),
            400,
            "starts before 1970",
        ),
        (
            "/ui/breach-scope?to=1970-01-01T12:00:00Z".into(),
            400,
            "starts before 1970",
        ),
        (
            format!("/ui/breach-scope?from=1969-12-31T23:59:59Z&to={first}"),
            400,
            "is before 1970-01-01T00:00:00Z",
        ),
        (
            "/ui/breach-scope?to=2262-04-11T23:47:17Z".into(),
            400,
            "is after 2262-04-11T23:47:16.854775807Z",
        ),
        (
            "/ui/holdings?party=p&at=1969-07-20T20:17:40Z".into(),
            400,
            "is before 1970-01-01T00:00:00Z",
        ),
        (
            "/ui/findings?as_of=9999-12-31T23:59:59Z".into(),
            400,
            "is after 2262-04-11T23:47:16.854775807Z",
        ),
        (format!("/ui/breach-scope?from={first}&to={first}"), 200, ""),
        (format!("/ui/breach-scope?to={last}"), 200, ""),
        (format!("/ui/breach-scope?from={first}&to={last}"), 200, ""),
        (
            format!("/ui/breach-scope?system={system}&from={first}&to={last}"),
            200,
            "data-count=\"1\"",
        ),
        (
            format!("/ui/breach-scope?system={system}&to={first}"),
            400,
            "starts before 1970",
        ),
        (
            format!("/evidence/breach-scope?system={system}&from={first}&to={last}"),
            200,
            "",
        ),
        (format!("/ui/holdings?party={party}&at={first}"), 200, ""),
        (format!("/ui/holdings?party={party}&at={last}"), 200, ""),
        (format!("/ui/findings?as_of={first}"), 200, ""),
        (format!("/ui/findings?as_of={last}"), 200, ""),
        (
            format!("/evidence/holdings?party={party}&at={first}"),
            200,
            "",
        ),
        (
            format!("/evidence/holdings?party={party}&at={last}"),
            200,
            "",
        ),
        (
            format!("/evidence/holders?asset={}&at={first}", "0".repeat(64)),
            200,
            "",
        ),
    ];
    for (path, code, says) in &cases {
        let r = reqwest::blocking::get(format!("{base}{path}"))
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        let got = r.status().as_u16();
        let body = r.text().unwrap();
        assert_eq!(got, *code, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    assert!(
        !log.server_log().contains("panicked"),
        "{}",
        log.server_log()
    );
}
