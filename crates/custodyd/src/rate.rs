//! Per-client request rates (`--rate-per-client`): a token bucket per
//! client, where a client is the party a token or certificate acts for,
//! or on an open server (and for callers it does not know) the peer's
//! address. Every gRPC request, every message of an append stream and
//! every HTTP request takes one token; a client without one is refused
//! with `RESOURCE_EXHAUSTED` (HTTP 429) and told when to retry, and other
//! clients are unaffected. Off by default: a flood from one reporter is
//! otherwise bounded only by the queue's per-reporter share
//! ([`crate::sequencer`]).
//!
//! Refused appends have a budget of their own, on by default
//! (`--refused-per-client`): each append refused for what the client sent
//! (a signature that fails, an event that does not decode, a reporter it
//! may not report for, an unknown token) spends a token, and a client
//! that has spent its budget has its appends turned away at once, before
//! anything is decoded or verified, until it refills. Honest clients are
//! refused rarely; a flood of forgeries then costs the server a lookup
//! per append instead of a signature check, and other clients keep the
//! verifier's cores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::access::Caller;
use crate::answer::AnswerError;
use crate::tls::Peer;

/// `client_of` is who a request counts against, for rates and upload
/// quotas: its party when it has one, else its address.
pub fn client_of(caller: Option<&Caller>, peer: Option<&Peer>) -> String {
    match caller {
        Some(Caller::Granted { party, .. }) => party.clone(),
        _ => peer
            .and_then(|p| p.addr)
            .map_or_else(|| "unknown address".to_owned(), |a| a.ip().to_string()),
    }
}

/// `RateArgs` are the rate flags.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct RateArgs {
    /// Requests (and streamed appends) per second one client may make on
    /// average; 0 for no limit.
    #[arg(long, default_value_t = 0)]
    pub rate_per_client: u32,
    /// Requests one client may make at once above its rate (default:
    /// two seconds' worth).
    #[arg(long)]
    pub rate_burst: Option<u32>,
    /// Refused appends per second one client may cause on average (ten
    /// seconds' worth at once) before its appends are turned away
    /// unread with RESOURCE_EXHAUSTED until it refills; 0 for no limit.
    #[arg(long, default_value_t = 50)]
    pub refused_per_client: u32,
}

impl Default for RateArgs {
    fn default() -> Self {
        Self {
            rate_per_client: 0,
            rate_burst: None,
            refused_per_client: 50,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Appends let in on this bucket whose verdict has not come back
    /// ([`Pending`]; refusal budgets only).
    pending: u32,
}

/// `Buckets` are token buckets by client, refilling at `per_sec` up to
/// `burst`. A client with no bucket has a full one.
struct Buckets {
    per_sec: f64,
    burst: f64,
    inner: Mutex<Clients>,
}

struct Clients {
    buckets: HashMap<String, Bucket>,
    /// The size at which full buckets are next dropped: at least
    /// [`PRUNE_AT`], and twice what a drop left, so that clients all
    /// short of tokens (a flood from many addresses) cost a scan only
    /// after as many new clients again, never one per request.
    prune_at: usize,
}

/// Past this many clients, buckets that have refilled are dropped.
const PRUNE_AT: usize = 65_536;

impl Buckets {
    fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst,
            inner: Mutex::new(Clients {
                buckets: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Clients>, AnswerError> {
        self.inner
            .lock()
            .map_err(|_| AnswerError::internal("rates", "lock poisoned"))
    }

    /// `refilled` is what a bucket that held `b` holds at `now`.
    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst)
    }

    /// `with` runs `f` on `client`'s bucket, refilled to now, making it
    /// if need be.
    fn with<T>(&self, client: &str, f: impl FnOnce(&mut Bucket) -> T) -> Result<T, AnswerError> {
        let now = Instant::now();
        let mut c = self.lock()?;
        if c.buckets.len() >= c.prune_at && !c.buckets.contains_key(client) {
            c.buckets
                .retain(|_, b| b.pending > 0 || self.refilled(b, now) < self.burst);
            c.prune_at = (2 * c.buckets.len()).max(PRUNE_AT);
        }
        let b = c.buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            pending: 0,
        });
        b.tokens = self.refilled(b, now);
        b.at = now;
        Ok(f(b))
    }

    /// `wait` is how long until a bucket holding `tokens` has one.
    fn wait(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - tokens) / self.per_sec).max(0.001))
    }
}

/// `Rates` holds each client's request bucket.
pub struct Rates {
    buckets: Buckets,
}

impl Rates {
    /// `new` is the limiter `args` configure, or `None` for no limit.
    pub fn new(args: &RateArgs) -> Option<Self> {
        if args.rate_per_client == 0 {
            return None;
        }
        let per_sec = f64::from(args.rate_per_client);
        let burst = args
            .rate_burst
            .map_or(2.0 * per_sec, |b| f64::from(b.max(1)));
        Some(Self {
            buckets: Buckets::new(per_sec, burst),
        })
    }

    /// `take` takes one token from `client`'s bucket.
    ///
    /// # Errors
    ///
    /// [`AnswerError::Exhausted`] when it has none, with when one comes.
    pub fn take(&self, client: &str) -> Result<(), AnswerError> {
        let left = self.buckets.with(client, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                None
            } else {
                Some(b.tokens)
            }
        })?;
        match left {
            None => Ok(()),
            Some(tokens) => Err(AnswerError::Exhausted(format!(
                "{} is over its rate of {} requests a second; retry in {} ms",
                custody_domain::clip(client, 64),
                self.buckets.per_sec,
                self.buckets.wait(tokens).as_millis()
            ))),
        }
    }
}

/// The longest a turned-away append's answer is held back
/// ([`TurnedAway::wait`]).
pub const TARPIT_MAX: Duration = Duration::from_secs(1);

/// `TurnedAway` is an append turned away unread: the answer, and how
/// long until the client has budget again. The server holds the answer
/// back that long (at most [`TARPIT_MAX`]) and reads nothing more from
/// the client's stream meanwhile, so a client that keeps sending what is
/// refused waits instead of flooding the server with cheap refusals.
#[derive(Debug)]
pub struct TurnedAway {
    /// The answer: RESOURCE_EXHAUSTED, saying why and when to retry.
    pub error: AnswerError,
    /// Until the client's budget holds a token again.
    pub wait: Duration,
}

/// `Refusals` holds each client's budget of refused appends.
pub struct Refusals {
    buckets: Buckets,
}

impl Refusals {
    /// `new` is the budget `args` configure, or `None` for none.
    pub fn new(args: &RateArgs) -> Option<Self> {
        if args.refused_per_client == 0 {
            return None;
        }
        let per_sec = f64::from(args.refused_per_client);
        Some(Self {
            buckets: Buckets::new(per_sec, 10.0 * per_sec),
        })
    }

    /// `check` lets `client` append if it has budget left. A client that
    /// has not been refused lately (its budget full) is let in freely. One
    /// that has must also count what it has in flight: it is let in only
    /// while its tokens exceed its appends awaiting a verdict, each held
    /// as a [`Pending`] until the verdict (and any charge) is in, so a
    /// client cannot put a queue's worth of forgeries in flight before
    /// its first refusals land.
    ///
    /// # Errors
    ///
    /// [`TurnedAway`] when it has spent it: an [`AnswerError::Exhausted`]
    /// saying why and when to retry, and how long until it may.
    pub fn check(self: &Arc<Self>, client: &str) -> Result<Option<Pending>, TurnedAway> {
        let now = Instant::now();
        let mut c = self.buckets.lock().map_err(|error| TurnedAway {
            error,
            wait: Duration::ZERO,
        })?;
        let Some(b) = c.buckets.get_mut(client) else {
            return Ok(None);
        };
        b.tokens = self.buckets.refilled(b, now);
        b.at = now;
        if b.pending == 0 && b.tokens >= self.buckets.burst {
            c.buckets.remove(client);
            return Ok(None);
        }
        let free = b.tokens - f64::from(b.pending);
        if free >= 1.0 {
            b.pending += 1;
            return Ok(Some(Pending {
                refusals: self.clone(),
                client: client.into(),
            }));
        }
        drop(c);
        let wait = self.buckets.wait(free);
        let error = AnswerError::Exhausted(format!(
            "{} has had too many appends refused (over {} a second: failed signatures, events \
             that do not decode, reporters it may not report for); its appends are turned away \
             unread for {} ms: fix what it sends",
            custody_domain::clip(client, 64),
            self.buckets.per_sec,
            wait.as_millis()
        ));
        Err(TurnedAway { error, wait })
    }

    /// `charge` spends one token of `client`'s budget for an append
    /// refused for what it sent. A client may owe up to one budget's
    /// worth, so one that keeps flooding stays turned away.
    pub fn charge(&self, client: &str) {
        let floor = -self.buckets.burst;
        let _ = self
            .buckets
            .with(client, |b| b.tokens = (b.tokens - 1.0).max(floor));
    }
}

/// `Pending` is an append let in on a client's refusal budget while its
/// verdict is out; dropping it (after any charge) frees its place.
pub struct Pending {
    refusals: Arc<Refusals>,
    client: Box<str>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut c) = self.refusals.buckets.lock() {
            if let Some(b) = c.buckets.get_mut(&*self.client) {
                b.pending = b.pending.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_rate_is_refused_and_others_are_not() {
        let r = Rates::new(&RateArgs {
            rate_per_client: 10,
            rate_burst: Some(3),
            ..RateArgs::default()
        })
        .expect("on");
        for _ in 0..3 {
            r.take("vendor").expect("within the burst");
        }
        let Err(AnswerError::Exhausted(m)) = r.take("vendor") else {
            panic!("over the burst");
        };
        assert!(m.contains("vendor") && m.contains("retry in"), "{m}");
        r.take("lane-1").expect("another client has its own bucket");
        std::thread::sleep(Duration::from_millis(150));
        r.take("vendor").expect("refilled at 10 a second");
        assert!(Rates::new(&RateArgs::default()).is_none(), "0 is off");
    }

    /// A client refused lately may have only as many appends in flight
    /// as it has tokens: each held place counts until its verdict is in.
    /// One never refused, or refilled since, is let in freely.
    #[test]
    fn a_client_refused_lately_has_only_its_tokens_in_flight() {
        let r = Arc::new(
            Refusals::new(&RateArgs {
                refused_per_client: 1,
                ..RateArgs::default()
            })
            .expect("on"),
        );
        let free: Vec<_> = (0..100).map(|_| r.check("honest")).collect();
        assert!(
            free.iter().all(|p| matches!(p, Ok(None))),
            "no bucket, no count"
        );
        // Burst 10; five refused: five tokens left.
        for _ in 0..5 {
            r.charge("vendor");
        }
        let held: Vec<Pending> = (0..5)
            .map(|_| r.check("vendor").expect("a token each").expect("counted"))
            .collect();
        assert!(r.check("vendor").is_err(), "five in flight on five tokens");
        drop(held);
        assert!(
            matches!(r.check("vendor"), Ok(Some(_))),
            "their places are freed"
        );
        assert_eq!(r.buckets.lock().expect("lock").buckets["vendor"].pending, 0);
    }

    /// Clients all short of tokens, more than `PRUNE_AT` of them (a
    /// flood from many addresses): each keeps its bucket, so each stays
    /// limited, and the scan for full buckets runs only after the map
    /// has doubled, not once per new client.
    #[test]
    fn many_clients_short_of_tokens_are_kept_and_scanned_rarely() {
        let r = Arc::new(
            Refusals::new(&RateArgs {
                refused_per_client: 1,
                ..RateArgs::default()
            })
            .expect("on"),
        );
        let n = PRUNE_AT + 1000;
        for i in 0..n {
            let client = format!("10.0.{}.{}", i / 256, i % 256);
            for _ in 0..20 {
                r.charge(&client);
            }
        }
        let c = r.buckets.lock().expect("lock");
        assert_eq!(c.buckets.len(), n, "every client in debt is kept");
        assert!(c.prune_at >= 2 * PRUNE_AT, "next scan at {}", c.prune_at);
        drop(c);
        assert!(
            r.check("10.0.0.1").is_err(),
            "the first is still turned away"
        );
        r.check("honest")
            .expect("a new client has its whole budget");
        assert_eq!(
            r.buckets.lock().expect("lock").buckets.len(),
            n,
            "checking makes no bucket"
        );
    }

    #[test]
    fn a_client_whose_appends_keep_failing_is_turned_away_and_others_are_not() {
        let r = Arc::new(
            Refusals::new(&RateArgs {
                refused_per_client: 10,
                ..RateArgs::default()
            })
            .expect("on"),
        );
        // Ten seconds' worth (100) at once, then turned away.
        for _ in 0..100 {
            r.check("forger").expect("within the budget");
            r.charge("forger");
        }
        let Err(TurnedAway {
            error: AnswerError::Exhausted(m),
            wait,
        }) = r.check("forger")
        else {
            panic!("over the budget");
        };
        // Spent to the last token: one refills in a tenth of a second.
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(
            m.contains("forger") && m.contains("fix what it sends"),
            "{m}"
        );
        r.check("lane-1")
            .expect("another client has its own budget");
        // Still flooding: it owes, so a short pause does not let it in.
        for _ in 0..500 {
            r.charge("forger");
        }
        std::thread::sleep(Duration::from_millis(150));
        assert!(r.check("forger").is_err(), "in debt for ten seconds");
        assert!(
            Refusals::new(&RateArgs {
                refused_per_client: 0,
                ..RateArgs::default()
            })
            .is_none(),
            "0 is off"
        );
    }
}
