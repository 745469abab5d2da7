//! The answer layer: what every read answer needs, whichever transport
//! asked. The gRPC query service (`grpc_query`), the evidence export
//! (`export`, over gRPC and HTTP) and the web view (`ui`) call it, and
//! none of them does these things on its own:
//! - reading a question's fields ([`fields`]): digests, ids, times, page
//!   sizes, windows;
//! - pinning the checkpoint an answer is computed and proven at
//!   ([`pin`]), and the page tokens that carry it with each listing's
//!   cursor ([`token`]);
//! - resolving whose systems a holder's holdings cover
//!   ([`holder_systems`]);
//! - the findings filter ([`findings_filter`]) and the time findings are
//!   evaluated as of ([`findings_as_of`]);
//! - the citation closure of evidence ([`evidence::EvidenceBuilder`]).
//!
//! It fails with one error type, [`AnswerError`], mapped once to gRPC
//! statuses and once to HTTP status codes. Roles (DESIGN §8) are to be
//! enforced here, so every transport enforces the same ones.

pub mod error;
pub mod evidence;
pub mod fields;
pub mod token;

use custody_domain::findings::{FindingsFilter, Rule};
use custody_domain::{Registry, Timestamp};
use custody_evidence::Holder;

pub use error::{status_message, AnswerError};

use crate::state::LogState;

/// `Pinned` is the checkpoint an answer is computed and proven at. Page
/// tokens carry its size, so every page of one listing is proven against
/// the same checkpoint.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// The checkpoint's tree size.
    pub size: u64,
    /// The signed checkpoint note.
    pub note: Vec<u8>,
}

/// `pin` is the latest checkpoint whose entries are indexed, or the
/// stored one of `size` (from a page token or link; `field` names where it
/// came from). It reads storage for an older size: call it off the async
/// threads.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for a size the log published no checkpoint
/// of, [`AnswerError::Unavailable`] for one whose entries are still being
/// indexed.
pub fn pin(state: &LogState, size: Option<u64>, field: &str) -> Result<Pinned, AnswerError> {
    let latest = state.answerable();
    match size {
        None => Ok(Pinned {
            size: latest.size,
            note: latest.note.clone(),
        }),
        Some(s) if s == latest.size => Ok(Pinned {
            size: s,
            note: latest.note.clone(),
        }),
        Some(s) => {
            let Some(note) = state.store.checkpoint(s)? else {
                return Err(AnswerError::bad(
                    field,
                    format!(
                        "the log published no checkpoint of size {s}; start again without one (the latest is {})",
                        latest.size
                    ),
                ));
            };
            let indexed = *state.indexed.borrow();
            if s > indexed {
                return Err(AnswerError::Unavailable(format!(
                    "entries from {indexed} on are still being indexed (a bulk event's members are applied in slices); ask as of tree size {} or retry shortly",
                    latest.size
                )));
            }
            Ok(Pinned { size: s, note })
        }
    }
}

/// `blocking` runs an answer's storage reads on a blocking thread, never
/// on the async runtime's, so a slow read cannot stall other requests.
///
/// # Errors
///
/// `f`'s, or [`AnswerError::Internal`] if its task died.
pub async fn blocking<T, F>(f: F) -> Result<T, AnswerError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AnswerError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AnswerError::internal("answer task", e))?
}

/// `holder_systems` is the systems whose holdings a holder's answer as
/// of tree size `size` covers, sorted: the system itself, or every system
/// the party owns ([`Registry::systems_of`]) that was registered before
/// `size`. A listing's cursor counts systems in this list, so it must not
/// change once pinned: a system registered later would shift every
/// position after it.
///
/// # Errors
///
/// [`AnswerError::NotFound`] for a party or system the registry does not
/// hold.
pub fn holder_systems(
    registry: &Registry,
    holder: &Holder,
    size: u64,
) -> Result<Vec<String>, AnswerError> {
    match holder {
        Holder::System(s) => match registry.system(s) {
            Some(_) => Ok(vec![s.clone()]),
            None => Err(AnswerError::NotFound(format!(
                "system {} is not registered",
                fields::clip(s, 64)
            ))),
        },
        Holder::Party(p) => match registry.party(p) {
            Some(_) => Ok(registry
                .systems_of(p)
                .into_iter()
                .filter(|s| registry.system(s).is_some_and(|r| r.registered_at < size))
                .collect()),
            None => Err(AnswerError::NotFound(format!(
                "party {} is not registered",
                fields::clip(p, 64)
            ))),
        },
    }
}

/// `registered_system` checks that `system` is registered.
///
/// # Errors
///
/// [`AnswerError::NotFound`] when it is not.
pub fn registered_system(registry: &Registry, system: &str) -> Result<(), AnswerError> {
    holder_systems(registry, &Holder::System(system.to_owned()), 0).map(|_| ())
}

/// `findings_filter` is the findings filter of a question: a rule's
/// name, a party, a system, and a window of when findings arose, each
/// absent when not given.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] for a name that is no rule, a malformed
/// id, or a window that ends before it starts.
pub fn findings_filter(
    rule: Option<&str>,
    party: Option<&str>,
    system: Option<&str>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<FindingsFilter, AnswerError> {
    let rule = rule
        .map(|name| {
            Rule::from_name(name).ok_or_else(|| {
                AnswerError::bad(
                    "rule",
                    format!(
                        "{} is not a rule; use one of {}",
                        fields::quoted(name),
                        Rule::ALL
                            .iter()
                            .map(|r| r.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let (from, to) = (from.unwrap_or(Timestamp::MIN), to.unwrap_or(Timestamp::MAX));
    fields::window(from, to)?;
    Ok(FindingsFilter {
        rule,
        party: party.map(|p| fields::id("party", p)).transpose()?,
        system: system.map(|s| fields::id("system", s)).transpose()?,
        from,
        to,
    })
}

/// `findings_as_of` is the time a findings question is evaluated as of:
/// the one its page token was issued for (`pinned`), which a question
/// must not contradict, or the one it asks (`asked`), or now. A question
/// asked "as of now" keeps the "now" of its first page, so its pages do
/// not shift.
///
/// # Errors
///
/// [`AnswerError::BadRequest`] about `field` when `asked` differs from
/// `pinned`.
pub fn findings_as_of(
    pinned: Option<Timestamp>,
    asked: Option<Timestamp>,
    field: &str,
) -> Result<Timestamp, AnswerError> {
    match (pinned, asked) {
        (Some(t), Some(a)) if a != t => Err(AnswerError::bad(
            field,
            "differs from the one this page was issued for; start again from the first page",
        )),
        (Some(t), _) => Ok(t),
        (None, Some(a)) => Ok(a),
        (None, None) => Ok(crate::init::now_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_filters_check_what_they_are_given() {
        let f = findings_filter(Some("late_reporting"), Some("vendor"), None, None, None).unwrap();
        assert_eq!(f.rule.map(|r| r.name()), Some("late_reporting"));
        assert_eq!((f.from, f.to), (Timestamp::MIN, Timestamp::MAX));
        for (rule, party, from, to, field) in [
            (Some("no_such_rule"), None, None, None, "rule"),
            (None, Some("<b>"), None, None, "party"),
            (None, None, Some(5), Some(4), "to"),
        ] {
            match findings_filter(rule, party, None, from, to) {
                Err(AnswerError::BadRequest { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_page_keeps_the_time_its_first_page_was_asked_at() {
        assert_eq!(findings_as_of(Some(7), None, "as_of").unwrap(), 7);
        assert_eq!(findings_as_of(Some(7), Some(7), "as_of").unwrap(), 7);
        assert_eq!(findings_as_of(None, Some(9), "as_of").unwrap(), 9);
        assert!(findings_as_of(Some(7), Some(8), "as_of").is_err());
    }
}
