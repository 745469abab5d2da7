//! Per-client request rates (`--rate-per-client`): a token bucket per
//! client, where a client is the party a token or certificate acts for,
//! or on an open server (and for callers it does not know) the peer's
//! address. Every gRPC request, every message of an append stream and
//! every HTTP request takes one token; a client without one is refused
//! with `RESOURCE_EXHAUSTED` (HTTP 429) and told when to retry, and other
//! clients are unaffected. Off by default: a flood from one reporter is
//! otherwise bounded only by the queue's per-reporter share
//! ([`crate::sequencer`]).

use std::collections::HashMap;
use std::sync::Mutex;
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
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
pub struct RateArgs {
    /// Requests (and streamed appends) per second one client may make on
    /// average; 0 for no limit.
    #[arg(long, default_value_t = 0)]
    pub rate_per_client: u32,
    /// Requests one client may make at once above its rate (default:
    /// two seconds' worth).
    #[arg(long)]
    pub rate_burst: Option<u32>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// `Rates` holds each client's bucket.
pub struct Rates {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Past this many clients, buckets that have refilled are dropped.
const PRUNE_AT: usize = 65_536;

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
            per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// `take` takes one token from `client`'s bucket.
    ///
    /// # Errors
    ///
    /// [`AnswerError::Exhausted`] when it has none, with when one comes.
    pub fn take(&self, client: &str) -> Result<(), AnswerError> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| AnswerError::internal("rates", "lock poisoned"))?;
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(client) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let b = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec);
        Err(AnswerError::Exhausted(format!(
            "{} is over its rate of {} requests a second; retry in {} ms",
            custody_domain::clip(client, 64),
            self.per_sec,
            wait.as_millis().max(1)
        )))
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
}
