//! Answer rows: the custody intervals and history events an answer lists,
//! in the typed form the checks work on.

use custody_domain::{Digest, Interval, Modality, SubjectClass, Timestamp};
use custody_proto::{decode_entry, decode_event, v1, Entry};

use crate::EvidenceError;

/// `IntervalRow` is one custody interval of an answer: `asset` rested on
/// `system`, held by `party`, from `from` until `to` (`None` while open as
/// of the checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IntervalRow {
    /// The asset.
    pub asset: Digest,
    /// The holder: the system's registered owner.
    pub party: String,
    /// Where the asset rested.
    pub system: String,
    /// Event time of the opening entry.
    pub from: Timestamp,
    /// Event time of the closing entry, if it closed before the checkpoint.
    pub to: Option<Timestamp>,
    /// Log index of the opening entry.
    pub opened_by: u64,
    /// Log index of the closing entry, if any.
    pub closed_by: Option<u64>,
    /// The asset's modality, where the bundle proves it.
    pub modality: Option<Modality>,
    /// The asset's subject class, where the bundle proves it.
    pub subject_class: Option<SubjectClass>,
}

impl IntervalRow {
    /// `from_interval` is the row of a custody interval as the server's
    /// indexes hold it.
    pub fn from_interval(i: &Interval) -> Self {
        Self {
            asset: i.asset,
            party: i.party.clone(),
            system: i.system.clone(),
            from: i.from,
            to: i.to,
            opened_by: i.opened_by,
            closed_by: i.to.and(i.closed_by),
            modality: i.modality,
            subject_class: i.subject_class,
        }
    }

    /// `from_proto` is the row of a wire interval (`to_unix_nanos` 0 while
    /// open, code 0 for an unknown modality or class).
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Answer`] if the asset is not 32 bytes.
    pub fn from_proto(i: &v1::CustodyInterval) -> Result<Self, EvidenceError> {
        let asset: Digest = i.asset.as_slice().try_into().map_err(|_| {
            EvidenceError::answer(format!(
                "an interval's asset is {} bytes, not 32",
                i.asset.len()
            ))
        })?;
        let open = i.to_unix_nanos == 0;
        Ok(Self {
            asset,
            party: i.party.clone(),
            system: i.system_id.clone(),
            from: i.from_unix_nanos,
            to: (!open).then_some(i.to_unix_nanos),
            opened_by: i.opened_by,
            closed_by: (!open).then_some(i.closed_by),
            modality: u8::try_from(i.modality).ok().and_then(Modality::from_code),
            subject_class: u8::try_from(i.subject_class)
                .ok()
                .and_then(SubjectClass::from_code),
        })
    }

    /// `holds_at` is whether the row covers time `t`: `from <= t < to`.
    pub fn holds_at(&self, t: Timestamp) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }

    /// `overlaps` is whether the row covers any moment of the closed window
    /// `[a, b]`.
    pub fn overlaps(&self, a: Timestamp, b: Timestamp) -> bool {
        self.from <= b && self.to.is_none_or(|to| to > a)
    }

    /// `class` is the row's (modality, subject class) pair.
    pub fn class(&self) -> AssetClass {
        (self.modality, self.subject_class)
    }
}

/// `AssetClass` is an asset's modality and subject class; `None` where the
/// evidence does not establish them.
pub type AssetClass = (Option<Modality>, Option<SubjectClass>);

/// `ClassCount` is how many distinct assets of one class a breach scope
/// found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassCount {
    /// The modality, or `None` where no entry of the bundle proves it.
    pub modality: Option<Modality>,
    /// The subject class, or `None` where no entry proves it.
    pub subject_class: Option<SubjectClass>,
    /// Distinct assets of that class.
    pub count: u64,
}

/// `HistoryEvent` is one event of an asset's history, as its log entry
/// states it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryEvent {
    /// Log index.
    pub index: u64,
    /// Event kind, e.g. `CAPTURE` or `RECEIPT`.
    pub kind: String,
    /// When it happened, per the reporter.
    pub event_time: Timestamp,
    /// When the log integrated it.
    pub integrated_time: Timestamp,
    /// The signing party.
    pub reporter: String,
    /// The reporter's event id.
    pub event_id: String,
}

impl HistoryEvent {
    /// `from_entry` is the history row of log entry `index` with bytes
    /// `entry`; the exporter and the verifier both derive rows this way.
    ///
    /// # Errors
    ///
    /// [`EvidenceError::Entry`] if the entry is not a signed event.
    pub fn from_entry(index: u64, entry: &[u8]) -> Result<Self, EvidenceError> {
        let Ok(Entry::Event {
            envelope,
            integrated_time,
        }) = decode_entry(entry)
        else {
            return Err(EvidenceError::entry(index, "not a signed event"));
        };
        let e = decode_event(&envelope.body).map_err(|e| EvidenceError::entry(index, e.message))?;
        Ok(Self {
            index,
            kind: e.body.code().to_owned(),
            event_time: e.event_time,
            integrated_time,
            reporter: e.reporter,
            event_id: e.event_id,
        })
    }
}
