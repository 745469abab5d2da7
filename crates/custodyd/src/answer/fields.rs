//! A question's fields, read the same way from a protobuf message, a
//! query string or a path: each reader names its field in the
//! [`AnswerError::BadRequest`] it returns, and repeats the caller's text
//! only clipped and quoted ([`quoted`]).

use custody_domain::{is_valid_id, parse_rfc3339, Digest, Timestamp};

use super::AnswerError;

/// Default and largest page sizes of a listing.
pub const DEFAULT_PAGE: u32 = 100;
/// The largest page a question may ask for.
pub const MAX_PAGE: u32 = 1000;

/// The one rule for repeating a caller's text, from the domain crate,
/// which refusals use too.
pub use custody_domain::{clip, quoted};

/// `digest` reads a SHA-256 digest sent as 32 bytes.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for any other length.
pub fn digest(field: &str, b: &[u8]) -> Result<Digest, AnswerError> {
    b.try_into().map_err(|_| {
        AnswerError::bad(
            field,
            format!("want a 32-byte SHA-256 digest, got {} bytes", b.len()),
        )
    })
}

/// `digest_hex` reads a SHA-256 digest written as 64 hex digits.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for anything else.
pub fn digest_hex(field: &str, s: &str) -> Result<Digest, AnswerError> {
    let bad = || {
        AnswerError::bad(
            field,
            format!("want a SHA-256 digest as 64 hex digits, got {}", quoted(s)),
        )
    };
    if s.len() != 64 {
        return Err(bad());
    }
    let mut d = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
        let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
        d[i] = (hi * 16 + lo) as u8;
    }
    Ok(d)
}

/// `id` reads a party or system id.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for a string that is not an id.
pub fn id(field: &str, s: &str) -> Result<String, AnswerError> {
    if is_valid_id(s) {
        Ok(s.to_owned())
    } else {
        Err(AnswerError::bad(
            field,
            format!(
                "{} is not an id; ids are 1 to 64 characters from A-Z a-z 0-9 . _ : -",
                quoted(s)
            ),
        ))
    }
}

/// `time` reads an RFC 3339 time.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for anything else.
pub fn time(field: &str, s: &str) -> Result<Timestamp, AnswerError> {
    // No RFC 3339 time is this long; the parser's message would repeat it.
    if s.len() > 64 {
        return Err(AnswerError::bad(
            field,
            format!(
                "{} is not an RFC 3339 time such as 2026-11-26T15:04:05Z",
                quoted(s)
            ),
        ));
    }
    parse_rfc3339(s).map_err(|e| AnswerError::bad(field, e))
}

/// `bundle_time` refuses a time an evidence bundle cannot write (before
/// 1970).
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for a negative time.
pub fn bundle_time(field: &str, t: Timestamp) -> Result<Timestamp, AnswerError> {
    if t < 0 {
        return Err(AnswerError::bad(
            field,
            "a time before 1970 cannot be written in a bundle",
        ));
    }
    Ok(t)
}

/// `number` reads a log index, tree size or page number.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for anything but a whole number.
pub fn number(field: &str, s: &str) -> Result<u64, AnswerError> {
    s.parse()
        .map_err(|_| AnswerError::bad(field, format!("{} is not a whole number", quoted(s))))
}

/// `page_size` is a listing's page size: [`DEFAULT_PAGE`] for 0.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] above [`MAX_PAGE`].
pub fn page_size(n: u32) -> Result<usize, AnswerError> {
    match n {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n <= MAX_PAGE => Ok(n as usize),
        n => Err(AnswerError::bad(
            "page_size",
            format!("at most {MAX_PAGE}, got {n}"),
        )),
    }
}

/// `window` checks a time window `[from, to]`.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] about `to` when it ends before it starts.
pub fn window(from: Timestamp, to: Timestamp) -> Result<(), AnswerError> {
    if to < from {
        return Err(AnswerError::bad("to", "the window ends before it starts"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_from_32_bytes_or_64_hex_digits_only() {
        let hex = "00ff".repeat(16);
        assert_eq!(digest_hex("asset", &hex).unwrap()[..2], [0x00, 0xff]);
        assert_eq!(digest_hex("asset", &hex.to_uppercase()).unwrap()[1], 0xff);
        for bad in ["", "00", &"0g".repeat(32), &"0".repeat(65), &"é".repeat(32)] {
            assert!(matches!(
                digest_hex("asset", bad),
                Err(AnswerError::BadRequest { .. })
            ));
        }
        assert!(digest("asset", &[1; 32]).is_ok());
        assert!(digest("asset", &[1; 31]).is_err());
    }

    #[test]
    fn ids_times_and_pages_are_checked() {
        assert!(id("party", "maint-subco").is_ok());
        assert!(id("party", "<script>").is_err());
        assert!(time("at", "2026-11-26T15:04:05Z").is_ok());
        assert!(time("at", "yesterday").is_err());
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE as usize);
        assert!(page_size(MAX_PAGE + 1).is_err());
        assert!(window(2, 1).is_err());
        assert!(bundle_time("at", -1).is_err());
    }

    /// No input makes an error message longer than a clipped quote.
    #[test]
    fn errors_repeat_input_clipped() {
        let long = "x".repeat(5000);
        let e = id("party", &long).unwrap_err();
        assert!(e.message().len() < 200, "{}", e.message().len());
        let e = digest_hex("asset", &long).unwrap_err();
        assert!(e.message().len() < 200, "{}", e.message().len());
        let e = time("at", &long).unwrap_err();
        assert!(e.message().len() < 200, "{}", e.message().len());
    }
}
