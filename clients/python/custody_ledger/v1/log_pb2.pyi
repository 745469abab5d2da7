from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PartyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARTY_KIND_UNSPECIFIED: _ClassVar[PartyKind]
    PARTY_KIND_AGENCY: _ClassVar[PartyKind]
    PARTY_KIND_PRIME: _ClassVar[PartyKind]
    PARTY_KIND_SUBCONTRACTOR: _ClassVar[PartyKind]
    PARTY_KIND_PARTNER: _ClassVar[PartyKind]
    PARTY_KIND_DEVICE: _ClassVar[PartyKind]
    PARTY_KIND_SOFTWARE: _ClassVar[PartyKind]

class RetentionAuthority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETENTION_AUTHORITY_UNSPECIFIED: _ClassVar[RetentionAuthority]
    RETENTION_AUTHORITY_SORN: _ClassVar[RetentionAuthority]
    RETENTION_AUTHORITY_PIA: _ClassVar[RetentionAuthority]
    RETENTION_AUTHORITY_RECORDS_SCHEDULE: _ClassVar[RetentionAuthority]

class RetentionClock(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETENTION_CLOCK_UNSPECIFIED: _ClassVar[RetentionClock]
    RETENTION_CLOCK_CAPTURE: _ClassVar[RetentionClock]
    RETENTION_CLOCK_CUSTODY_START: _ClassVar[RetentionClock]

class Modality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODALITY_UNSPECIFIED: _ClassVar[Modality]
    MODALITY_FACE_IMAGE: _ClassVar[Modality]
    MODALITY_PLATE_IMAGE: _ClassVar[Modality]
    MODALITY_SCENE_IMAGE: _ClassVar[Modality]
    MODALITY_FACE_TEMPLATE: _ClassVar[Modality]
    MODALITY_OTHER: _ClassVar[Modality]

class SubjectClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBJECT_CLASS_UNSPECIFIED: _ClassVar[SubjectClass]
    SUBJECT_CLASS_CITIZEN: _ClassVar[SubjectClass]
    SUBJECT_CLASS_PERMANENT_RESIDENT: _ClassVar[SubjectClass]
    SUBJECT_CLASS_NON_CITIZEN: _ClassVar[SubjectClass]
    SUBJECT_CLASS_UNKNOWN: _ClassVar[SubjectClass]

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_BORDER_INSPECTION: _ClassVar[Purpose]
    PURPOSE_MAINTENANCE: _ClassVar[Purpose]
    PURPOSE_QUALITY_ASSURANCE: _ClassVar[Purpose]
    PURPOSE_INVESTIGATION: _ClassVar[Purpose]
    PURPOSE_BACKUP: _ClassVar[Purpose]
    PURPOSE_TRAINING: _ClassVar[Purpose]
    PURPOSE_RECORDS_RETENTION: _ClassVar[Purpose]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCESS: _ClassVar[Outcome]
    OUTCOME_FAILURE: _ClassVar[Outcome]

class DeleteMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETE_METHOD_UNSPECIFIED: _ClassVar[DeleteMethod]
    DELETE_METHOD_LOGICAL: _ClassVar[DeleteMethod]
    DELETE_METHOD_CRYPTO_ERASE: _ClassVar[DeleteMethod]
    DELETE_METHOD_OVERWRITE: _ClassVar[DeleteMethod]
    DELETE_METHOD_PHYSICAL_DESTRUCTION: _ClassVar[DeleteMethod]

class Relationship(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELATIONSHIP_UNSPECIFIED: _ClassVar[Relationship]
    RELATIONSHIP_DERIVED_FROM: _ClassVar[Relationship]
    RELATIONSHIP_COMPONENT_OF: _ClassVar[Relationship]

class CustodyActionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTODY_ACTION_KIND_UNSPECIFIED: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_CAPTURE: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_COPY: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_MOVE: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_RECEIPT: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_ACCESS: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_DERIVE: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_DELETE: _ClassVar[CustodyActionKind]
    CUSTODY_ACTION_KIND_USE: _ClassVar[CustodyActionKind]
PARTY_KIND_UNSPECIFIED: PartyKind
PARTY_KIND_AGENCY: PartyKind
PARTY_KIND_PRIME: PartyKind
PARTY_KIND_SUBCONTRACTOR: PartyKind
PARTY_KIND_PARTNER: PartyKind
PARTY_KIND_DEVICE: PartyKind
PARTY_KIND_SOFTWARE: PartyKind
RETENTION_AUTHORITY_UNSPECIFIED: RetentionAuthority
RETENTION_AUTHORITY_SORN: RetentionAuthority
RETENTION_AUTHORITY_PIA: RetentionAuthority
RETENTION_AUTHORITY_RECORDS_SCHEDULE: RetentionAuthority
RETENTION_CLOCK_UNSPECIFIED: RetentionClock
RETENTION_CLOCK_CAPTURE: RetentionClock
RETENTION_CLOCK_CUSTODY_START: RetentionClock
MODALITY_UNSPECIFIED: Modality
MODALITY_FACE_IMAGE: Modality
MODALITY_PLATE_IMAGE: Modality
MODALITY_SCENE_IMAGE: Modality
MODALITY_FACE_TEMPLATE: Modality
MODALITY_OTHER: Modality
SUBJECT_CLASS_UNSPECIFIED: SubjectClass
SUBJECT_CLASS_CITIZEN: SubjectClass
SUBJECT_CLASS_PERMANENT_RESIDENT: SubjectClass
SUBJECT_CLASS_NON_CITIZEN: SubjectClass
SUBJECT_CLASS_UNKNOWN: SubjectClass
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_BORDER_INSPECTION: Purpose
PURPOSE_MAINTENANCE: Purpose
PURPOSE_QUALITY_ASSURANCE: Purpose
PURPOSE_INVESTIGATION: Purpose
PURPOSE_BACKUP: Purpose
PURPOSE_TRAINING: Purpose
PURPOSE_RECORDS_RETENTION: Purpose
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCESS: Outcome
OUTCOME_FAILURE: Outcome
DELETE_METHOD_UNSPECIFIED: DeleteMethod
DELETE_METHOD_LOGICAL: DeleteMethod
DELETE_METHOD_CRYPTO_ERASE: DeleteMethod
DELETE_METHOD_OVERWRITE: DeleteMethod
DELETE_METHOD_PHYSICAL_DESTRUCTION: DeleteMethod
RELATIONSHIP_UNSPECIFIED: Relationship
RELATIONSHIP_DERIVED_FROM: Relationship
RELATIONSHIP_COMPONENT_OF: Relationship
CUSTODY_ACTION_KIND_UNSPECIFIED: CustodyActionKind
CUSTODY_ACTION_KIND_CAPTURE: CustodyActionKind
CUSTODY_ACTION_KIND_COPY: CustodyActionKind
CUSTODY_ACTION_KIND_MOVE: CustodyActionKind
CUSTODY_ACTION_KIND_RECEIPT: CustodyActionKind
CUSTODY_ACTION_KIND_ACCESS: CustodyActionKind
CUSTODY_ACTION_KIND_DERIVE: CustodyActionKind
CUSTODY_ACTION_KIND_DELETE: CustodyActionKind
CUSTODY_ACTION_KIND_USE: CustodyActionKind

class LogEntry(_message.Message):
    __slots__ = ("event", "genesis", "integrated_time_unix_nanos")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    GENESIS_FIELD_NUMBER: _ClassVar[int]
    INTEGRATED_TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    event: SignedEvent
    genesis: Genesis
    integrated_time_unix_nanos: int
    def __init__(self, event: _Optional[_Union[SignedEvent, _Mapping]] = ..., genesis: _Optional[_Union[Genesis, _Mapping]] = ..., integrated_time_unix_nanos: _Optional[int] = ...) -> None: ...

class Genesis(_message.Message):
    __slots__ = ("origin", "owner_party_id", "owner_public_key")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    OWNER_PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    origin: str
    owner_party_id: str
    owner_public_key: bytes
    def __init__(self, origin: _Optional[str] = ..., owner_party_id: _Optional[str] = ..., owner_public_key: _Optional[bytes] = ...) -> None: ...

class SignedEvent(_message.Message):
    __slots__ = ("payload_type", "body", "signatures")
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    payload_type: str
    body: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[EventSignature]
    def __init__(self, payload_type: _Optional[str] = ..., body: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[EventSignature, _Mapping]]] = ...) -> None: ...

class EventSignature(_message.Message):
    __slots__ = ("key_id", "sig")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIG_FIELD_NUMBER: _ClassVar[int]
    key_id: bytes
    sig: bytes
    def __init__(self, key_id: _Optional[bytes] = ..., sig: _Optional[bytes] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "event_time_unix_nanos", "reporter", "reporter_seq", "log_origin", "party_registered", "key_added", "key_revoked", "system_registered", "grant_issued", "grant_revoked", "retention_rule_published", "legal_hold", "policy_published", "custody", "maintenance_session", "custody_attestation")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    REPORTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    PARTY_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    KEY_ADDED_FIELD_NUMBER: _ClassVar[int]
    KEY_REVOKED_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    GRANT_ISSUED_FIELD_NUMBER: _ClassVar[int]
    GRANT_REVOKED_FIELD_NUMBER: _ClassVar[int]
    RETENTION_RULE_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    POLICY_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    CUSTODY_FIELD_NUMBER: _ClassVar[int]
    MAINTENANCE_SESSION_FIELD_NUMBER: _ClassVar[int]
    CUSTODY_ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_time_unix_nanos: int
    reporter: str
    reporter_seq: int
    log_origin: str
    party_registered: PartyRegistered
    key_added: KeyAdded
    key_revoked: KeyRevoked
    system_registered: SystemRegistered
    grant_issued: GrantIssued
    grant_revoked: GrantRevoked
    retention_rule_published: RetentionRulePublished
    legal_hold: LegalHold
    policy_published: PolicyPublished
    custody: CustodyAction
    maintenance_session: MaintenanceSession
    custody_attestation: CustodyAttestation
    def __init__(self, event_id: _Optional[str] = ..., event_time_unix_nanos: _Optional[int] = ..., reporter: _Optional[str] = ..., reporter_seq: _Optional[int] = ..., log_origin: _Optional[str] = ..., party_registered: _Optional[_Union[PartyRegistered, _Mapping]] = ..., key_added: _Optional[_Union[KeyAdded, _Mapping]] = ..., key_revoked: _Optional[_Union[KeyRevoked, _Mapping]] = ..., system_registered: _Optional[_Union[SystemRegistered, _Mapping]] = ..., grant_issued: _Optional[_Union[GrantIssued, _Mapping]] = ..., grant_revoked: _Optional[_Union[GrantRevoked, _Mapping]] = ..., retention_rule_published: _Optional[_Union[RetentionRulePublished, _Mapping]] = ..., legal_hold: _Optional[_Union[LegalHold, _Mapping]] = ..., policy_published: _Optional[_Union[PolicyPublished, _Mapping]] = ..., custody: _Optional[_Union[CustodyAction, _Mapping]] = ..., maintenance_session: _Optional[_Union[MaintenanceSession, _Mapping]] = ..., custody_attestation: _Optional[_Union[CustodyAttestation, _Mapping]] = ...) -> None: ...

class PartyRegistered(_message.Message):
    __slots__ = ("party_id", "kind", "acts_on_behalf_of")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTS_ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    kind: PartyKind
    acts_on_behalf_of: str
    def __init__(self, party_id: _Optional[str] = ..., kind: _Optional[_Union[PartyKind, str]] = ..., acts_on_behalf_of: _Optional[str] = ...) -> None: ...

class KeyAdded(_message.Message):
    __slots__ = ("party_id", "public_key", "valid_from_unix_nanos", "valid_to_unix_nanos")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    public_key: bytes
    valid_from_unix_nanos: int
    valid_to_unix_nanos: int
    def __init__(self, party_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., valid_from_unix_nanos: _Optional[int] = ..., valid_to_unix_nanos: _Optional[int] = ...) -> None: ...

class KeyRevoked(_message.Message):
    __slots__ = ("party_id", "key_id")
    PARTY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    party_id: str
    key_id: bytes
    def __init__(self, party_id: _Optional[str] = ..., key_id: _Optional[bytes] = ...) -> None: ...

class SystemRegistered(_message.Message):
    __slots__ = ("system_id", "owner_party", "inside_boundary", "accredited", "encrypted_at_rest", "removable_media")
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_PARTY_FIELD_NUMBER: _ClassVar[int]
    INSIDE_BOUNDARY_FIELD_NUMBER: _ClassVar[int]
    ACCREDITED_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_AT_REST_FIELD_NUMBER: _ClassVar[int]
    REMOVABLE_MEDIA_FIELD_NUMBER: _ClassVar[int]
    system_id: str
    owner_party: str
    inside_boundary: bool
    accredited: bool
    encrypted_at_rest: bool
    removable_media: bool
    def __init__(self, system_id: _Optional[str] = ..., owner_party: _Optional[str] = ..., inside_boundary: bool = ..., accredited: bool = ..., encrypted_at_rest: bool = ..., removable_media: bool = ...) -> None: ...

class GrantIssued(_message.Message):
    __slots__ = ("grant_id", "grantee", "contract_ref", "actions", "purposes", "systems", "modalities", "subject_classes", "max_onward_transfers", "valid_from_unix_nanos", "valid_to_unix_nanos")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_REF_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CLASSES_FIELD_NUMBER: _ClassVar[int]
    MAX_ONWARD_TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    grantee: str
    contract_ref: str
    actions: _containers.RepeatedScalarFieldContainer[CustodyActionKind]
    purposes: _containers.RepeatedScalarFieldContainer[Purpose]
    systems: _containers.RepeatedScalarFieldContainer[str]
    modalities: _containers.RepeatedScalarFieldContainer[Modality]
    subject_classes: _containers.RepeatedScalarFieldContainer[SubjectClass]
    max_onward_transfers: int
    valid_from_unix_nanos: int
    valid_to_unix_nanos: int
    def __init__(self, grant_id: _Optional[str] = ..., grantee: _Optional[str] = ..., contract_ref: _Optional[str] = ..., actions: _Optional[_Iterable[_Union[CustodyActionKind, str]]] = ..., purposes: _Optional[_Iterable[_Union[Purpose, str]]] = ..., systems: _Optional[_Iterable[str]] = ..., modalities: _Optional[_Iterable[_Union[Modality, str]]] = ..., subject_classes: _Optional[_Iterable[_Union[SubjectClass, str]]] = ..., max_onward_transfers: _Optional[int] = ..., valid_from_unix_nanos: _Optional[int] = ..., valid_to_unix_nanos: _Optional[int] = ...) -> None: ...

class GrantRevoked(_message.Message):
    __slots__ = ("grant_id",)
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    def __init__(self, grant_id: _Optional[str] = ...) -> None: ...

class RetentionRulePublished(_message.Message):
    __slots__ = ("rule_id", "authority", "authority_ref", "modality", "subject_class", "system_id", "max_age_nanos", "clock")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_REF_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CLASS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_NANOS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    authority: RetentionAuthority
    authority_ref: str
    modality: Modality
    subject_class: SubjectClass
    system_id: str
    max_age_nanos: int
    clock: RetentionClock
    def __init__(self, rule_id: _Optional[str] = ..., authority: _Optional[_Union[RetentionAuthority, str]] = ..., authority_ref: _Optional[str] = ..., modality: _Optional[_Union[Modality, str]] = ..., subject_class: _Optional[_Union[SubjectClass, str]] = ..., system_id: _Optional[str] = ..., max_age_nanos: _Optional[int] = ..., clock: _Optional[_Union[RetentionClock, str]] = ...) -> None: ...

class LegalHold(_message.Message):
    __slots__ = ("hold_id", "assets", "system_id", "released")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    assets: AssetRef
    system_id: str
    released: bool
    def __init__(self, hold_id: _Optional[str] = ..., assets: _Optional[_Union[AssetRef, _Mapping]] = ..., system_id: _Optional[str] = ..., released: bool = ...) -> None: ...

class PolicyPublished(_message.Message):
    __slots__ = ("receipt_window_nanos", "reporting_deadline_nanos", "attestation_period_nanos")
    RECEIPT_WINDOW_NANOS_FIELD_NUMBER: _ClassVar[int]
    REPORTING_DEADLINE_NANOS_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_PERIOD_NANOS_FIELD_NUMBER: _ClassVar[int]
    receipt_window_nanos: int
    reporting_deadline_nanos: int
    attestation_period_nanos: int
    def __init__(self, receipt_window_nanos: _Optional[int] = ..., reporting_deadline_nanos: _Optional[int] = ..., attestation_period_nanos: _Optional[int] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ("root", "count")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    root: bytes
    count: int
    def __init__(self, root: _Optional[bytes] = ..., count: _Optional[int] = ...) -> None: ...

class AssetRef(_message.Message):
    __slots__ = ("digest", "manifest")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    manifest: Manifest
    def __init__(self, digest: _Optional[bytes] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ...) -> None: ...

class CaptureContext(_message.Message):
    __slots__ = ("port", "lane", "device")
    PORT_FIELD_NUMBER: _ClassVar[int]
    LANE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    port: str
    lane: str
    device: str
    def __init__(self, port: _Optional[str] = ..., lane: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class Parent(_message.Message):
    __slots__ = ("digest", "relationship")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_FIELD_NUMBER: _ClassVar[int]
    digest: bytes
    relationship: Relationship
    def __init__(self, digest: _Optional[bytes] = ..., relationship: _Optional[_Union[Relationship, str]] = ...) -> None: ...

class CustodyAction(_message.Message):
    __slots__ = ("action", "actor", "on_behalf_of", "asset_digest", "from_system", "to_system", "grant_id", "manifest", "modality", "subject_class", "capture", "parents", "purpose", "outcome", "receipt_of", "delete_method", "attested_by")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    ASSET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FROM_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    TO_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CLASS_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_OF_FIELD_NUMBER: _ClassVar[int]
    DELETE_METHOD_FIELD_NUMBER: _ClassVar[int]
    ATTESTED_BY_FIELD_NUMBER: _ClassVar[int]
    action: CustodyActionKind
    actor: str
    on_behalf_of: str
    asset_digest: bytes
    from_system: str
    to_system: str
    grant_id: str
    manifest: Manifest
    modality: Modality
    subject_class: SubjectClass
    capture: CaptureContext
    parents: _containers.RepeatedCompositeFieldContainer[Parent]
    purpose: Purpose
    outcome: Outcome
    receipt_of: int
    delete_method: DeleteMethod
    attested_by: str
    def __init__(self, action: _Optional[_Union[CustodyActionKind, str]] = ..., actor: _Optional[str] = ..., on_behalf_of: _Optional[str] = ..., asset_digest: _Optional[bytes] = ..., from_system: _Optional[str] = ..., to_system: _Optional[str] = ..., grant_id: _Optional[str] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ..., modality: _Optional[_Union[Modality, str]] = ..., subject_class: _Optional[_Union[SubjectClass, str]] = ..., capture: _Optional[_Union[CaptureContext, _Mapping]] = ..., parents: _Optional[_Iterable[_Union[Parent, _Mapping]]] = ..., purpose: _Optional[_Union[Purpose, str]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., receipt_of: _Optional[int] = ..., delete_method: _Optional[_Union[DeleteMethod, str]] = ..., attested_by: _Optional[str] = ...) -> None: ...

class MaintenanceSession(_message.Message):
    __slots__ = ("session_id", "actor", "on_behalf_of", "system_id", "grant_id", "purpose", "start_unix_nanos", "end_unix_nanos")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    END_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    actor: str
    on_behalf_of: str
    system_id: str
    grant_id: str
    purpose: Purpose
    start_unix_nanos: int
    end_unix_nanos: int
    def __init__(self, session_id: _Optional[str] = ..., actor: _Optional[str] = ..., on_behalf_of: _Optional[str] = ..., system_id: _Optional[str] = ..., grant_id: _Optional[str] = ..., purpose: _Optional[_Union[Purpose, str]] = ..., start_unix_nanos: _Optional[int] = ..., end_unix_nanos: _Optional[int] = ...) -> None: ...

class CustodyAttestation(_message.Message):
    __slots__ = ("system_id", "holdings")
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    system_id: str
    holdings: Manifest
    def __init__(self, system_id: _Optional[str] = ..., holdings: _Optional[_Union[Manifest, _Mapping]] = ...) -> None: ...

class AppendRequest(_message.Message):
    __slots__ = ("event", "wait_for_checkpoint")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    event: SignedEvent
    wait_for_checkpoint: bool
    def __init__(self, event: _Optional[_Union[SignedEvent, _Mapping]] = ..., wait_for_checkpoint: bool = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("index", "duplicate", "checkpoint", "inclusion_proof", "error_code", "error_message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    duplicate: bool
    checkpoint: bytes
    inclusion_proof: _containers.RepeatedScalarFieldContainer[bytes]
    error_code: int
    error_message: str
    def __init__(self, index: _Optional[int] = ..., duplicate: bool = ..., checkpoint: _Optional[bytes] = ..., inclusion_proof: _Optional[_Iterable[bytes]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("tree_size",)
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    def __init__(self, tree_size: _Optional[int] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: bytes
    def __init__(self, checkpoint: _Optional[bytes] = ...) -> None: ...

class GetEntriesRequest(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class GetEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, entries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("index", "tree_size")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("index", "tree_size", "proof", "entry", "checkpoint")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    entry: bytes
    checkpoint: bytes
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ..., entry: _Optional[bytes] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("old_size", "new_size")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("old_size", "new_size", "proof")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PutManifestRequest(_message.Message):
    __slots__ = ("members", "expected_root")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ROOT_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedScalarFieldContainer[bytes]
    expected_root: bytes
    def __init__(self, members: _Optional[_Iterable[bytes]] = ..., expected_root: _Optional[bytes] = ...) -> None: ...

class PutManifestResponse(_message.Message):
    __slots__ = ("manifest",)
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ...) -> None: ...

class GetManifestRequest(_message.Message):
    __slots__ = ("root", "start", "limit", "asset")
    ROOT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    root: bytes
    start: int
    limit: int
    asset: bytes
    def __init__(self, root: _Optional[bytes] = ..., start: _Optional[int] = ..., limit: _Optional[int] = ..., asset: _Optional[bytes] = ...) -> None: ...

class GetManifestResponse(_message.Message):
    __slots__ = ("manifest", "members", "membership")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    manifest: Manifest
    members: _containers.RepeatedScalarFieldContainer[bytes]
    membership: MembershipProof
    def __init__(self, manifest: _Optional[_Union[Manifest, _Mapping]] = ..., members: _Optional[_Iterable[bytes]] = ..., membership: _Optional[_Union[MembershipProof, _Mapping]] = ...) -> None: ...

class MembershipProof(_message.Message):
    __slots__ = ("manifest_root", "count", "asset", "index", "proof")
    MANIFEST_ROOT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    manifest_root: bytes
    count: int
    asset: bytes
    index: int
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, manifest_root: _Optional[bytes] = ..., count: _Optional[int] = ..., asset: _Optional[bytes] = ..., index: _Optional[int] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ProvenEntry(_message.Message):
    __slots__ = ("index", "entry", "proof")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    index: int
    entry: bytes
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, index: _Optional[int] = ..., entry: _Optional[bytes] = ..., proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("checkpoint", "tree_size", "entries", "registry", "memberships")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    checkpoint: bytes
    tree_size: int
    entries: _containers.RepeatedCompositeFieldContainer[ProvenEntry]
    registry: _containers.RepeatedCompositeFieldContainer[ProvenEntry]
    memberships: _containers.RepeatedCompositeFieldContainer[MembershipProof]
    def __init__(self, checkpoint: _Optional[bytes] = ..., tree_size: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[ProvenEntry, _Mapping]]] = ..., registry: _Optional[_Iterable[_Union[ProvenEntry, _Mapping]]] = ..., memberships: _Optional[_Iterable[_Union[MembershipProof, _Mapping]]] = ...) -> None: ...

class CustodyInterval(_message.Message):
    __slots__ = ("asset", "party", "system_id", "from_unix_nanos", "to_unix_nanos", "opened_by", "closed_by", "modality", "subject_class")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    TO_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    OPENED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CLASS_FIELD_NUMBER: _ClassVar[int]
    asset: bytes
    party: str
    system_id: str
    from_unix_nanos: int
    to_unix_nanos: int
    opened_by: int
    closed_by: int
    modality: Modality
    subject_class: SubjectClass
    def __init__(self, asset: _Optional[bytes] = ..., party: _Optional[str] = ..., system_id: _Optional[str] = ..., from_unix_nanos: _Optional[int] = ..., to_unix_nanos: _Optional[int] = ..., opened_by: _Optional[int] = ..., closed_by: _Optional[int] = ..., modality: _Optional[_Union[Modality, str]] = ..., subject_class: _Optional[_Union[SubjectClass, str]] = ...) -> None: ...

class AssetHistoryRequest(_message.Message):
    __slots__ = ("asset", "page_size", "page_token")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    asset: bytes
    page_size: int
    page_token: bytes
    def __init__(self, asset: _Optional[bytes] = ..., page_size: _Optional[int] = ..., page_token: _Optional[bytes] = ...) -> None: ...

class AssetHistoryResponse(_message.Message):
    __slots__ = ("indexes", "evidence", "next_page_token")
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    indexes: _containers.RepeatedScalarFieldContainer[int]
    evidence: Evidence
    next_page_token: bytes
    def __init__(self, indexes: _Optional[_Iterable[int]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class HoldersAtRequest(_message.Message):
    __slots__ = ("asset", "time_unix_nanos", "tree_size")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    asset: bytes
    time_unix_nanos: int
    tree_size: int
    def __init__(self, asset: _Optional[bytes] = ..., time_unix_nanos: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class HoldersAtResponse(_message.Message):
    __slots__ = ("intervals", "evidence")
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    intervals: _containers.RepeatedCompositeFieldContainer[CustodyInterval]
    evidence: Evidence
    def __init__(self, intervals: _Optional[_Iterable[_Union[CustodyInterval, _Mapping]]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class HoldingsRequest(_message.Message):
    __slots__ = ("party", "system_id", "time_unix_nanos", "page_size", "page_token")
    PARTY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    party: str
    system_id: str
    time_unix_nanos: int
    page_size: int
    page_token: bytes
    def __init__(self, party: _Optional[str] = ..., system_id: _Optional[str] = ..., time_unix_nanos: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[bytes] = ...) -> None: ...

class HoldingsResponse(_message.Message):
    __slots__ = ("intervals", "evidence", "next_page_token")
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    intervals: _containers.RepeatedCompositeFieldContainer[CustodyInterval]
    evidence: Evidence
    next_page_token: bytes
    def __init__(self, intervals: _Optional[_Iterable[_Union[CustodyInterval, _Mapping]]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class BreachScopeRequest(_message.Message):
    __slots__ = ("system_id", "from_unix_nanos", "to_unix_nanos", "page_size", "page_token")
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    TO_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    system_id: str
    from_unix_nanos: int
    to_unix_nanos: int
    page_size: int
    page_token: bytes
    def __init__(self, system_id: _Optional[str] = ..., from_unix_nanos: _Optional[int] = ..., to_unix_nanos: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[bytes] = ...) -> None: ...

class ScopeCount(_message.Message):
    __slots__ = ("modality", "subject_class", "count")
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CLASS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    modality: Modality
    subject_class: SubjectClass
    count: int
    def __init__(self, modality: _Optional[_Union[Modality, str]] = ..., subject_class: _Optional[_Union[SubjectClass, str]] = ..., count: _Optional[int] = ...) -> None: ...

class BreachScopeResponse(_message.Message):
    __slots__ = ("asset_count", "by_class", "intervals", "evidence", "next_page_token")
    ASSET_COUNT_FIELD_NUMBER: _ClassVar[int]
    BY_CLASS_FIELD_NUMBER: _ClassVar[int]
    INTERVALS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    asset_count: int
    by_class: _containers.RepeatedCompositeFieldContainer[ScopeCount]
    intervals: _containers.RepeatedCompositeFieldContainer[CustodyInterval]
    evidence: Evidence
    next_page_token: bytes
    def __init__(self, asset_count: _Optional[int] = ..., by_class: _Optional[_Iterable[_Union[ScopeCount, _Mapping]]] = ..., intervals: _Optional[_Iterable[_Union[CustodyInterval, _Mapping]]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("rule", "entries", "party", "system_id", "asset", "grant_id", "retention_rule_id", "at_unix_nanos", "detail", "id", "observed_by", "observed_on_system")
    RULE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    RETENTION_RULE_ID_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_BY_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_ON_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    rule: str
    entries: _containers.RepeatedScalarFieldContainer[int]
    party: str
    system_id: str
    asset: bytes
    grant_id: str
    retention_rule_id: str
    at_unix_nanos: int
    detail: str
    id: str
    observed_by: str
    observed_on_system: str
    def __init__(self, rule: _Optional[str] = ..., entries: _Optional[_Iterable[int]] = ..., party: _Optional[str] = ..., system_id: _Optional[str] = ..., asset: _Optional[bytes] = ..., grant_id: _Optional[str] = ..., retention_rule_id: _Optional[str] = ..., at_unix_nanos: _Optional[int] = ..., detail: _Optional[str] = ..., id: _Optional[str] = ..., observed_by: _Optional[str] = ..., observed_on_system: _Optional[str] = ...) -> None: ...

class FindingsRequest(_message.Message):
    __slots__ = ("rule", "party", "system_id", "from_unix_nanos", "to_unix_nanos", "as_of_unix_nanos", "page_size", "page_token")
    RULE_FIELD_NUMBER: _ClassVar[int]
    PARTY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    TO_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rule: str
    party: str
    system_id: str
    from_unix_nanos: int
    to_unix_nanos: int
    as_of_unix_nanos: int
    page_size: int
    page_token: bytes
    def __init__(self, rule: _Optional[str] = ..., party: _Optional[str] = ..., system_id: _Optional[str] = ..., from_unix_nanos: _Optional[int] = ..., to_unix_nanos: _Optional[int] = ..., as_of_unix_nanos: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[bytes] = ...) -> None: ...

class FindingsResponse(_message.Message):
    __slots__ = ("findings", "total", "evidence", "next_page_token")
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    total: int
    evidence: Evidence
    next_page_token: bytes
    def __init__(self, findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., total: _Optional[int] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class ExportEvidenceRequest(_message.Message):
    __slots__ = ("history", "holders", "holdings", "breach_scope", "finding")
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    BREACH_SCOPE_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    history: AssetHistoryRequest
    holders: HoldersAtRequest
    holdings: HoldingsRequest
    breach_scope: BreachScopeRequest
    finding: FindingRef
    def __init__(self, history: _Optional[_Union[AssetHistoryRequest, _Mapping]] = ..., holders: _Optional[_Union[HoldersAtRequest, _Mapping]] = ..., holdings: _Optional[_Union[HoldingsRequest, _Mapping]] = ..., breach_scope: _Optional[_Union[BreachScopeRequest, _Mapping]] = ..., finding: _Optional[_Union[FindingRef, _Mapping]] = ...) -> None: ...

class FindingRef(_message.Message):
    __slots__ = ("id", "as_of_unix_nanos")
    ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    id: str
    as_of_unix_nanos: int
    def __init__(self, id: _Optional[str] = ..., as_of_unix_nanos: _Optional[int] = ...) -> None: ...

class ExportEvidenceResponse(_message.Message):
    __slots__ = ("bundle", "file_name")
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    file_name: str
    def __init__(self, bundle: _Optional[bytes] = ..., file_name: _Optional[str] = ...) -> None: ...
