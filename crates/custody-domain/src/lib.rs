//! `custody-domain` is the Custody Ledger's domain model with no I/O:
//! events, their canonical signing bytes, the registry of who may sign, and
//! the validation rules that decide what the log accepts.
//!
//! It knows nothing of protobuf field numbers, gRPC or storage: the proto
//! crate converts wire types into these types at the edge.
//!
//! ```
//! use custody_domain::{pae, PAYLOAD_TYPE};
//! let bytes = pae(PAYLOAD_TYPE, b"body");
//! assert!(bytes.starts_with(b"DSSEv1 "));
//! ```

mod admit;
mod custody;
mod envelope;
mod event;
pub mod findings;
pub mod keyfile;
mod refusal;
mod registry;
pub mod replay;
mod verify;

pub use admit::{
    admit, admit_members, admit_to_registry, check_signers, Admission, MAX_CLOCK_SKEW,
};
pub use custody::{
    bulk_manifest, hex, plan, plan_members, AssetMeta, CustodyView, Effects, Interval, Overlay,
    Transfer, ALL_MEMBERS,
};
pub use envelope::{
    key_id_of, pae, EventSignature, KeyId, SignedEnvelope, MAX_SIGNATURES, PAYLOAD_TYPE,
};
pub use event::{
    is_strong_key, is_valid_id, is_valid_uuid, AssetRef, CaptureContext, CustodyAction,
    CustodyActionKind, CustodyAttestation, DeleteMethod, Digest, Event, EventBody, GrantIssued,
    GrantRevoked, KeyAdded, KeyRevoked, LegalHold, MaintenanceSession, ManifestRef, Modality,
    Outcome, Parent, PartyKind, PartyRegistered, Purpose, Relationship, RetentionAuthority,
    RetentionClock, RetentionRule, SubjectClass, SystemRegistered, Timestamp, EMPTY_MANIFEST_ROOT,
    MAX_MANIFEST_MEMBERS, MAX_PARENTS,
};
pub use refusal::{Refusal, RefusalKind};
pub use registry::{
    Attribution, Genesis, GrantRecord, HoldRecord, KeyRecord, PartyRecord, Registry, RuleRecord,
    SystemRecord,
};
pub use verify::{verify_signatures, verify_signatures_by_key, SignatureCheck};

/// `MAX_ENTRY_BYTES` is the largest log entry: C2SP entry bundles prefix
/// entries with a uint16 length.
pub const MAX_ENTRY_BYTES: usize = 65_535;

/// `clip` is `s` cut to its first `n` characters, marked with `…` when
/// cut.
pub fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `quoted` is a caller's text as a refusal or an error repeats it:
/// quoted, and cut to its first 64 characters, so that no input can make
/// a message too long to send (a gRPC status travels in an HTTP/2
/// header). Every message that repeats what a caller sent uses it.
pub fn quoted(s: &str) -> String {
    format!("{:?}", clip(s, 64))
}

/// `rfc3339` formats a Unix-nanosecond time as RFC 3339 in UTC, with
/// fractional seconds only when they are not zero. It is total: every
/// `i64` is a time from 1677-09-21T00:12:43.145224192Z to
/// 2262-04-11T23:47:16.854775807Z, four-digit years all, so a time from
/// anywhere (a peer, a computed bound) can be printed without a check.
pub fn rfc3339(t: Timestamp) -> String {
    const NANOS: i64 = 1_000_000_000;
    let (secs, nanos) = (t.div_euclid(NANOS), t.rem_euclid(NANOS));
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    if nanos == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
    }
}

/// `civil_from_days` is the proleptic Gregorian (year, month, day) of a
/// count of days since 1970-01-01 (H. Hinnant's `civil_from_days`); exact
/// for any count within ±2^40.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // from March 1st
    let mp = (5 * doy + 2) / 153; // March is 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `parse_rfc3339` parses an RFC 3339 time in UTC (`Z`) to Unix
/// nanoseconds.
///
/// # Errors
///
/// A message naming the input if it is not RFC 3339 or is out of range.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let before = || format!("{s:?} is before 1970-01-01T00:00:00Z, where the log's times begin");
    let st = humantime::parse_rfc3339_weak(s).map_err(|e| {
        // humantime refuses years before 1970 as "out of range", which
        // reads as if the text were at fault; say what is.
        let year = s
            .get(..4)
            .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|y| y.parse::<u32>().ok());
        match year {
            Some(y) if y < 1970 => before(),
            _ => format!("{s:?} is not an RFC 3339 time such as 2026-11-26T15:04:05Z: {e}"),
        }
    })?;
    let d = st
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| before())?;
    i64::try_from(d.as_nanos()).map_err(|_| {
        format!(
            "{s:?} is after {}, where the log's times end",
            rfc3339(i64::MAX)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every i64 is printable: before 1970 too, to the ends of the range
    /// (humantime, which `rfc3339` used, panics on times before 1970).
    #[test]
    fn rfc3339_is_total() {
        for (t, want) in [
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (-86_400_000_000_000, "1969-12-31T00:00:00Z"),
            (-951_782_400_000_000_000, "1939-11-04T00:00:00Z"),
            (0, "1970-01-01T00:00:00Z"),
            (1, "1970-01-01T00:00:00.000000001Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00Z"),
        ] {
            assert_eq!(rfc3339(t), want, "{t}");
        }
    }

    /// Times out of the range the log can hold are refused in words that
    /// say so, not as malformed text.
    #[test]
    fn parse_rfc3339_says_when_a_time_is_out_of_range() {
        for (s, says) in [
            ("1969-12-31T23:59:59Z", "is before 1970-01-01T00:00:00Z"),
            ("0001-01-01T00:00:00Z", "is before 1970-01-01T00:00:00Z"),
            (
                "2262-04-11T23:47:17Z",
                "is after 2262-04-11T23:47:16.854775807Z",
            ),
            (
                "9999-12-31T23:59:59Z",
                "is after 2262-04-11T23:47:16.854775807Z",
            ),
            ("yesterday", "is not an RFC 3339 time"),
            ("2026-13-01T00:00:00Z", "is not an RFC 3339 time"),
        ] {
            let e = parse_rfc3339(s).unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
        assert_eq!(
            parse_rfc3339("2262-04-11T23:47:16.854775807Z"),
            Ok(i64::MAX)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
    }

    /// From 1970 on, `rfc3339` prints exactly what humantime printed
    /// (bundles compare times as text), and `parse_rfc3339` reads it back.
    #[test]
    fn rfc3339_agrees_with_humantime_from_1970_on() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut times: Vec<i64> = vec![0, 1, 999_999_999, 1_000_000_000, i64::MAX];
        for _ in 0..20_000 {
            // xorshift: times spread over the whole range, and some whole
            // seconds, days and leap days among them.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = (x >> 1) as i64;
            times.extend([t, t - t % 1_000_000_000, t - t % 86_400_000_000_000]);
        }
        for t in times {
            let st = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t as u64);
            let want = if t % 1_000_000_000 == 0 {
                humantime::format_rfc3339_seconds(st).to_string()
            } else {
                humantime::format_rfc3339_nanos(st).to_string()
            };
            assert_eq!(rfc3339(t), want, "{t}");
            assert_eq!(parse_rfc3339(&want), Ok(t), "{want}");
        }
    }
}
