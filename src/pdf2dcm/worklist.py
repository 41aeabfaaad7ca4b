"""What a scheduled procedure from a Modality Worklist gives the document made for it.

Pure: it reads a :class:`~pdf2dcm.dimse.WorklistItem` (answered over DIMSE, decoded in its
own character set) and returns the same kind of reference as the other ways to join a
study: the patient and the study to copy, in the answer's character set. It also carries
the order as IHE Scheduled Workflow expects of an object made for scheduled work: the
RequestAttributesSequence (one item per scheduled step), the accession number's issuer,
the ProcedureCodeSequence from the RequestedProcedureCodeSequence, and the StudyID from the
RequestedProcedureID.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import TYPE_CHECKING

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .dicom import reference_from_header
from .errors import InputError
from .identity import ReferenceAttributes
from .imports import load_pydicom

if TYPE_CHECKING:
    from .dimse import WorklistItem

COPIED = {
    "PatientName": "PatientName",
    "PatientID": "PatientID",
    "IssuerOfPatientID": "IssuerOfPatientID",
    "PatientBirthDate": "PatientBirthDate",
    "PatientSex": "PatientSex",
    "StudyInstanceUID": "StudyInstanceUID",
    "AccessionNumber": "AccessionNumber",
    "IssuerOfAccessionNumberSequence": "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianName": "ReferringPhysicianName",
    "RequestedProcedureDescription": "StudyDescription",
    "RequestedProcedureID": "StudyID",
    "RequestedProcedureCodeSequence": "ProcedureCodeSequence",
}
"""What a scheduled procedure gives the document: worklist keyword -> document keyword, as
the Orthanc route copies it, plus the order's identifiers."""
_ORDER_KEYWORDS = (
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "RequestedProcedureID",
)
_STEP_KEYWORDS = (
    "ScheduledProcedureStepDescription",
    "ScheduledProtocolCodeSequence",
    "ScheduledProcedureStepID",
)


def worklist_reference(item: WorklistItem, source: str) -> ReferenceAttributes:
    """The patient, study and order of one scheduled procedure, for the encoder.

    ``source`` names where it came from in messages (``the worklist of WL@ris:104``). Values
    keep the answer's character set, so the document is written in it when every value
    fits and copied names stay byte-identical.

    Raises
    ------
    InputError
        The procedure has no StudyInstanceUID, or a value the document cannot hold.
    """
    answer = item.dataset
    header = Dataset()
    if item.character_set:
        terms = list(item.character_set)
        header.SpecificCharacterSet = terms[0] if len(terms) == 1 else terms
    for source_keyword, keyword in COPIED.items():
        if source_keyword in answer and answer[source_keyword].value not in (None, ""):
            element = _without_empty(answer[source_keyword])
            header[keyword] = element if keyword == source_keyword else _renamed(element, keyword)
    if "StudyInstanceUID" not in header:
        raise InputError(f"the scheduled procedure from {source} has no StudyInstanceUID")
    reference = reference_from_header(header, "study", source)
    dataset = reference.dataset
    requests = Sequence([_request_item(answer, step) for step in item.steps or [Dataset()]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset.RequestAttributesSequence = requests
    return dataclasses.replace(reference, dataset=dataset)


def _renamed(element: DataElement, keyword: str) -> DataElement:
    load_pydicom()
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        raise AssertionError(keyword)
    return DataElement(tag, dictionary_VR(tag), element.value)


def _request_item(answer: Dataset, step: Dataset) -> Dataset:
    """One Request Attributes Macro item (PS3.3 Table 10-9) for one scheduled step."""
    item = Dataset()
    for keyword in _ORDER_KEYWORDS:
        if keyword in answer and answer[keyword].value not in (None, ""):
            item[keyword] = _without_empty(answer[keyword])
    for keyword in _STEP_KEYWORDS:
        if keyword in step and step[keyword].value not in (None, ""):
            item[keyword] = _without_empty(step[keyword])
    return item


def _without_empty(element: DataElement) -> DataElement:
    """A copy of an answer's element whose sequence items keep only attributes with values.

    A worklist SCP answers a requested code sequence with every attribute of the code macro,
    empty where it has none (CodingSchemeVersion); written into the document, an empty Type
    1C attribute is an error.
    """
    copied = copy.deepcopy(element)
    if copied.VR == "SQ":
        for item in copied.value:
            for tag in [e.tag for e in item if e.value in (None, "", b"")]:
                del item[tag]
            for inner in list(item):
                if inner.VR == "SQ":
                    item[inner.tag] = _without_empty(inner)
    return copied
