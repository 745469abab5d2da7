//! C2SP `tlog-proof` (<https://c2sp.org/tlog-proof>): an entry's index,
//! its Merkle inclusion proof and the checkpoint it is proven against, as
//! one text that any tlog-proof verifier can check given the entry.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index 73894
//! gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
//! B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
//!
//! <the checkpoint, a signed note, verbatim>
//! ```
//!
//! The optional `extra` line (`extra <base64>`, after the header) is
//! never written by the log. When read it is kept, so that the text
//! round-trips, and otherwise ignored: its data is not authenticated
//! (C2SP: applications must not trust it), so nothing is proven by it
//! and no verdict depends on it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// `HEADER` is the first line of every tlog-proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// `TlogProof` is a parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// The optional extra data, decoded; unauthenticated, so never read
    /// by a verifier.
    pub extra: Option<Vec<u8>>,
    /// The entry's zero-based log index.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up to the root's child
    /// (RFC 6962 §2.1.1); each hash is 32 bytes.
    pub proof: Vec<Vec<u8>>,
    /// The checkpoint, verbatim.
    pub checkpoint: Vec<u8>,
}

impl TlogProof {
    /// `encode` is the tlog-proof text: the header, `extra <base64>` if
    /// there is extra data, `index N`, one base64 hash per line, an empty
    /// line, then the checkpoint.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\n").into_bytes();
        if let Some(extra) = &self.extra {
            out.extend_from_slice(format!("extra {}\n", B64.encode(extra)).as_bytes());
        }
        out.extend_from_slice(format!("index {}\n", self.index).as_bytes());
        for h in &self.proof {
            out.extend_from_slice(B64.encode(h).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// `parse` reads a tlog-proof. It is strict: extra data, if any, in
    /// standard padded base64, an index in ASCII decimal without leading
    /// zeroes, and 32-byte hashes in standard padded base64; so
    /// [`TlogProof::encode`] gives back the text parsed.
    ///
    /// # Errors
    ///
    /// A message saying which line is malformed.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let mut rest = text;
        let mut line = || -> Result<&[u8], String> {
            let n = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(|| "it ends before the checkpoint".to_owned())?;
            let (l, r) = rest.split_at(n);
            rest = &r[1..];
            Ok(l)
        };
        if line()? != HEADER.as_bytes() {
            return Err(format!("its first line is not {HEADER}"));
        }
        let mut l = line()?;
        let extra = match l.strip_prefix(b"extra ") {
            Some(data) => {
                let extra = B64
                    .decode(data)
                    .map_err(|_| "its extra line is not `extra` and base64 data".to_owned())?;
                l = line()?;
                Some(extra)
            }
            None => None,
        };
        let digits = l.strip_prefix(b"index ").ok_or_else(|| {
            "its second line (or its third, after `extra`) is not `index N`".to_owned()
        })?;
        let canonical = digits.first().is_some_and(u8::is_ascii_digit)
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.len() == 1 || digits[0] != b'0');
        let index = std::str::from_utf8(digits)
            .ok()
            .filter(|_| canonical)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| "its index is not a decimal number without leading zeroes".to_owned())?;
        let mut proof = Vec::new();
        loop {
            let l = line()?;
            if l.is_empty() {
                break;
            }
            let h = B64
                .decode(l)
                .ok()
                .filter(|h| h.len() == 32)
                .ok_or_else(|| {
                    format!(
                        "proof line {} is not a base64 SHA-256 hash",
                        proof.len() + 1
                    )
                })?;
            proof.push(h);
        }
        if rest.is_empty() {
            return Err("it has no checkpoint".into());
        }
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: rest.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TlogProof {
        TlogProof {
            extra: None,
            index: 73894,
            proof: vec![vec![1; 32], vec![2; 32]],
            checkpoint: b"example.com/log\n10\nAAAA\n\n\xe2\x80\x94 example.com/log abc=\n"
                .to_vec(),
        }
    }

    #[test]
    fn a_proof_round_trips() {
        let p = sample();
        let text = p.encode();
        assert!(text.starts_with(b"c2sp.org/tlog-proof@v1\nindex 73894\nAQEB"));
        assert_eq!(TlogProof::parse(&text).unwrap(), p);
        let empty = TlogProof {
            index: 0,
            proof: vec![],
            ..sample()
        };
        assert_eq!(TlogProof::parse(&empty.encode()).unwrap(), empty);
    }

    /// C2SP tlog-proof allows an `extra` line after the header: it is
    /// read (and kept, so the text round-trips), empty or not.
    #[test]
    fn an_extra_line_is_accepted() {
        let text = String::from_utf8(sample().encode()).unwrap();
        for (extra, data) in [("AAEC", &b"\x00\x01\x02"[..]), ("", &b""[..])] {
            let with = text.replace("index 73894", &format!("extra {extra}\nindex 73894"));
            let p = TlogProof::parse(with.as_bytes()).unwrap();
            assert_eq!(p.extra.as_deref(), Some(data));
            assert_eq!(
                TlogProof {
                    extra: None,
                    ..p.clone()
                },
                sample()
            );
            assert_eq!(p.encode(), with.as_bytes());
        }
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let text = String::from_utf8(sample().encode()).unwrap();
        for bad in [
            text.replace("tlog-proof@v1", "tlog-proof@v2"),
            text.replace("index 73894", "index 073894"),
            text.replace("index 73894", "index +73894"),
            text.replace("index 73894", "extra AAA\nindex 73894"),
            text.replace("index 73894", "extra AAB=\nindex 73894"),
            text.replace("index 73894", "extra\nindex 73894"),
            text.replace("index 73894", "extra AAAA\nextra AAAA\nindex 73894"),
            text.replace("index 73894", "index 73894\nextra AAAA"),
            text.replace("AQEB", "AQE"),
            text.replace("\n\nexample", "\nexample"),
            "c2sp.org/tlog-proof@v1\nindex 1\n\n".to_owned(),
        ] {
            assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
