//! A hostile client's attacks on the answer layer (`custodyd::answer`):
//! page tokens and web cursors the server did not write, tokens pinned to
//! an old checkpoint, huge and malformed fields and query strings, and
//! findings pages whose as-of time is contradicted. Each test passes when
//! the defence holds and fails with a message starting "ATTACK
//! SUCCEEDED:" listing every input that got a wrong answer.
//!
//! The world: the data owner and one party, `cam`, with its system
//! `cam-sys` and a few CAPTUREs onto it.

use std::collections::BTreeSet;

use custody_domain::{hex, rfc3339};
use custody_e2e::*;
use custody_log::LogVerifier;
use custody_proto::v1;
use custody_proto::v1::custody_log_client::CustodyLogClient;
use custody_proto::v1::custody_query_client::CustodyQueryClient;
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt as _;

const SEC: i64 = 1_000_000_000;
/// The longest error message an answer may carry.
const MAX_MSG: usize = 600;
/// The size of a hostile field.
const BIG: usize = 100 * 1024;
/// The size of a hostile query parameter: a URI has at most 64 KiB.
const BIG_URL: usize = 30 * 1024;
/// How much of a hostile field an answer may repeat, at most.
const ECHO: usize = 1024;

type Query = CustodyQueryClient<Channel>;

struct World {
    log: Log,
    c: CustodyLogClient<Channel>,
    q: Query,
    key: SigningKey,
    verifier: LogVerifier,
    http: reqwest::Client,
    /// Strings no answer may contain: the server's paths, storage names.
    leaks: Vec<String>,
}

impl World {
    async fn new(captures: usize) -> (Self, Vec<[u8; 32]>) {
        let mut log = Log::init();
        log.start();
        let mut c = log.client().await;
        let key = register(&log, &mut c, "cam", 0, 0).await;
        let q = CustodyQueryClient::connect(log.grpc.clone())
            .await
            .expect("query client");
        let verifier = LogVerifier::new(&std::fs::read_to_string(&log.vkey).unwrap()).unwrap();
        let leaks = vec![
            log.dir.path().display().to_string(),
            log.data.display().to_string(),
            "/tmp/".into(),
            "rocksdb".into(),
            "RocksDB".into(),
            ".sst".into(),
            "panicked".into(),
        ];
        let mut w = World {
            log,
            c,
            q,
            key,
            verifier,
            http: reqwest::Client::new(),
            leaks,
        };
        let mut assets = Vec::new();
        for _ in 0..captures {
            assets.push(w.capture().await);
        }
        (w, assets)
    }

    /// `capture` logs a CAPTURE of a new asset onto `cam-sys`.
    async fn capture(&mut self) -> [u8; 32] {
        let body = capture("cam");
        let v1::event::Body::Custody(a) = &body else {
            unreachable!()
        };
        let asset: [u8; 32] = a.asset_digest.clone().try_into().unwrap();
        let r = append(&mut self.c, &event("cam", body), &[&self.key])
            .await
            .expect("capture");
        assert_eq!(r.error_code, 0, "{}", r.error_message);
        asset
    }

    fn system(&self) -> String {
        system_of("cam")
    }

    async fn size(&self) -> u64 {
        checkpoint_size(&self.log.http).await
    }

    /// `get` is the status and body of `path` on the HTTP address, or why
    /// there was none.
    async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let r = self
            .http
            .get(format!("{}{path}", self.log.http))
            .send()
            .await
            .map_err(|e| format!("no answer: {}", clip(&e.to_string())))?;
        let code = r.status().as_u16();
        let body = r
            .text()
            .await
            .map_err(|e| format!("no body: {}", clip(&e.to_string())))?;
        Ok((code, body))
    }

    /// `leak` is the first forbidden string `s` contains.
    fn leak(&self, s: &str) -> Option<String> {
        self.leaks.iter().find(|l| s.contains(l.as_str())).cloned()
    }

    /// `refusal` checks a gRPC refusal: one of `codes`, a short message
    /// naming nothing of the server.
    fn refusal(&self, errs: &mut Vec<String>, what: &str, s: &tonic::Status, codes: &[Code]) {
        if !codes.contains(&s.code()) {
            errs.push(format!(
                "{what}: answered {:?} (want one of {codes:?}): {}",
                s.code(),
                clip(s.message())
            ));
        }
        if s.message().len() > MAX_MSG {
            errs.push(format!(
                "{what}: a {}-byte error message ({:?}), echoing the input: {}",
                s.message().len(),
                s.code(),
                clip(s.message())
            ));
        }
        if let Some(l) = self.leak(s.message()) {
            errs.push(format!(
                "{what}: the message names {l:?}: {}",
                clip(s.message())
            ));
        }
    }

    /// `answered` checks a gRPC answer that may be a page or a bad
    /// request, never anything else; a page's evidence must verify and,
    /// when `pinned`, be proven against that checkpoint.
    fn answered<T: HasEvidence>(
        &self,
        errs: &mut Vec<String>,
        what: &str,
        r: Result<tonic::Response<T>, tonic::Status>,
        pinned: Option<u64>,
    ) -> Option<T> {
        match r {
            Ok(r) => {
                let r = r.into_inner();
                self.evidence(errs, what, r.evidence(), pinned);
                Some(r)
            }
            Err(s) => {
                self.refusal(errs, what, &s, &[Code::InvalidArgument]);
                None
            }
        }
    }

    /// `evidence` verifies `ev` and checks the checkpoint it is proven
    /// against.
    fn evidence(
        &self,
        errs: &mut Vec<String>,
        what: &str,
        ev: Option<&v1::Evidence>,
        pinned: Option<u64>,
    ) {
        let Some(ev) = ev else {
            errs.push(format!("{what}: an answer without evidence"));
            return;
        };
        match custody_evidence::verify(ev, &self.verifier) {
            Err(e) => errs.push(format!("{what}: its evidence does not verify: {e}")),
            Ok(v) => {
                if let Some(p) = pinned.filter(|p| v.checkpoint.size != *p) {
                    errs.push(format!(
                        "{what}: pinned at tree size {p} but proven against size {}",
                        v.checkpoint.size
                    ));
                }
            }
        }
        if let Some(p) = ev
            .entries
            .iter()
            .chain(&ev.registry)
            .find(|p| p.index >= ev.tree_size)
        {
            errs.push(format!(
                "{what}: cites entry {} outside its tree of size {}",
                p.index, ev.tree_size
            ));
        }
    }

    /// `http_refusal` checks an HTTP answer to a hostile question: one of
    /// `codes` (never a 5xx), not repeating more than [`ECHO`] bytes of
    /// `input`, naming nothing of the server.
    fn http_refusal(
        &self,
        errs: &mut Vec<String>,
        what: &str,
        got: Result<(u16, String), String>,
        codes: &[u16],
        input: &str,
    ) -> Option<(u16, String)> {
        let (code, body) = match got {
            Ok(g) => g,
            Err(e) => {
                errs.push(format!("{what}: {e}"));
                return None;
            }
        };
        if !codes.contains(&code) || code >= 500 {
            errs.push(format!(
                "{what}: HTTP {code} (want one of {codes:?}): {}",
                clip(&body)
            ));
        }
        if input.len() > ECHO && body.contains(&input[..ECHO]) {
            errs.push(format!(
                "{what}: HTTP {code} with a {}-byte body repeating the {}-byte input: {}",
                body.len(),
                input.len(),
                clip(&body.replace(&input[..ECHO], "<1 KB of the input>"))
            ));
        }
        if let Some(l) = self.leak(&body) {
            errs.push(format!("{what}: the body names {l:?}: {}", clip(&body)));
        }
        Some((code, body))
    }

    /// `alive` checks that both transports still answer.
    async fn alive(&mut self, errs: &mut Vec<String>, after: &str) {
        match self.get("/checkpoint").await {
            Ok((200, b)) if b.lines().nth(1).is_some_and(|l| l.parse::<u64>().is_ok()) => {}
            other => errs.push(format!("after {after}: /checkpoint answered {other:?}")),
        }
        let r = self
            .q
            .holdings(v1::HoldingsRequest {
                holder: Some(v1::holdings_request::Holder::SystemId(self.system())),
                time_unix_nanos: now(),
                ..Default::default()
            })
            .await;
        if let Err(s) = r {
            errs.push(format!("after {after}: Holdings fails: {s}"));
        }
        if let Some(Ok(Some(st))) = self.log.child.as_mut().map(|c| c.try_wait()) {
            errs.push(format!("after {after}: custodyd exited with {st}"));
        }
    }
}

/// `clip` is the start of a long text, for failure messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(160) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

trait HasEvidence {
    fn evidence(&self) -> Option<&v1::Evidence>;
}

macro_rules! has_evidence {
    ($($t:ty),*) => {$(
        impl HasEvidence for $t {
            fn evidence(&self) -> Option<&v1::Evidence> {
                self.evidence.as_ref()
            }
        }
    )*};
}

has_evidence!(
    v1::AssetHistoryResponse,
    v1::HoldersAtResponse,
    v1::HoldingsResponse,
    v1::BreachScopeResponse,
    v1::FindingsResponse
);

/// `pin_of` is the tree size a token pins, when it has one.
fn pin_of(token: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(token.get(..8)?.try_into().ok()?))
}

/// `findings_token` is a findings page token as the server writes one.
fn findings_token(size: u64, as_of: i64, at: i64, id: &[u8]) -> Vec<u8> {
    let mut t = size.to_be_bytes().to_vec();
    t.extend_from_slice(&findings_cursor(as_of, at, id));
    t
}

fn findings_cursor(as_of: i64, at: i64, id: &[u8]) -> Vec<u8> {
    let mut t = as_of.to_be_bytes().to_vec();
    t.extend_from_slice(&at.to_be_bytes());
    t.extend_from_slice(id);
    t
}

fn with(size: u64, cursor: &[u8]) -> Vec<u8> {
    let mut t = size.to_be_bytes().to_vec();
    t.extend_from_slice(cursor);
    t
}

fn field_of(s: &tonic::Status) -> String {
    s.get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// Forged, cut, extended and cross-listing page tokens, and hostile web
/// cursors and sizes, on every listing: each is a bad request or a page
/// (proven against the checkpoint it pins), never an internal error.
#[tokio::test(flavor = "multi_thread")]
async fn forged_tokens_and_cursors_are_bad_requests_never_internal() {
    let (mut w, assets) = World::new(3).await;
    let mut errs = Vec::new();
    let sys = w.system();
    let later = now() + 3600 * SEC;
    let s = w.size().await;

    // Genuine tokens of two listings.
    let h =
        w.q.holdings(v1::HoldingsRequest {
            holder: Some(v1::holdings_request::Holder::SystemId(sys.clone())),
            time_unix_nanos: later,
            page_size: 1,
            page_token: Vec::new(),
        })
        .await
        .expect("holdings")
        .into_inner();
    let b =
        w.q.breach_scope(v1::BreachScopeRequest {
            system_id: sys.clone(),
            from_unix_nanos: 0,
            to_unix_nanos: later,
            page_size: 1,
            page_token: Vec::new(),
        })
        .await
        .expect("breach scope")
        .into_inner();
    assert!(!h.next_page_token.is_empty() && !b.next_page_token.is_empty());
    let (h_tok, b_tok) = (h.next_page_token.clone(), b.next_page_token.clone());
    let hist_tok = with(s, &0u64.to_be_bytes());
    let find_tok = findings_token(s, now(), 0, b"x");

    let mut tokens: Vec<(String, Vec<u8>)> = vec![
        ("one byte".into(), vec![1]),
        ("seven bytes".into(), vec![0; 7]),
        (
            "size u64::MAX alone".into(),
            u64::MAX.to_be_bytes().to_vec(),
        ),
        ("size 0 alone".into(), 0u64.to_be_bytes().to_vec()),
        ("size 1 alone".into(), 1u64.to_be_bytes().to_vec()),
        (
            "a size never published".into(),
            (s + 1000).to_be_bytes().to_vec(),
        ),
        ("size latest+1".into(), (s + 1).to_be_bytes().to_vec()),
        ("size latest-1".into(), (s - 1).to_be_bytes().to_vec()),
        ("size 0 with a cursor".into(), with(0, &[0; 32])),
        (
            "size u64::MAX with a cursor".into(),
            with(u64::MAX, &[0; 32]),
        ),
        ("size and one byte".into(), with(s, &[7])),
        ("100 KB of garbage".into(), vec![0xa5; BIG]),
        ("size and 100 KB".into(), with(s, &vec![b'x'; BIG])),
        ("Holdings token".into(), h_tok.clone()),
        ("BreachScope token".into(), b_tok.clone()),
        ("AssetHistory cursor".into(), hist_tok.clone()),
        ("Findings cursor".into(), find_tok.clone()),
        (
            "history cursor u64::MAX".into(),
            with(s, &u64::MAX.to_be_bytes()),
        ),
        (
            "holdings cursor, ordinal u32::MAX, opened_by u64::MAX".into(),
            with(
                s,
                &[
                    &u32::MAX.to_be_bytes()[..],
                    &[0xff; 32],
                    &u64::MAX.to_be_bytes(),
                ]
                .concat(),
            ),
        ),
        (
            "findings cursor at the ends of time".into(),
            findings_token(s, i64::MAX, i64::MIN, b"zzzz"),
        ),
        (
            "findings cursor, as_of i64::MIN".into(),
            findings_token(s, i64::MIN, i64::MAX, &[b'x'; 1024]),
        ),
        (
            "findings cursor, id of 1025 bytes".into(),
            findings_token(s, 1, 1, &[b'x'; 1025]),
        ),
        (
            "findings cursor, id not UTF-8".into(),
            findings_token(s, 1, 1, &[0xff, 0xfe]),
        ),
    ];
    for (name, t) in [("Holdings", &h_tok), ("BreachScope", &b_tok)] {
        tokens.push((
            format!("{name} token cut by one"),
            t[..t.len() - 1].to_vec(),
        ));
        tokens.push((format!("{name} token and a byte"), [&t[..], &[0]].concat()));
        tokens.push((
            format!("{name} token, its size flipped"),
            [&(s ^ 0x8000_0000_0000_0000).to_be_bytes()[..], &t[8..]].concat(),
        ));
    }

    for (name, t) in &tokens {
        let pinned = pin_of(t);
        let r =
            w.q.asset_history(v1::AssetHistoryRequest {
                asset: assets[0].to_vec(),
                page_size: 1,
                page_token: t.clone(),
            })
            .await;
        w.answered(&mut errs, &format!("AssetHistory, {name}"), r, pinned);
        let r =
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(v1::holdings_request::Holder::SystemId(sys.clone())),
                time_unix_nanos: later,
                page_size: 1,
                page_token: t.clone(),
            })
            .await;
        w.answered(&mut errs, &format!("Holdings, {name}"), r, pinned);
        let r =
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(v1::holdings_request::Holder::Party("cam".into())),
                time_unix_nanos: later,
                page_size: 1,
                page_token: t.clone(),
            })
            .await;
        w.answered(
            &mut errs,
            &format!("Holdings of a party, {name}"),
            r,
            pinned,
        );
        let r =
            w.q.breach_scope(v1::BreachScopeRequest {
                system_id: sys.clone(),
                from_unix_nanos: 0,
                to_unix_nanos: later,
                page_size: 1,
                page_token: t.clone(),
            })
            .await;
        w.answered(&mut errs, &format!("BreachScope, {name}"), r, pinned);
        let r =
            w.q.findings(v1::FindingsRequest {
                page_size: 1,
                page_token: t.clone(),
                ..Default::default()
            })
            .await;
        w.answered(&mut errs, &format!("Findings, {name}"), r, pinned);
    }
    // A cross-listing token is refused where its cursor cannot be read.
    for (what, r) in [
        (
            "a Holdings token given to BreachScope",
            w.q.breach_scope(v1::BreachScopeRequest {
                system_id: sys.clone(),
                from_unix_nanos: 0,
                to_unix_nanos: later,
                page_size: 1,
                page_token: h_tok.clone(),
            })
            .await
            .map(|_| ()),
        ),
        (
            "a BreachScope token given to Holdings",
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(v1::holdings_request::Holder::SystemId(sys.clone())),
                time_unix_nanos: later,
                page_size: 1,
                page_token: b_tok.clone(),
            })
            .await
            .map(|_| ()),
        ),
        (
            "a BreachScope token given to AssetHistory",
            w.q.asset_history(v1::AssetHistoryRequest {
                asset: assets[0].to_vec(),
                page_size: 1,
                page_token: b_tok.clone(),
            })
            .await
            .map(|_| ()),
        ),
    ] {
        match r {
            Ok(()) => errs.push(format!("{what}: answered a page")),
            Err(st) => {
                w.refusal(&mut errs, what, &st, &[Code::InvalidArgument]);
                if field_of(&st) != "page_token" {
                    errs.push(format!("{what}: names field {:?}", field_of(&st)));
                }
            }
        }
    }

    // Checkpoint sizes asked for directly, and hostile page sizes and times.
    for size in [u64::MAX, s + 1000, s + 1, s, s - 1, 1] {
        let r =
            w.q.holders_at(v1::HoldersAtRequest {
                asset: assets[0].to_vec(),
                time_unix_nanos: later,
                tree_size: size,
            })
            .await;
        w.answered(
            &mut errs,
            &format!("HoldersAt, tree_size {size}"),
            r,
            Some(size),
        );
    }
    for (t, u) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MAX), (-1, 0), (0, -1)] {
        let r =
            w.q.holders_at(v1::HoldersAtRequest {
                asset: assets[0].to_vec(),
                time_unix_nanos: t,
                tree_size: 0,
            })
            .await;
        w.answered(&mut errs, &format!("HoldersAt at {t}"), r, None);
        let r =
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(v1::holdings_request::Holder::Party("cam".into())),
                time_unix_nanos: t,
                page_size: u32::MAX,
                page_token: Vec::new(),
            })
            .await;
        match r {
            Err(st) if st.code() == Code::InvalidArgument && field_of(&st) == "page_size" => {}
            other => errs.push(format!(
                "Holdings, page_size u32::MAX: answered {:?}",
                other.map(|_| "a page")
            )),
        }
        let r =
            w.q.breach_scope(v1::BreachScopeRequest {
                system_id: sys.clone(),
                from_unix_nanos: t,
                to_unix_nanos: u,
                page_size: 1000,
                page_token: Vec::new(),
            })
            .await;
        w.answered(&mut errs, &format!("BreachScope [{t}, {u}]"), r, None);
        let r =
            w.q.findings(v1::FindingsRequest {
                from_unix_nanos: t,
                to_unix_nanos: u,
                as_of_unix_nanos: t,
                ..Default::default()
            })
            .await;
        w.answered(
            &mut errs,
            &format!("Findings as of {t}, [{t}, {u}]"),
            r,
            None,
        );
    }
    w.alive(&mut errs, "hostile tokens").await;

    // Web cursors and sizes on every listing.
    let far = rfc3339(later);
    let listings = [
        format!("/ui/asset/{}?x=", hex(&assets[0])),
        format!("/ui/holdings?system={sys}&at={far}"),
        "/ui/holdings?party=cam".to_owned(),
        format!("/ui/breach-scope?system={sys}&from=1970-01-01T00:00:00Z&to={far}"),
        "/ui/findings?rule=".to_owned(),
    ];
    let afters: Vec<String> = vec![
        "f".repeat(2 * 1100),
        "ff".repeat(16 + 1024),
        "ab".repeat(16 + 1024),
        "abc".into(),
        "zz".into(),
        "%C3%A9%C3%A9".into(),
        "%E2%82%AC%E2%82%AC".into(),
        "é".into(),
        "-1".into(),
        "-0000000000000001".into(),
        "+f+f+f+f+f+f+f+f".into(),
        "18446744073709551616".into(),
        "0".repeat(16),
        "f".repeat(16),
        "ff".repeat(32),
        "ff".repeat(44),
        "00".repeat(44),
        "%00%00".into(),
        "%ff%ff".into(),
        "%zz".into(),
        hex(&findings_cursor(i64::MAX, i64::MIN, b"x")),
        hex(&findings_cursor(1, 1, &[0xff, 0xfe])),
    ];
    let sizes: Vec<String> = vec![
        "-1".into(),
        "18446744073709551615".into(),
        "18446744073709551616".into(),
        "99999999999999999999999999999".into(),
        "0".into(),
        "ffff".into(),
        "%EF%BC%91".into(),
        "1e3".into(),
        "+3".into(),
        "%203".into(),
        (s + 1000).to_string(),
        (s - 1).to_string(),
        "%00".into(),
        "9".repeat(BIG_URL),
    ];
    for l in &listings {
        for a in &afters {
            let p = format!("{l}&after={a}&size={s}");
            let got = w.get(&p).await;
            w.http_refusal(
                &mut errs,
                &format!("GET {}", clip(&p)),
                got,
                &[200, 400, 404],
                a,
            );
        }
        for z in &sizes {
            let p = format!("{l}&size={z}");
            let got = w.get(&p).await;
            w.http_refusal(
                &mut errs,
                &format!("GET {}", clip(&p)),
                got,
                &[200, 400, 404],
                z,
            );
        }
    }

    // The tile API.
    for p in [
        "/tile/0/x".to_owned(),
        "/tile/99/000".to_owned(),
        "/tile/0/x999/x999/x999/x999/x999/x999/x999/999".to_owned(),
        "/tile/0/x018/x446/x744/x073/x709/x551/615".to_owned(),
        "/tile/entries/000.p/0".to_owned(),
        "/tile/entries/000.p/300".to_owned(),
        "/tile/0/000.p/-1".to_owned(),
        "/tile/%ff/000".to_owned(),
        "/tile/-1/000".to_owned(),
        "/tile/18446744073709551616/000".to_owned(),
        format!("/tile/0/{}", "x000/".repeat(200)),
    ] {
        let got = w.get(&p).await;
        w.http_refusal(
            &mut errs,
            &format!("GET {}", clip(&p)),
            got,
            &[200, 400, 404],
            "",
        );
    }

    w.alive(&mut errs, "hostile web cursors").await;
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}

/// A page token pinned to an old checkpoint answers as of that
/// checkpoint: entries appended after it, and a system registered after
/// it, change nothing about its later pages; and every page is proven
/// against the checkpoint it is pinned at.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_token_answers_as_of_its_checkpoint() {
    let (mut w, assets) = World::new(3).await;
    let mut errs = Vec::new();
    let sys = w.system();
    let later = now() + 3600 * SEC;
    let before: BTreeSet<[u8; 32]> = assets.iter().copied().collect();

    let holdings = |holder: v1::holdings_request::Holder, token: Vec<u8>| v1::HoldingsRequest {
        holder: Some(holder),
        time_unix_nanos: later,
        page_size: 2,
        page_token: token,
    };
    let system = v1::holdings_request::Holder::SystemId(sys.clone());
    let party = v1::holdings_request::Holder::Party("cam".into());
    let first_sys =
        w.q.holdings(holdings(system.clone(), Vec::new()))
            .await
            .expect("holdings")
            .into_inner();
    let first_party =
        w.q.holdings(holdings(party.clone(), Vec::new()))
            .await
            .expect("holdings of a party")
            .into_inner();
    let pinned = first_sys.evidence.as_ref().expect("evidence").tree_size;
    let first_breach =
        w.q.breach_scope(v1::BreachScopeRequest {
            system_id: sys.clone(),
            from_unix_nanos: 0,
            to_unix_nanos: later,
            page_size: 1,
            page_token: Vec::new(),
        })
        .await
        .expect("breach scope")
        .into_inner();
    assert_eq!(first_sys.intervals.len(), 2);
    assert_eq!(first_party.intervals.len(), 2);
    // Control: the party's second page, asked before anything changes,
    // lists the one asset the first did not.
    let control =
        w.q.holdings(holdings(party.clone(), first_party.next_page_token.clone()))
            .await
            .expect("holdings of a party, page 2")
            .into_inner();
    let firsts: BTreeSet<[u8; 32]> = first_party
        .intervals
        .iter()
        .map(|i| asset_of(&i.asset))
        .collect();
    if control.intervals.len() != 1 || firsts.contains(&asset_of(&control.intervals[0].asset)) {
        errs.push(format!(
            "control: the party's page 2 before any change lists {} rows",
            control.intervals.len()
        ));
    }
    assert_eq!(first_breach.asset_count, 3);

    // After the pin: three more assets on the system, and a second
    // system for the same party, whose id sorts before the first.
    let mut after = Vec::new();
    for _ in 0..3 {
        after.push(w.capture().await);
    }
    let reg = event(
        &w.log.owner_id,
        system_registered("a-cam-early", "cam", true, false),
    );
    let r = append(&mut w.c, &reg, &[&w.log.owner])
        .await
        .expect("register a second system");
    assert_eq!(r.error_code, 0, "{}", r.error_message);
    let late_asset = w.capture().await;
    after.push(late_asset);
    let latest = w.size().await;
    assert!(latest > pinned);

    for (who, first, holder) in [
        ("system", &first_sys, system.clone()),
        ("party", &first_party, party.clone()),
    ] {
        let mut seen: Vec<[u8; 32]> = first.intervals.iter().map(|i| asset_of(&i.asset)).collect();
        let mut token = first.next_page_token.clone();
        let mut pages = 1;
        while !token.is_empty() && pages < 10 {
            pages += 1;
            let what = format!("Holdings of the {who}, page {pages} of a token pinned at {pinned}");
            let r = w.q.holdings(holdings(holder.clone(), token.clone())).await;
            let Some(page) = w.answered(&mut errs, &what, r, Some(pinned)) else {
                break;
            };
            for i in &page.intervals {
                if i.opened_by >= pinned {
                    errs.push(format!(
                        "{what}: lists an interval opened by entry {}, after the pin",
                        i.opened_by
                    ));
                }
                let a = asset_of(&i.asset);
                if seen.contains(&a) {
                    errs.push(format!(
                        "{what}: lists asset {} again (on {}, opened by entry {}): it was on an earlier page",
                        &hex(&a)[..16],
                        i.system_id,
                        i.opened_by
                    ));
                }
                seen.push(a);
            }
            token = page.next_page_token;
        }
        let got: BTreeSet<[u8; 32]> = seen.iter().copied().collect();
        if got != before {
            errs.push(format!(
                "Holdings of the {who} through a token pinned at {pinned}: listed {} distinct assets ({} rows), want the {} held at the pin; missing {}, extra {}",
                got.len(),
                seen.len(),
                before.len(),
                before.difference(&got).count(),
                got.difference(&before).count()
            ));
        }
    }

    // The breach scope's later pages keep the pinned counts and rows.
    let mut listed: BTreeSet<[u8; 32]> = first_breach
        .intervals
        .iter()
        .map(|i| asset_of(&i.asset))
        .collect();
    let mut token = first_breach.next_page_token.clone();
    let mut pages = 1;
    while !token.is_empty() && pages < 10 {
        pages += 1;
        let what = format!("BreachScope, page {pages} of a token pinned at {pinned}");
        let r =
            w.q.breach_scope(v1::BreachScopeRequest {
                system_id: sys.clone(),
                from_unix_nanos: 0,
                to_unix_nanos: later,
                page_size: 1,
                page_token: token.clone(),
            })
            .await;
        let Some(page) = w.answered(&mut errs, &what, r, Some(pinned)) else {
            break;
        };
        if page.asset_count != 3 {
            errs.push(format!(
                "{what}: counts {} assets, want the 3 at the pin",
                page.asset_count
            ));
        }
        listed.extend(page.intervals.iter().map(|i| asset_of(&i.asset)));
        token = page.next_page_token;
    }
    if listed != before {
        errs.push(format!(
            "BreachScope through a token pinned at {pinned}: listed {} assets, want the 3 at the pin",
            listed.len()
        ));
    }

    // A later asset, asked about as of the old checkpoint.
    let r =
        w.q.asset_history(v1::AssetHistoryRequest {
            asset: late_asset.to_vec(),
            page_size: 10,
            page_token: pinned.to_be_bytes().to_vec(),
        })
        .await;
    if let Some(h) = w.answered(
        &mut errs,
        "AssetHistory of a later asset, pinned",
        r,
        Some(pinned),
    ) {
        if !h.indexes.is_empty() {
            errs.push(format!(
                "AssetHistory of a later asset pinned at {pinned}: lists entries {:?}",
                h.indexes
            ));
        }
    }
    let r =
        w.q.holders_at(v1::HoldersAtRequest {
            asset: late_asset.to_vec(),
            time_unix_nanos: later,
            tree_size: pinned,
        })
        .await;
    if let Some(h) = w.answered(
        &mut errs,
        "HoldersAt of a later asset, pinned",
        r,
        Some(pinned),
    ) {
        if !h.intervals.is_empty() {
            errs.push(format!(
                "HoldersAt of a later asset pinned at {pinned}: {} holders",
                h.intervals.len()
            ));
        }
    }
    // The same over the web view's pinned links.
    let late_hex = hex(&late_asset);
    let far = rfc3339(later);
    for p in [
        format!("/ui/holdings?system={sys}&at={far}&size={pinned}"),
        format!("/ui/holdings?party=cam&at={far}&size={pinned}"),
        format!("/ui/breach-scope?system={sys}&from=1970-01-01T00:00:00Z&to={far}&size={pinned}"),
        format!("/ui/asset/{late_hex}?size={pinned}"),
    ] {
        match w.get(&p).await {
            Ok((code, body)) if body.contains(&late_hex[..16]) && code == 200 => {
                errs.push(format!(
                    "GET {p}: shows asset {}, logged after the pin",
                    &late_hex[..16]
                ))
            }
            Ok((code, _)) if code == 200 || code == 404 => {}
            other => errs.push(format!("GET {p}: {:?}", other.map(|(c, b)| (c, clip(&b))))),
        }
    }
    // The web view's holdings pages, page 2 of the party's listing,
    // followed from an old link.
    let r = first_party.next_page_token.clone();
    if r.len() == 8 + 44 {
        let p = format!(
            "/ui/holdings?party=cam&at={far}&size={pinned}&after={}&page=2",
            hex(&r[8..])
        );
        match w.get(&p).await {
            Ok((200, body)) => {
                for i in &first_party.intervals {
                    let h = hex(&i.asset);
                    if body.contains(&h[..16]) {
                        errs.push(format!(
                            "GET {p}: lists asset {} of the first page again",
                            &h[..16]
                        ));
                    }
                }
            }
            other => errs.push(format!("GET {p}: {:?}", other.map(|(c, b)| (c, clip(&b))))),
        }
    }

    w.alive(&mut errs, "old tokens").await;
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}

fn asset_of(b: &[u8]) -> [u8; 32] {
    b.try_into().unwrap_or([0; 32])
}

/// 100 KB ids, rule names, times and query parameters: every refusal is a
/// proper status or HTTP 4xx whose message repeats the input only
/// clipped, and names nothing of the server.
#[tokio::test(flavor = "multi_thread")]
async fn huge_fields_get_short_refusals() {
    let (mut w, assets) = World::new(1).await;
    let mut errs = Vec::new();
    let sys = w.system();
    let big = "x".repeat(BIG);
    let t = now();
    use v1::export_evidence_request::Question as Q;
    use v1::holdings_request::Holder as H;

    let four_kb = "y".repeat(4096);
    let grpc: Vec<(&str, Result<(), tonic::Status>)> = vec![
        (
            "Holdings, a 4 KB system id",
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(H::SystemId(four_kb.clone())),
                time_unix_nanos: t,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "Holdings, a 100 KB system id",
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(H::SystemId(big.clone())),
                time_unix_nanos: t,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "Holdings, a 100 KB party",
            w.q.holdings(v1::HoldingsRequest {
                holder: Some(H::Party(big.clone())),
                time_unix_nanos: t,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "BreachScope, a 100 KB system id",
            w.q.breach_scope(v1::BreachScopeRequest {
                system_id: big.clone(),
                to_unix_nanos: t,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "Findings, a 100 KB rule",
            w.q.findings(v1::FindingsRequest {
                rule: big.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "Findings, a 100 KB party",
            w.q.findings(v1::FindingsRequest {
                party: big.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "Findings, a 100 KB system id",
            w.q.findings(v1::FindingsRequest {
                system_id: big.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "AssetHistory, a 100 KB asset",
            w.q.asset_history(v1::AssetHistoryRequest {
                asset: big.clone().into_bytes(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "HoldersAt, a 100 KB asset",
            w.q.holders_at(v1::HoldersAtRequest {
                asset: big.clone().into_bytes(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        (
            "ExportEvidence holdings, a 100 KB system id",
            w.q.export_evidence(v1::ExportEvidenceRequest {
                question: Some(Q::Holdings(v1::HoldingsRequest {
                    holder: Some(H::SystemId(big.clone())),
                    time_unix_nanos: t,
                    ..Default::default()
                })),
            })
            .await
            .map(|_| ()),
        ),
        (
            "ExportEvidence holdings, a 100 KB party",
            w.q.export_evidence(v1::ExportEvidenceRequest {
                question: Some(Q::Holdings(v1::HoldingsRequest {
                    holder: Some(H::Party(big.clone())),
                    time_unix_nanos: t,
                    ..Default::default()
                })),
            })
            .await
            .map(|_| ()),
        ),
        (
            "ExportEvidence breach scope, a 100 KB system id",
            w.q.export_evidence(v1::ExportEvidenceRequest {
                question: Some(Q::BreachScope(v1::BreachScopeRequest {
                    system_id: big.clone(),
                    from_unix_nanos: 0,
                    to_unix_nanos: t,
                    ..Default::default()
                })),
            })
            .await
            .map(|_| ()),
        ),
        (
            "ExportEvidence, a 100 KB finding id",
            w.q.export_evidence(v1::ExportEvidenceRequest {
                question: Some(Q::Finding(v1::FindingRef {
                    id: big.clone(),
                    as_of_unix_nanos: t,
                })),
            })
            .await
            .map(|_| ()),
        ),
    ];
    for (what, r) in grpc {
        match r {
            Ok(()) => errs.push(format!("{what}: answered")),
            Err(s) => w.refusal(
                &mut errs,
                what,
                &s,
                &[Code::InvalidArgument, Code::NotFound],
            ),
        }
    }

    let asset = hex(&assets[0]);
    let day = "2026-11-26T00:00:00Z";
    let big = "x".repeat(BIG_URL);
    let http: Vec<(String, &[u16])> = vec![
        (
            format!("/evidence/holdings?system={big}&at={day}"),
            &[404, 400],
        ),
        (
            format!("/evidence/holdings?party={big}&at={day}"),
            &[404, 400],
        ),
        (
            format!("/evidence/breach-scope?system={big}&from={day}&to={day}"),
            &[404, 400],
        ),
        (format!("/evidence/holders?asset={asset}&at={big}"), &[400]),
        (format!("/evidence/history?asset={big}"), &[400]),
        (format!("/evidence/finding?id={big}"), &[404, 400]),
        (format!("/evidence/finding?id=x&as_of={big}"), &[400]),
        (format!("/evidence/history?{big}=1"), &[400]),
        (format!("/evidence/history?asset={asset}&{big}"), &[400]),
        (format!("/ui/holdings?system={sys}&at={big}"), &[400]),
        (format!("/ui/holdings?party={big}"), &[400]),
        (format!("/ui/holdings?system={sys}&after={big}"), &[400]),
        (format!("/ui/findings?as_of={big}"), &[400]),
        (format!("/ui/findings?rule={big}"), &[400]),
        (format!("/ui/findings?system={big}"), &[400]),
        (format!("/ui/breach-scope?system={sys}&from={big}"), &[400]),
        (format!("/ui/breach-scope?system={big}"), &[400]),
        (format!("/ui/asset/{big}"), &[400]),
        (format!("/ui/asset?asset={big}"), &[400]),
        (format!("/ui/findings?{big}=1"), &[200, 400]),
        (format!("/tile/{big}"), &[400, 404]),
        (format!("/tile/0/{big}"), &[400, 404]),
        (format!("/tile/entries/{big}"), &[400, 404]),
    ];
    for (p, codes) in &http {
        let got = w.get(p).await;
        // A server may refuse a 100 KB URI outright (414 or 431).
        let mut codes = codes.to_vec();
        codes.extend([414, 431]);
        let what = format!("GET {}", clip(p));
        if let Some((code, body)) = w.http_refusal(&mut errs, &what, got, &codes, &big) {
            if (p.starts_with("/evidence/") || p.starts_with("/tile/")) && body.len() > 2 * MAX_MSG
            {
                errs.push(format!(
                    "{what}: HTTP {code} with a {}-byte body",
                    body.len()
                ));
            }
        }
    }
    w.alive(&mut errs, "100 KB fields").await;
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}

/// Duplicate, unknown, percent-garbage and empty query parameters on the
/// downloads and the web view: refused (the downloads refuse unknown
/// ones), never an internal error.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_query_strings_are_bad_requests() {
    let (mut w, assets) = World::new(1).await;
    let mut errs = Vec::new();
    let sys = w.system();
    let a = hex(&assets[0]);
    let day = "2026-11-26T00:00:00Z";
    let cases: Vec<(String, &[u16])> = vec![
        (format!("/evidence/history?asset={a}&asset={a}"), &[400]),
        (format!("/evidence/history?asset={a}&bogus=1"), &[400]),
        (format!("/evidence/history?asset={a}&Asset={a}"), &[400]),
        (
            format!("/evidence/holders?asset={a}&at={day}&at={day}"),
            &[400],
        ),
        (
            format!("/evidence/holdings?system={sys}&system={sys}&at={day}"),
            &[400],
        ),
        (
            format!("/evidence/holdings?system={sys}&party=cam&at={day}"),
            &[400],
        ),
        (
            format!("/evidence/breach-scope?system={sys}&from={day}&to={day}&to={day}"),
            &[400],
        ),
        ("/evidence/finding?id=a&id=b".into(), &[400]),
        ("/evidence/finding?id=a&as_of=-1".into(), &[400]),
        (
            "/evidence/finding?id=a&as_of=1969-12-31T23:59:59Z".into(),
            &[400],
        ),
        ("/evidence/history?asset=%zz".into(), &[400]),
        ("/evidence/history?asset=%ff%fe%fd".into(), &[400]),
        ("/evidence/history?%zz=1".into(), &[400]),
        ("/evidence/history?%ff=1".into(), &[400]),
        ("/evidence/history?asset".into(), &[400]),
        ("/evidence/history?&&&&".into(), &[400]),
        ("/evidence/history?=1".into(), &[400]),
        ("/evidence/history?asset=%00".into(), &[400]),
        (
            format!("/evidence/history?asset={}", "%47".repeat(64)),
            &[400],
        ),
        (
            format!("/evidence/history?asset={}", a.replace('0', "%30")),
            &[200],
        ),
        (
            format!("/evidence/holders?asset={a}&at=2026-11-26T00:00:00%2B25:00"),
            &[400],
        ),
        (
            format!("/evidence/holders?asset={a}&at=99999-01-01T00:00:00Z"),
            &[400],
        ),
        (
            format!("/evidence/breach-scope?system={sys}&from={day}&to=1970-01-01T00:00:00Z"),
            &[400],
        ),
        (format!("/ui/holdings?system={sys}&system={sys}"), &[400]),
        ("/ui/findings?size=1&size=2".into(), &[400]),
        ("/ui/findings?after=00&after=00".into(), &[400]),
        (
            format!("/ui/breach-scope?system={sys}&after=00&after=00"),
            &[400],
        ),
        (format!("/ui/asset/{a}?size=1&size=1"), &[400]),
        ("/ui/findings?party=%ff".into(), &[400]),
        ("/ui/findings?party=%3Cb%3E".into(), &[400]),
        ("/ui/findings?system=..%2F..%2Fetc".into(), &[400]),
        (format!("/ui/findings?party={}", "p".repeat(65)), &[400]),
        ("/ui/findings?rule=%00".into(), &[400]),
        ("/ui/holdings?system=%zz".into(), &[400]),
        ("/ui/holdings?system=cam-sys&party=cam".into(), &[400]),
        ("/ui/holdings?at=%ff".into(), &[400]),
        ("/ui/holdings?system=cam-sys&page=-1".into(), &[400]),
        (
            "/ui/holdings?system=cam-sys&page=18446744073709551615".into(),
            &[200],
        ),
        (
            "/ui/findings?page=18446744073709551615&after=".into(),
            &[200],
        ),
        (format!("/ui/asset/{a}%00"), &[400]),
        ("/ui/asset/%ff%fe".into(), &[400]),
        ("/ui/asset/..%2F..%2Fetc%2Fpasswd".into(), &[400, 404]),
        // Unknown parameters: the downloads refuse them; the web view may
        // ignore them.
        ("/ui/findings?bogus=1".into(), &[200, 400]),
        ("/ui/?bogus=1".into(), &[200, 400]),
    ];
    for (p, codes) in &cases {
        let got = w.get(p).await;
        if let Some((code, body)) = w.http_refusal(&mut errs, &format!("GET {p}"), got, codes, "") {
            if code == 400 && p.starts_with("/evidence/") && body.len() > 2 * MAX_MSG {
                errs.push(format!("GET {p}: a {}-byte refusal", body.len()));
            }
        }
    }
    // Findings filters with ids that are no ids, over gRPC.
    for (field, id) in [
        ("party", "<b>"),
        ("party", "a b"),
        ("party", "p".repeat(65).leak() as &str),
        ("system_id", "../etc"),
        ("system_id", "\u{0}"),
        ("system_id", "é"),
    ] {
        let mut r = v1::FindingsRequest::default();
        if field == "party" {
            r.party = id.into();
        } else {
            r.system_id = id.into();
        }
        match w.q.findings(r).await {
            Ok(_) => errs.push(format!("Findings, {field} {id:?}: answered")),
            Err(s) => {
                let what = format!("Findings, {field} {id:?}");
                w.refusal(&mut errs, &what, &s, &[Code::InvalidArgument]);
                let want = if field == "party" { "party" } else { "system" };
                if field_of(&s) != want {
                    errs.push(format!("{what}: names field {:?}", field_of(&s)));
                }
            }
        }
    }
    w.alive(&mut errs, "hostile query strings").await;
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}

/// A findings page token carries the time its pages are evaluated as of:
/// a question that contradicts it is refused, over gRPC and the web view,
/// and agreeing with it answers a page pinned at its checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn findings_pages_keep_their_as_of() {
    let (mut w, _) = World::new(1).await;
    let mut errs = Vec::new();
    let s = w.size().await;
    let t1 = (now() / SEC - 60) * SEC;
    let t2 = t1 + SEC;
    let tok = findings_token(s, t1, 0, b"x");

    for (asked, ok) in [
        (t2, false),
        (t1 - 1, false),
        (i64::MAX, false),
        (t1, true),
        (0, true),
    ] {
        let r =
            w.q.findings(v1::FindingsRequest {
                as_of_unix_nanos: asked,
                page_token: tok.clone(),
                ..Default::default()
            })
            .await;
        let what = format!("Findings, token as of {t1}, asked as of {asked}");
        match (r, ok) {
            (Ok(r), true) => {
                w.evidence(&mut errs, &what, r.into_inner().evidence.as_ref(), Some(s))
            }
            (Ok(_), false) => errs.push(format!("{what}: answered a page")),
            (Err(st), _) => {
                w.refusal(&mut errs, &what, &st, &[Code::InvalidArgument]);
                if ok {
                    errs.push(format!("{what}: refused: {}", st.message()));
                } else if field_of(&st) != "as_of_unix_nanos" {
                    errs.push(format!("{what}: names field {:?}", field_of(&st)));
                }
            }
        }
    }
    let cursor = hex(&findings_cursor(t1, 0, b"x"));
    for (asked, want) in [(t2, 400), (t1, 200)] {
        let p = format!(
            "/ui/findings?after={cursor}&size={s}&as_of={}",
            rfc3339(asked)
        );
        let got = w.get(&p).await;
        w.http_refusal(&mut errs, &format!("GET {p}"), got, &[want], "");
    }
    // The evidence download for a finding as of the ends of time.
    for p in [
        "/evidence/finding?id=x&as_of=2262-04-11T23:47:16Z",
        "/evidence/finding?id=x&as_of=1970-01-01T00:00:00Z",
    ] {
        let got = w.get(p).await;
        w.http_refusal(&mut errs, &format!("GET {p}"), got, &[400, 404], "");
    }
    for as_of in [i64::MAX, 1] {
        let r =
            w.q.export_evidence(v1::ExportEvidenceRequest {
                question: Some(v1::export_evidence_request::Question::Finding(
                    v1::FindingRef {
                        id: "late_reporting:1".into(),
                        as_of_unix_nanos: as_of,
                    },
                )),
            })
            .await;
        if let Err(st) = r {
            w.refusal(
                &mut errs,
                &format!("ExportEvidence finding as of {as_of}"),
                &st,
                &[Code::InvalidArgument, Code::NotFound],
            );
        }
    }
    // The findings stage still answers.
    if let Err(st) = w.q.findings(v1::FindingsRequest::default()).await {
        errs.push(format!("after hostile as-of times, Findings fails: {st}"));
    }
    w.alive(&mut errs, "findings as-of").await;
    assert!(errs.is_empty(), "ATTACK SUCCEEDED:\n{}", errs.join("\n"));
}
