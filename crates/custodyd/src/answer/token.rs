//! Page tokens: the tree size a listing is pinned at, then the listing's
//! own cursor. gRPC sends a token's bytes as they are; the web view's
//! links carry the cursor in hex beside a `size` parameter. Both read and
//! write cursors here, so a cursor has one form.

use custody_domain::{Digest, Timestamp};

use super::AnswerError;
use crate::query::HoldingsCursor;

/// The longest finding id a question or cursor may carry: longer than
/// any `finding_id` makes (a rule's name, an entry index, a digest in hex
/// and an opaque id of at most 64 characters).
pub const MAX_FINDING_ID: usize = 1024;

/// `Cursor` is where a listing resumes.
pub trait Cursor: Sized {
    /// `encode` writes the cursor.
    fn encode(&self) -> Vec<u8>;
    /// `decode` reads what [`Cursor::encode`] wrote, or `None`.
    fn decode(b: &[u8]) -> Option<Self>;
}

/// An asset's history resumes after an entry index.
impl Cursor for u64 {
    fn encode(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn decode(b: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(b.try_into().ok()?))
    }
}

/// A breach scope resumes after an asset.
impl Cursor for Digest {
    fn encode(&self) -> Vec<u8> {
        self.to_vec()
    }

    fn decode(b: &[u8]) -> Option<Self> {
        b.try_into().ok()
    }
}

/// Holdings resume at a system's ordinal, then an (asset, opening entry)
/// inside it.
impl Cursor for HoldingsCursor {
    fn encode(&self) -> Vec<u8> {
        let (system, (asset, opened_by)) = self;
        let mut t = u32::try_from(*system)
            .unwrap_or(u32::MAX)
            .to_be_bytes()
            .to_vec();
        t.extend_from_slice(asset);
        t.extend_from_slice(&opened_by.to_be_bytes());
        t
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 44 {
            return None;
        }
        let system = u32::from_be_bytes(b[..4].try_into().ok()?) as usize;
        let asset: Digest = b[4..36].try_into().ok()?;
        let opened_by = u64::from_be_bytes(b[36..].try_into().ok()?);
        Some((system, (asset, opened_by)))
    }
}

/// `FindingsCursor` resumes a findings listing: the time the findings are
/// evaluated as of, and the last finding listed (when it arose, its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsCursor {
    /// The time the listing is evaluated as of.
    pub as_of: Timestamp,
    /// When the last finding listed arose.
    pub at: Timestamp,
    /// Its id.
    pub id: String,
}

impl Cursor for FindingsCursor {
    fn encode(&self) -> Vec<u8> {
        let mut t = self.as_of.to_be_bytes().to_vec();
        t.extend_from_slice(&self.at.to_be_bytes());
        t.extend_from_slice(self.id.as_bytes());
        t
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 16 || b.len() > 16 + MAX_FINDING_ID {
            return None;
        }
        Some(Self {
            as_of: i64::from_be_bytes(b[..8].try_into().ok()?),
            at: i64::from_be_bytes(b[8..16].try_into().ok()?),
            id: String::from_utf8(b[16..].to_vec()).ok()?,
        })
    }
}

fn bad_token(field: &str) -> AnswerError {
    AnswerError::bad(
        field,
        "not a token this server issued; start again without one",
    )
}

/// `read` splits a page token into the tree size it pins and its cursor;
/// an empty token is the first page, as of the latest checkpoint.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] about `page_token` for anything the server
/// did not write.
pub fn read<C: Cursor>(t: &[u8]) -> Result<(Option<u64>, Option<C>), AnswerError> {
    if t.is_empty() {
        return Ok((None, None));
    }
    let (size, cursor) = t
        .split_at_checked(8)
        .ok_or_else(|| bad_token("page_token"))?;
    let size = u64::decode(size).ok_or_else(|| bad_token("page_token"))?;
    if cursor.is_empty() {
        return Ok((Some(size), None));
    }
    let cursor = C::decode(cursor).ok_or_else(|| bad_token("page_token"))?;
    Ok((Some(size), Some(cursor)))
}

/// `write` is the page token of the page after `cursor`, pinned at
/// `size`.
pub fn write<C: Cursor>(size: u64, cursor: &C) -> Vec<u8> {
    let mut t = size.encode();
    t.extend_from_slice(&cursor.encode());
    t
}

/// `to_text` is a cursor as a link carries it: hex.
pub fn to_text<C: Cursor>(cursor: &C) -> String {
    custody_domain::hex(&cursor.encode())
}

/// `from_text` reads a cursor from a link's `field`.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] about `field` for anything
/// [`to_text`] did not write.
pub fn from_text<C: Cursor>(field: &str, s: &str) -> Result<C, AnswerError> {
    let bad = || {
        AnswerError::bad(
            field,
            format!(
                "{} is not a cursor from a page link; start again from the first page",
                super::fields::quoted(s)
            ),
        )
    };
    if !s.len().is_multiple_of(2) || s.len() > 2 * (16 + MAX_FINDING_ID) {
        return Err(bad());
    }
    let b = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    C::decode(&b).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: Cursor + PartialEq + std::fmt::Debug + Clone>(c: C) {
        let t = write(42, &c);
        assert_eq!(read::<C>(&t).unwrap(), (Some(42), Some(c.clone())));
        assert_eq!(from_text::<C>("after", &to_text(&c)).unwrap(), c);
        // Every cut of a token is refused or read as something else, never
        // a panic.
        for n in 0..t.len() {
            let _ = read::<C>(&t[..n]);
        }
    }

    #[test]
    fn cursors_round_trip() {
        round_trip(7u64);
        round_trip([9u8; 32]);
        round_trip((3usize, ([1u8; 32], 99u64)));
        round_trip(FindingsCursor {
            as_of: -5,
            at: 1 << 40,
            id: "late_reporting:17".into(),
        });
    }

    #[test]
    fn garbage_is_a_bad_request() {
        assert!(read::<u64>(&[1, 2, 3]).is_err());
        assert!(read::<u64>(&[0; 12]).is_err());
        assert!(read::<Digest>(&[0; 9]).is_err());
        assert_eq!(read::<u64>(&[]).unwrap(), (None, None));
        for bad in ["", "1.2", "zz", "0", &"ab".repeat(2000)] {
            assert!(from_text::<HoldingsCursor>("after", bad).is_err(), "{bad}");
            assert!(from_text::<FindingsCursor>("after", bad).is_err(), "{bad}");
        }
        let long = FindingsCursor {
            as_of: 0,
            at: 0,
            id: "x".repeat(MAX_FINDING_ID + 1),
        };
        assert!(read::<FindingsCursor>(&write(1, &long)).is_err());
    }
}
