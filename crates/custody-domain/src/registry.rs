//! The registry: who may sign, with which keys, and when.
//!
//! The registry is derived from the log alone: the genesis entry names the
//! data owner and its key, and every later change is a registry event signed
//! by the data owner. Replaying the log rebuilds it exactly.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::findings::Policies;
use crate::{
    key_id_of, Event, EventBody, GrantIssued, KeyId, LegalHold, PartyKind, Refusal, RetentionRule,
    SystemRegistered, Timestamp,
};

/// `key_bytes` (de)serialises an Ed25519 public key as its 32 bytes, so a
/// saved registry (for `custody audit --state`) reloads only valid keys.
mod key_bytes {
    use ed25519_dalek::VerifyingKey;

    pub fn serialize<S: serde::Serializer>(k: &VerifyingKey, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(k.as_bytes(), s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<VerifyingKey, D::Error> {
        let b: [u8; 32] = serde::Deserialize::deserialize(d)?;
        VerifyingKey::from_bytes(&b)
            .map_err(|_| serde::de::Error::custom("saved key is not an Ed25519 key"))
    }
}

/// `Genesis` is the content of log entry 0: the root of trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// The log's origin line.
    pub origin: String,
    /// The data owner's party id.
    pub owner_party_id: String,
    /// The data owner's Ed25519 public key.
    pub owner_public_key: [u8; 32],
}

/// `PartyRecord` is a registered party.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartyRecord {
    /// Its kind.
    pub kind: PartyKind,
    /// The party it acts for; empty for the data owner.
    pub acts_on_behalf_of: String,
    /// Log index of its registration.
    pub registered_at: u64,
}

/// `KeyRecord` is a registered signing key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRecord {
    /// The party the key signs for.
    pub party_id: String,
    /// The key.
    #[serde(with = "key_bytes")]
    pub public_key: VerifyingKey,
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity (exclusive), if any.
    pub valid_to: Option<Timestamp>,
    /// Log index of the entry that added it.
    pub added_at: u64,
    /// Log index of the entry that revoked it, if any.
    pub revoked_at: Option<u64>,
}

/// `SystemRecord` is a registered system.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SystemRecord {
    /// The registration.
    pub system: SystemRegistered,
    /// Log index of the registration.
    pub registered_at: u64,
}

/// `GrantRecord` is an issued grant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantRecord {
    /// The grant.
    pub grant: GrantIssued,
    /// Log index of its issue.
    pub issued_at: u64,
    /// Log index of its revocation, if any.
    pub revoked_at: Option<u64>,
}

/// `RuleRecord` is a published retention rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleRecord {
    /// The rule.
    pub rule: RetentionRule,
    /// Log index of its publication.
    pub published_at: u64,
    /// Event time of its publication: it applies as of then.
    pub published_time: Timestamp,
}

/// `HoldRecord` is a legal hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoldRecord {
    /// The hold as placed.
    pub hold: LegalHold,
    /// Log index where it was placed.
    pub placed_at: u64,
    /// Event time of its placing: it holds as of then.
    pub placed_time: Timestamp,
    /// Log index where it was released, if it was.
    pub released_at: Option<u64>,
    /// Event time of its release, if it was released.
    pub released_time: Option<Timestamp>,
}

/// `Attribution` is how a reporter stands to the action it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution {
    /// The reporter is the actor, or the actor acts on the reporter's
    /// behalf.
    Own,
    /// The reporter owns or operates `system`, where another party acted:
    /// the actor did it and the reporter saw it.
    Observed {
        /// The system the reporter owns or operates.
        system: String,
    },
}

/// `Registry` is the registry as it stands at some log size.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Registry {
    /// The log's origin: every event must name it in `log_origin`.
    origin: String,
    /// The data owner's party id; registry events must be signed by it.
    owner: String,
    /// Parties by id.
    parties: HashMap<String, PartyRecord>,
    /// Keys by id.
    keys: HashMap<KeyId, KeyRecord>,
    /// Systems by id.
    systems: HashMap<String, SystemRecord>,
    /// Grants by id.
    grants: HashMap<String, GrantRecord>,
    /// Retention rules by id.
    rules: HashMap<String, RuleRecord>,
    /// Legal holds by id.
    holds: HashMap<String, HoldRecord>,
    /// The findings policy each entry is judged by.
    #[serde(default)]
    policies: Policies,
}

impl Registry {
    /// `new` is the registry right after the genesis entry (index 0): the
    /// data owner with its one key, valid from the beginning of time.
    ///
    /// # Errors
    ///
    /// An `InvalidArgument` [`Refusal`] if the owner's key is not a valid
    /// Ed25519 point or its id is not an opaque id.
    pub fn new(genesis: &Genesis) -> Result<Self, Refusal> {
        if !crate::is_valid_id(&genesis.owner_party_id) {
            return Err(Refusal::invalid(
                "genesis.owner_party_id",
                format!(
                    "owner party id {} is not an opaque id",
                    crate::quoted(&genesis.owner_party_id)
                ),
            ));
        }
        let public_key = VerifyingKey::from_bytes(&genesis.owner_public_key)
            .ok()
            .filter(crate::event::is_strong_key)
            .ok_or_else(|| {
                Refusal::invalid(
                    "genesis.owner_public_key",
                    "owner key is not a strong Ed25519 key (a prime-order point)",
                )
            })?;
        let mut parties = HashMap::new();
        parties.insert(
            genesis.owner_party_id.clone(),
            PartyRecord {
                kind: PartyKind::Agency,
                acts_on_behalf_of: String::new(),
                registered_at: 0,
            },
        );
        let mut keys = HashMap::new();
        keys.insert(
            key_id_of(&genesis.owner_public_key),
            KeyRecord {
                party_id: genesis.owner_party_id.clone(),
                public_key,
                valid_from: i64::MIN,
                valid_to: None,
                added_at: 0,
                revoked_at: None,
            },
        );
        Ok(Self {
            origin: genesis.origin.clone(),
            owner: genesis.owner_party_id.clone(),
            parties,
            keys,
            systems: HashMap::new(),
            grants: HashMap::new(),
            rules: HashMap::new(),
            holds: HashMap::new(),
            policies: Policies::default(),
        })
    }

    /// `policies` is the findings policy each entry is judged by, from
    /// the `POLICY_PUBLISHED` entries applied so far.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// `origin` is the log's origin, from the genesis entry.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `owner` is the data owner's party id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// `key` looks a key up by id, revoked or not.
    pub fn key(&self, id: &KeyId) -> Option<&KeyRecord> {
        self.keys.get(id)
    }

    /// `party` looks a party up by id.
    pub fn party(&self, id: &str) -> Option<&PartyRecord> {
        self.parties.get(id)
    }

    /// `system` looks a system up by id.
    pub fn system(&self, id: &str) -> Option<&SystemRecord> {
        self.systems.get(id)
    }

    /// `systems` lists every registered system.
    pub fn systems(&self) -> impl Iterator<Item = (&String, &SystemRecord)> {
        self.systems.iter()
    }

    /// `systems_of` is every system `party` owns, sorted: what a party
    /// holds is what rests on them. The one answer to "which systems does
    /// a party hold", for queries, exports and the web view alike.
    pub fn systems_of(&self, party: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .systems
            .iter()
            .filter(|(_, s)| s.system.owner_party == party)
            .map(|(id, _)| id.clone())
            .collect();
        v.sort();
        v
    }

    /// `grant` looks a grant up by id.
    pub fn grant(&self, id: &str) -> Option<&GrantRecord> {
        self.grants.get(id)
    }

    /// `rules` lists every retention rule.
    pub fn rules(&self) -> impl Iterator<Item = &RuleRecord> {
        self.rules.values()
    }

    /// `holds` lists every legal hold, released or not.
    pub fn holds(&self) -> impl Iterator<Item = &HoldRecord> {
        self.holds.values()
    }

    /// `acts_for` says whether `agent` is `principal` or acts on its behalf,
    /// directly or through a chain of `acts_on_behalf_of`.
    pub fn acts_for(&self, agent: &str, principal: &str) -> bool {
        let mut at = agent;
        // A chain is at most as long as the registry; the bound also stops
        // a cycle, which validation never lets in.
        for _ in 0..=self.parties.len() {
            if at == principal {
                return true;
            }
            match self.parties.get(at) {
                Some(p) if !p.acts_on_behalf_of.is_empty() => at = &p.acts_on_behalf_of,
                _ => return false,
            }
        }
        false
    }

    /// `operates` says whether `party` owns or operates `system`: it is the
    /// system's owner, or a device or software agent acting for the owner
    /// (a capture device, a storage service, an export gateway). An
    /// organisation that acts for the owner (a prime, a subcontractor) does
    /// not operate the owner's systems: it works on them, and what it does
    /// there is reported by the systems themselves.
    ///
    /// A device or software agent operates the owner's systems only if its
    /// chain of principals reaches the owner through devices and software
    /// alone: a subcontractor's own gateway, which acts for the
    /// subcontractor and so, up the chain, for the owner, operates the
    /// subcontractor's systems, never the owner's.
    pub fn operates(&self, party: &str, system: &str) -> bool {
        let Some(s) = self.systems.get(system) else {
            return false;
        };
        let owner = s.system.owner_party.as_str();
        if party == owner {
            return true;
        }
        let mut at = party;
        for _ in 0..64 {
            let Some(p) = self.parties.get(at) else {
                return false;
            };
            if !matches!(p.kind, PartyKind::Device | PartyKind::Software) {
                return false;
            }
            if p.acts_on_behalf_of == owner {
                return true;
            }
            if p.acts_on_behalf_of.is_empty() {
                return false;
            }
            at = &p.acts_on_behalf_of;
        }
        false
    }

    /// `attribute` decides whether `reporter` may report an action by
    /// `actor` observed on `systems` (for a custody action, its
    /// `observation_system`: the system the data leaves; for a maintenance
    /// session, the system maintained; empty ids skipped) and how (DESIGN
    /// §3, "who may report what"):
    ///
    /// 1. The reporter may name as actor its own party or a party that acts
    ///    on its behalf (downward in `acts_on_behalf_of`): [`Attribution::Own`].
    /// 2. Never a party it acts for (upward), whatever systems it owns: a
    ///    vendor cannot make the data owner, or its prime, the author of a
    ///    copy to the vendor's own network.
    /// 3. Otherwise a reporter that [`operates`](Registry::operates) one of
    ///    those systems may report another party's action there:
    ///    [`Attribution::Observed`] on the first such system.
    /// 4. Anything else is refused.
    ///
    /// # Errors
    ///
    /// A `PermissionDenied` [`Refusal`] that says who may report the action.
    pub fn attribute(
        &self,
        reporter: &str,
        actor: &str,
        systems: &[&str],
    ) -> Result<Attribution, Refusal> {
        if self.acts_for(actor, reporter) {
            return Ok(Attribution::Own);
        }
        if self.acts_for(reporter, actor) {
            return Err(Refusal::denied(format!(
                "reporter {reporter} acts on behalf of {actor}, so it may not name {actor} as the actor: name itself, or a party acting on its behalf"
            )));
        }
        if let Some(s) = systems
            .iter()
            .find(|s| !s.is_empty() && self.operates(reporter, s))
        {
            return Ok(Attribution::Observed {
                system: (*s).to_owned(),
            });
        }
        let on = systems
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" or ");
        Err(Refusal::denied(if on.is_empty() {
            format!(
                "reporter {reporter} may name as actor only itself or a party acting on its behalf, not {actor}"
            )
        } else {
            format!(
                "reporter {reporter} may name as actor only itself or a party acting on its behalf, not {actor}; \
                 another party's action may be reported only by the owner or operator of {on}"
            )
        }))
    }

    /// `require_party` is a `FailedPrecondition` unless `id` is registered.
    ///
    /// # Errors
    ///
    /// A `FailedPrecondition` [`Refusal`] naming the role `what`.
    pub fn require_party(&self, what: &str, id: &str) -> Result<(), Refusal> {
        if self.parties.contains_key(id) {
            Ok(())
        } else {
            Err(Refusal::precondition(format!(
                "{what} {id} is not a registered party: register it with PARTY_REGISTERED first"
            )))
        }
    }

    /// `require_system` is the system's record, or a `FailedPrecondition`.
    ///
    /// # Errors
    ///
    /// A `FailedPrecondition` [`Refusal`] naming the role `what`.
    pub fn require_system(&self, what: &str, id: &str) -> Result<&SystemRecord, Refusal> {
        self.systems.get(id).ok_or_else(|| {
            Refusal::precondition(format!(
                "{what} {id} is not a registered system: register it with SYSTEM_REGISTERED first"
            ))
        })
    }

    /// `check_signer` decides whether key `id` may sign for `reporter` at
    /// time `now`.
    ///
    /// # Errors
    ///
    /// A `PermissionDenied` [`Refusal`]: unknown key, revoked key, key
    /// outside its validity window, or key of another party.
    pub fn check_signer(
        &self,
        id: &KeyId,
        reporter: &str,
        now: Timestamp,
    ) -> Result<&KeyRecord, Refusal> {
        let Some(k) = self.keys.get(id) else {
            return Err(Refusal::denied(format!(
                "unknown key {id}: register it with a KEY_ADDED event signed by the data owner"
            )));
        };
        if let Some(at) = k.revoked_at {
            return Err(Refusal::denied(format!(
                "key {id} of party {} was revoked by log entry {at}",
                k.party_id
            )));
        }
        if now < k.valid_from {
            return Err(Refusal::denied(format!(
                "key {id} of party {} is not valid yet: its window opens at {} ns",
                k.party_id, k.valid_from
            )));
        }
        if let Some(to) = k.valid_to {
            if now >= to {
                return Err(Refusal::denied(format!(
                    "key {id} of party {} expired at {to} ns",
                    k.party_id
                )));
            }
        }
        if k.party_id != reporter {
            return Err(Refusal::denied(format!(
                "key {id} belongs to party {}, not to the reporter {reporter}",
                k.party_id
            )));
        }
        Ok(k)
    }

    /// `validate` checks an event whose signatures are verified against the
    /// registry: it must name this log's origin, and registry events must
    /// come from the data owner and make sense in the registry's current
    /// state.
    ///
    /// # Errors
    ///
    /// A `PermissionDenied` or `FailedPrecondition` [`Refusal`].
    pub fn validate(&self, event: &Event) -> Result<(), Refusal> {
        if event.log_origin != self.origin {
            return Err(Refusal::invalid(
                "event.log_origin",
                format!(
                    "event is signed for log {}, not this log {:?}: set log_origin to this log's origin and sign it again",
                    crate::quoted(&event.log_origin),
                    self.origin
                ),
            ));
        }
        if event.body.is_registry() && event.reporter != self.owner {
            return Err(Refusal::denied(format!(
                "{} must be reported by the data owner {}, not {}",
                event.body.code(),
                self.owner,
                event.reporter
            )));
        }
        match &event.body {
            EventBody::PartyRegistered(p) => {
                if self.parties.contains_key(&p.party_id) {
                    return Err(Refusal::precondition(format!(
                        "party {} is already registered",
                        p.party_id
                    )));
                }
                if p.acts_on_behalf_of.is_empty() {
                    return Err(Refusal::invalid(
                        "party_registered.acts_on_behalf_of",
                        "a party must act on behalf of a registered party (the data owner at the top)",
                    ));
                }
                if !self.parties.contains_key(&p.acts_on_behalf_of) {
                    return Err(Refusal::precondition(format!(
                        "party {} acts on behalf of {}, which is not registered",
                        p.party_id, p.acts_on_behalf_of
                    )));
                }
            }
            EventBody::KeyAdded(k) => {
                if !self.parties.contains_key(&k.party_id) {
                    return Err(Refusal::precondition(format!(
                        "party {} is not registered: register it before adding keys",
                        k.party_id
                    )));
                }
                let id = key_id_of(&k.public_key);
                if let Some(existing) = self.keys.get(&id) {
                    return Err(Refusal::precondition(format!(
                        "key {id} is already registered to party {}",
                        existing.party_id
                    )));
                }
            }
            EventBody::KeyRevoked(k) => match self.keys.get(&k.key_id) {
                None => {
                    return Err(Refusal::precondition(format!(
                        "key {} is not registered",
                        k.key_id
                    )))
                }
                Some(r) if r.party_id != k.party_id => {
                    return Err(Refusal::precondition(format!(
                        "key {} belongs to party {}, not {}",
                        k.key_id, r.party_id, k.party_id
                    )))
                }
                Some(r) if r.revoked_at.is_some() => {
                    return Err(Refusal::precondition(format!(
                        "key {} is already revoked",
                        k.key_id
                    )))
                }
                Some(_) => {}
            },
            EventBody::SystemRegistered(r) => {
                if self.systems.contains_key(&r.system_id) {
                    return Err(Refusal::precondition(format!(
                        "system {} is already registered",
                        r.system_id
                    )));
                }
                self.require_party("owner party", &r.owner_party)?;
            }
            EventBody::GrantIssued(g) => {
                if self.grants.contains_key(&g.grant_id) {
                    return Err(Refusal::precondition(format!(
                        "grant {} is already issued; issue a new grant id",
                        g.grant_id
                    )));
                }
                self.require_party("grantee", &g.grantee)?;
                for s in &g.systems {
                    self.require_system("granted system", s)?;
                }
            }
            EventBody::GrantRevoked(g) => match self.grants.get(&g.grant_id) {
                None => {
                    return Err(Refusal::precondition(format!(
                        "grant {} was never issued",
                        g.grant_id
                    )))
                }
                Some(r) if r.revoked_at.is_some() => {
                    return Err(Refusal::precondition(format!(
                        "grant {} is already revoked",
                        g.grant_id
                    )))
                }
                Some(_) => {}
            },
            EventBody::RetentionRulePublished(r) => {
                if self.rules.contains_key(&r.rule_id) {
                    return Err(Refusal::precondition(format!(
                        "retention rule {} is already published; publish a new rule id",
                        r.rule_id
                    )));
                }
                if !r.system_id.is_empty() {
                    self.require_system("rule system", &r.system_id)?;
                }
            }
            EventBody::LegalHold(h) => {
                match (self.holds.get(&h.hold_id), h.released) {
                    (Some(r), false) => {
                        return Err(Refusal::precondition(format!(
                            "legal hold {} was already placed by entry {}",
                            h.hold_id, r.placed_at
                        )))
                    }
                    (None, true) => {
                        return Err(Refusal::precondition(format!(
                            "legal hold {} cannot be released: it was never placed",
                            h.hold_id
                        )))
                    }
                    (Some(r), true) if r.released_at.is_some() => {
                        return Err(Refusal::precondition(format!(
                            "legal hold {} is already released",
                            h.hold_id
                        )))
                    }
                    _ => {}
                }
                if !h.system_id.is_empty() {
                    self.require_system("held system", &h.system_id)?;
                }
            }
            // Any policy may follow any other: it applies from its entry on.
            EventBody::PolicyPublished(_) => {}
            EventBody::Custody(_)
            | EventBody::MaintenanceSession(_)
            | EventBody::CustodyAttestation(_) => {}
        }
        Ok(())
    }

    /// `apply` records a validated event logged at `index`.
    ///
    /// # Panics
    ///
    /// Never for an event that passed [`Registry::validate`]; a registry
    /// event that did not is a bug in the caller and is ignored.
    pub fn apply(&mut self, event: &Event, index: u64) {
        match &event.body {
            EventBody::PartyRegistered(p) => {
                self.parties.insert(
                    p.party_id.clone(),
                    PartyRecord {
                        kind: p.kind,
                        acts_on_behalf_of: p.acts_on_behalf_of.clone(),
                        registered_at: index,
                    },
                );
            }
            EventBody::KeyAdded(k) => {
                if let Ok(public_key) = VerifyingKey::from_bytes(&k.public_key) {
                    self.keys.insert(
                        key_id_of(&k.public_key),
                        KeyRecord {
                            party_id: k.party_id.clone(),
                            public_key,
                            valid_from: k.valid_from,
                            valid_to: k.valid_to,
                            added_at: index,
                            revoked_at: None,
                        },
                    );
                } else {
                    debug_assert!(false, "bug: KEY_ADDED with a bad key passed validation");
                }
            }
            EventBody::KeyRevoked(k) => {
                if let Some(r) = self.keys.get_mut(&k.key_id) {
                    r.revoked_at = Some(index);
                }
            }
            EventBody::SystemRegistered(r) => {
                self.systems.insert(
                    r.system_id.clone(),
                    SystemRecord {
                        system: r.clone(),
                        registered_at: index,
                    },
                );
            }
            EventBody::GrantIssued(g) => {
                self.grants.insert(
                    g.grant_id.clone(),
                    GrantRecord {
                        grant: g.clone(),
                        issued_at: index,
                        revoked_at: None,
                    },
                );
            }
            EventBody::GrantRevoked(g) => {
                if let Some(r) = self.grants.get_mut(&g.grant_id) {
                    r.revoked_at = Some(index);
                }
            }
            EventBody::RetentionRulePublished(r) => {
                self.rules.insert(
                    r.rule_id.clone(),
                    RuleRecord {
                        rule: r.clone(),
                        published_at: index,
                        published_time: event.event_time,
                    },
                );
            }
            EventBody::PolicyPublished(p) => self.policies.publish(index, *p),
            EventBody::LegalHold(h) => {
                if h.released {
                    if let Some(r) = self.holds.get_mut(&h.hold_id) {
                        r.released_at = Some(index);
                        r.released_time = Some(event.event_time);
                    }
                } else {
                    self.holds.insert(
                        h.hold_id.clone(),
                        HoldRecord {
                            hold: h.clone(),
                            placed_at: index,
                            placed_time: event.event_time,
                            released_at: None,
                            released_time: None,
                        },
                    );
                }
            }
            EventBody::Custody(_)
            | EventBody::MaintenanceSession(_)
            | EventBody::CustodyAttestation(_) => {}
        }
    }
}
