"""Which UIDs and numbers each document gets: UID planning, in one place.

A document's UIDs are either given, copied from a reference, or made here. Made UIDs are
derived from what identifies the document (its PDF, tags and reference) wherever a re-run
must name the same objects, so that the archive answers AlreadyStored instead of storing a
twin. Everything here is pure: what the archive already holds (the next free numbers, who
owns a study) is the planning stage's business (:mod:`pdf2dcm.plan`).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from .errors import TagError
from .tags import ValidatedTags, tag_name

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from .identity import ReferenceAttributes

_UID_NAMESPACE = uuid.UUID("5b1c2a64-3f0e-4a57-9d3c-7e2f4c1b8a90")
_SOP_INSTANCE_UID, _STUDY_UID, _SERIES_UID = 0x00080018, 0x0020000D, 0x0020000E
_INSTANCE_NUMBER = 0x00200013
_BATCH_NUMBERS = frozenset({0x00200011, 0x00200013})
"""SeriesNumber and InstanceNumber: assigned per batch from the server's state, so they
must not change a document's identity when the batch is sent again."""
_REFERENCE_KEYS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")


def new_uid(seed: str | None = None, role: str = "") -> str:
    """A UID under the UUID root 2.25: random, or derived from ``seed`` and ``role``.

    Derived UIDs make a repeated upload of the same content name the same objects, which
    the archive then recognises instead of storing twice.
    """
    if seed is None:
        # What pydicom's generate_uid(prefix=None) makes, without importing pydicom.
        return f"2.25.{uuid.uuid4().int}"
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, f'{role}|{seed}').int}"


def document_uids(
    tags: ValidatedTags,
    pdf_sha256: str,
    reference: Dataset | None,
    *,
    title: str | None,
    conversion_type: str,
) -> ValidatedTags:
    """Add UIDs derived from the PDF's content and the tags, where none are given.

    The same PDF sent with the same tags to the same parent is the same document: a re-run
    after a failure is answered ``AlreadyStored`` instead of creating a duplicate.
    """
    key = json.dumps(
        {
            "pdf": pdf_sha256,
            "tags": {f"{t:08X}": v for t, v in tags.items() if t not in _BATCH_NUMBERS},
            "reference": _reference_keys(reference),
            "title": title,
            "conversion": conversion_type,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    identified = dict(tags)
    identified.setdefault(_SOP_INSTANCE_UID, new_uid(key, "sop"))
    if _STUDY_UID not in identified and (reference is None or "StudyInstanceUID" not in reference):
        identified[_STUDY_UID] = new_uid(key, "study")
    if _SERIES_UID not in identified and (
        reference is None or "SeriesInstanceUID" not in reference
    ):
        identified[_SERIES_UID] = new_uid(key, "series")
    return identified


def series_seed(tags: ValidatedTags, reference: Dataset | None) -> str:
    """The seed of a ``--same-series`` batch's study and series UIDs.

    It depends on the tags given and the reference only, never on the files: sending the
    batch again with one more file names the same series, so only the new file is added.
    A different tag (a SeriesDescription, say) or an explicit SeriesInstanceUID starts
    another series on purpose.
    """
    return json.dumps(
        {
            "tags": {f"{t:08X}": v for t, v in tags.items() if t not in _BATCH_NUMBERS},
            "reference": _reference_keys(reference),
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def _reference_keys(reference: Dataset | None) -> dict[str, str]:
    """What of the reference names a document's UIDs ("" for each without a reference)."""
    if reference is None:
        return dict.fromkeys(_REFERENCE_KEYS, "")
    return {k: str(reference.get(k, "")) for k in _REFERENCE_KEYS}


def batch_tags(
    tags: ValidatedTags,
    count: int,
    *,
    same_series: bool = False,
    reference: ReferenceAttributes | None = None,
    uid_seed: str | None = None,
) -> list[ValidatedTags]:
    """The tags for each of ``count`` documents encoded together: the shared UIDs.

    Each document gets its own study and series unless ``same_series`` is set or the series
    comes from ``reference``; then all share one series. The shared UIDs are random, or
    derived from ``uid_seed`` so that a repeated batch names the same series. Identifiers
    that must be unique per object may not be given for more than one document. Numbers
    (SeriesNumber, InstanceNumber) depend on what the archive holds: see
    :class:`pdf2dcm.plan.Numbers`.
    """
    if count > 1:
        for tag in (_SOP_INSTANCE_UID, _INSTANCE_NUMBER):
            if tag in tags:
                raise TagError(
                    f"{tag_name(tag)} was given for {count} documents; each needs its own, "
                    "so encode them one at a time"
                )
    if not shares_series(same_series, reference):
        return [dict(tags) for _ in range(count)]
    shared = dict(tags)
    if reference is None:
        shared.setdefault(_STUDY_UID, new_uid(uid_seed, "study"))
    if reference is None or reference.level != "series":
        shared.setdefault(_SERIES_UID, new_uid(uid_seed, "series"))
    return [dict(shared) for _ in range(count)]


def shares_series(same_series: bool, reference: ReferenceAttributes | None) -> bool:
    """Whether the documents of a batch go into one series: asked for, or a series joined."""
    return same_series or (reference is not None and reference.level == "series")
