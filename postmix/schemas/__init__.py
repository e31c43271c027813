"""The contract every postmix stage shares."""

from postmix.schemas.features import FEATURES, kind_of_columns
from postmix.schemas.ids import content_hash, normalise_text, stable_id
from postmix.schemas.records import (
    RECORD_KINDS,
    ROLES,
    AspectRating,
    Completion,
    Message,
    PreferenceRecord,
    Rating,
    RLVRRecord,
    SFTRecord,
)
from postmix.schemas.reject import Reject
from postmix.schemas.report import StepReport

__all__ = [
    "FEATURES",
    "RECORD_KINDS",
    "ROLES",
    "AspectRating",
    "Completion",
    "Message",
    "PreferenceRecord",
    "RLVRRecord",
    "Rating",
    "Reject",
    "SFTRecord",
    "StepReport",
    "content_hash",
    "kind_of_columns",
    "normalise_text",
    "stable_id",
]
