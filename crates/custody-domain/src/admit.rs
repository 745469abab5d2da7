//! Admission: the one rule that decides whether an event may join the log,
//! and what it changes if it does.
//!
//! The sequencer (before it commits), [`crate::replay::Replay`] (the
//! server's findings and `custody audit`) and the custody model test all
//! call [`admit`]; none of them carries its own copy of "check signers,
//! validate, plan". Checking the signatures' bytes is the caller's, because
//! each batches it differently: [`Admission::keys`] says which key must
//! verify each signature.

use std::ops::Range;

use ed25519_dalek::VerifyingKey;

use crate::{
    plan_members, CustodyView, Effects, Event, KeyId, Refusal, Registry, Timestamp, ALL_MEMBERS,
};

/// `Admission` is an admitted event's consequences. Nothing is applied
/// yet: the caller applies [`Admission::effects`] to its custody state and
/// the event to its registry (`Registry::apply`) once the entry is
/// committed.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The key that must verify each signature, in the envelope's order.
    pub keys: Vec<VerifyingKey>,
    /// The custody effects: intervals opened and closed, assets created,
    /// index records.
    pub effects: Effects,
    /// Whether the event changes the registry (a registry entry).
    pub changes_registry: bool,
}

/// `check_signers` is the keys that must verify an envelope's signatures,
/// by key id in the envelope's order, for an event by `reporter` integrated
/// at `integrated`. Every key must be registered to the reporter, valid at
/// that time and not revoked, and there must be at least one.
///
/// # Errors
///
/// A `PermissionDenied` [`Refusal`] naming the key at fault.
pub fn check_signers(
    registry: &Registry,
    signers: &[KeyId],
    reporter: &str,
    integrated: Timestamp,
) -> Result<Vec<VerifyingKey>, Refusal> {
    if signers.is_empty() {
        return Err(Refusal::denied(
            "event carries no signature by its reporter: sign it with a key registered to the reporter",
        ));
    }
    signers
        .iter()
        .map(|id| {
            registry
                .check_signer(id, reporter, integrated)
                .map(|k| k.public_key)
        })
        .collect()
}

/// `MAX_CLOCK_SKEW` is how far after its integration time an event may be
/// dated: reporters' clocks may run a little ahead of the log's, but an
/// event dated later would hide from every finding asked as of now.
pub const MAX_CLOCK_SKEW: Timestamp = 300 * 1_000_000_000;

/// `admit` decides whether `event`, signed by the keys `signers` and to be
/// logged at `index` at integration time `integrated`, is admitted given
/// the registry and custody state before it: signers, then the registry's
/// rules, then the custody rules.
///
/// # Errors
///
/// The [`Refusal`] the log gives the reporter.
pub fn admit(
    registry: &Registry,
    custody: &dyn CustodyView,
    signers: &[KeyId],
    event: &Event,
    index: u64,
    integrated: Timestamp,
) -> Result<Admission, Refusal> {
    admit_members(
        registry,
        custody,
        signers,
        event,
        index,
        integrated,
        ALL_MEMBERS,
    )
}

/// `admit_members` is [`admit`] with the custody rules for the members
/// `members` of the event's manifest alone ([`plan_members`]): a bulk
/// event is admitted once with no members, then planned a slice of
/// members at a time.
///
/// # Errors
///
/// As [`admit`].
pub fn admit_members(
    registry: &Registry,
    custody: &dyn CustodyView,
    signers: &[KeyId],
    event: &Event,
    index: u64,
    integrated: Timestamp,
    members: Range<usize>,
) -> Result<Admission, Refusal> {
    let keys = admit_before_custody(registry, signers, event, integrated)?;
    let effects = plan_members(event, index, registry, custody, members)?;
    Ok(Admission {
        keys,
        effects,
        changes_registry: event.body.is_registry(),
    })
}

/// `admit_to_registry` is [`admit`] without the custody rules: signers,
/// the event's date and the registry's rules, then the event's change to
/// `registry`, if any. It is for an auditor whose custody replay had to
/// stop (a manifest it could not fetch): later signatures are still
/// checked against the keys the registry allowed. It returns the keys to
/// verify each signature with.
///
/// # Errors
///
/// As [`admit`], for the rules it applies.
pub fn admit_to_registry(
    registry: &mut Registry,
    signers: &[KeyId],
    event: &Event,
    index: u64,
    integrated: Timestamp,
) -> Result<Vec<VerifyingKey>, Refusal> {
    let keys = admit_before_custody(registry, signers, event, integrated)?;
    registry.apply(event, index);
    Ok(keys)
}

/// The rules before custody, which [`admit`] and [`admit_to_registry`]
/// share.
fn admit_before_custody(
    registry: &Registry,
    signers: &[KeyId],
    event: &Event,
    integrated: Timestamp,
) -> Result<Vec<VerifyingKey>, Refusal> {
    let keys = check_signers(registry, signers, &event.reporter, integrated)?;
    if event.event_time > integrated.saturating_add(MAX_CLOCK_SKEW) {
        return Err(Refusal::invalid(
            "event.event_time",
            format!(
                "the event is dated {} s after the log's time; an event may not be reported before it happens (clocks may differ by at most {} s): check the reporter's clock",
                (event.event_time - integrated) / 1_000_000_000,
                MAX_CLOCK_SKEW / 1_000_000_000
            ),
        ));
    }
    registry.validate(event)?;
    Ok(keys)
}
