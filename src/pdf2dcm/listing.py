"""Listing the Encapsulated PDF documents on a server, newest study first, as far as asked.

The archive is walked back in time through StudyDate windows (the last week, then spans that
double back to 1900, then whatever is older), each asked of Orthanc's index: the PDF
instances of the window by SOPClassUID at instance level, in whatever series they are, then
their studies. Within a window the studies are sorted newest first and their documents are
read in that order, a few ahead, so a listing that stops after N documents costs about N
reads, whatever the size of the archive. A study without a StudyDate is found last, by what
the windows did not see.

What a row shows is read from Orthanc's simplified tags of the instance, never the file.
Names and titles are taken as Orthanc decoded them only where its decoding is exactly
pydicom's (ASCII, Latin-1 and UTF-8 text that came through whole); any other is read as the
stored bytes and decoded by pydicom with the object's own SpecificCharacterSet.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from collections.abc import Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .client import Instance, OrthancClient, Patient, Study
from .errors import NotFoundError, UnexpectedReplyError
from .imports import load_pydicom
from .lookup import Selector, select_one

ENCAPSULATED_PDF_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
LIST_WORKERS = 8
"""Rows read at once: Orthanc answers reads in parallel."""
READ_AHEAD = 2 * LIST_WORKERS
"""Rows asked for ahead of the one shown; all a listing that stops early reads in vain."""
FIRST_WINDOW_DAYS = 7
EARLIEST_WINDOW = dt.date(1900, 1, 1)
"""Where the doubling windows end; one last window takes everything older."""
MAX_TEXT_READ = 64 * 1024
_FAITHFUL_SETS = ({"ISO_IR 100"}, {"ISO_IR 192"})
"""Character sets whose text Orthanc decodes exactly as pydicom does (one-to-one maps)."""
_DEFAULT_SETS = ({""}, {"ISO_IR 6"})
_SUSPECT_TEXT = ("\ufffd", "\x1b")
_RAW_TAGS = {
    "SpecificCharacterSet": "0008-0005",
    "PatientName": "0010-0010",
    "DocumentTitle": "0042-0010",
    "ContentDate": "0008-0023",
    "ContentTime": "0008-0033",
}


@dataclass(frozen=True)
class DocumentInfo:
    """One Encapsulated PDF on the server, with what a person recognises it by."""

    id: str
    parent_patient: str
    parent_study: str
    parent_series: str
    sop_instance_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    accession_number: str
    document_title: str
    content_date: str
    size: int | None


@dataclass(frozen=True)
class _Row:
    document: DocumentInfo
    content_time: str


class DocumentListing:
    """The documents that match, newest study first, read from the server as iterated.

    ``found`` counts the PDF instances the queries so far returned (before ``title`` is
    applied); once ``complete``, every query has been made and ``found`` is the total.
    """

    def __init__(
        self,
        client: OrthancClient,
        query: Mapping[str, str],
        *,
        windows: Iterable[str | None],
        undated: bool,
        title: str | None,
    ) -> None:
        self._client = client
        self._query = dict(query)
        self._windows = windows
        self._undated = undated
        self._title = title.casefold() if title is not None else None
        self._seen_studies: set[str] = set()
        self.found = 0
        self.complete = False

    def __iter__(self) -> Iterator[DocumentInfo]:
        return self.documents()

    def documents(self) -> Generator[DocumentInfo, None, None]:
        """The documents one by one; closing the generator stops the reads under way."""
        pool = ThreadPoolExecutor(max_workers=LIST_WORKERS)
        try:
            for window in self._windows:
                yield from self._documents(pool, self._window(window))
            if self._undated:
                yield from self._documents(pool, self._without_date())
            self.complete = True
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _window(self, study_dates: str | None) -> list[tuple[Study, Instance]]:
        """The PDFs whose study falls in the window, newest study first."""
        query = self._query | ({"StudyDate": study_dates} if study_dates is not None else {})
        pdfs = self._pdfs(query)
        if not pdfs:
            return []
        studies = [s for s in self._client.find("Study", query) if isinstance(s, Study)]
        self._seen_studies.update(study.id for study in studies)
        return _by_study(pdfs, studies)

    def _without_date(self) -> list[tuple[Study, Instance]]:
        """The PDFs of studies no window saw: those without a StudyDate."""
        unseen = [
            study_id
            for study_id in self._client.find("Study", self._query, expand=False)
            if study_id not in self._seen_studies
        ]
        work: list[tuple[Study, Instance]] = []
        for study_id in unseen:
            try:
                study = self._client.study(study_id)
            except NotFoundError:
                continue
            uid = study.main_tags.get("StudyInstanceUID", "")
            work += _by_study(self._pdfs(self._query | {"StudyInstanceUID": uid}), [study])
        return work

    def _pdfs(self, query: Mapping[str, str]) -> list[Instance]:
        found = self._client.find("Instance", {**query, "SOPClassUID": ENCAPSULATED_PDF_SOP_CLASS})
        pdfs = [i for i in found if isinstance(i, Instance)]
        self.found += len(pdfs)
        return pdfs

    def _documents(
        self, pool: ThreadPoolExecutor, work: list[tuple[Study, Instance]]
    ) -> Iterator[DocumentInfo]:
        """Rows in the order of ``work``, a study's own newest content first."""
        pending: collections.deque[tuple[Study, Future[_Row | None]]] = collections.deque()
        queue = iter(work)
        group: list[_Row] = []
        group_study: Study | None = None
        while True:
            for study, instance in itertools.islice(queue, READ_AHEAD - len(pending)):
                pending.append((study, pool.submit(self._row, study, instance)))
            if not pending:
                break
            study, future = pending.popleft()
            if study is not group_study:
                yield from self._shown(group)
                group, group_study = [], study
            row = future.result()
            if row is not None:
                group.append(row)
        yield from self._shown(group)

    def _shown(self, rows: list[_Row]) -> Iterator[DocumentInfo]:
        rows.sort(key=lambda r: (r.document.content_date, r.content_time, r.document.id))
        for row in reversed(rows):
            if self._title is None or self._title in row.document.document_title.casefold():
                yield row.document

    def _row(self, study: Study, instance: Instance) -> _Row | None:
        """What ``ls`` shows of one PDF instance; None when it went away meanwhile."""
        try:
            values = self._values(instance.id)
        except NotFoundError:
            return None
        length = values.get("EncapsulatedDocumentLength") or ""
        document = DocumentInfo(
            id=instance.id,
            parent_patient=study.parent_patient,
            parent_study=study.id,
            parent_series=instance.parent_series,
            sop_instance_uid=instance.main_tags.get("SOPInstanceUID", ""),
            patient_id=study.patient_main_tags.get("PatientID", ""),
            patient_name=values.get("PatientName") or "",
            study_date=study.main_tags.get("StudyDate", ""),
            accession_number=study.main_tags.get("AccessionNumber", ""),
            document_title=values.get("DocumentTitle") or "",
            content_date=values.get("ContentDate") or "",
            size=int(length) if length.strip().isdigit() else None,
        )
        return _Row(document=document, content_time=values.get("ContentTime") or "")

    def _values(self, instance_id: str) -> dict[str, str | None]:
        """The attributes a row shows: Orthanc's decoding where it is exact, else the bytes."""
        try:
            tags = self._client.instance_tags(instance_id)
        except UnexpectedReplyError:
            # Text Orthanc could not put into JSON: every value from the stored bytes.
            tags = dict.fromkeys(_RAW_TAGS)
            tags["SpecificCharacterSet"] = _raw_text(self._client, instance_id, "0008-0005")
            tags["EncapsulatedDocumentLength"] = _document_length(self._client, instance_id)
        character_set = tags.get("SpecificCharacterSet") or ""
        for keyword in ("ContentDate", "ContentTime"):
            if keyword in tags and tags[keyword] is None:
                tags[keyword] = _raw_text(self._client, instance_id, _RAW_TAGS[keyword])
        for keyword in ("PatientName", "DocumentTitle"):
            if keyword not in tags:
                continue
            value = tags[keyword]
            if value is None or not faithful(value, character_set):
                tags[keyword] = decode_raw(
                    _raw_bytes(self._client, instance_id, _RAW_TAGS[keyword]),
                    int(_RAW_TAGS[keyword].replace("-", ""), 16),
                    character_set,
                )
            else:
                tags[keyword] = value.rstrip(" \x00")
        return tags


def faithful(text: str, character_set: str) -> bool:
    """Whether Orthanc's decoding of a value is exactly what pydicom makes of its bytes.

    Latin-1 and UTF-8 map bytes to text one to one in both; without a character set only
    ASCII is certain. Text with a replacement character or an escape did not come through.
    """
    if any(mark in text for mark in _SUSPECT_TEXT):
        return False
    sets = {term.strip() for term in character_set.split("\\")}
    if sets in _DEFAULT_SETS:
        return text.isascii()
    return sets in _FAITHFUL_SETS


def decode_raw(raw: bytes, tag: int, character_set: str) -> str:
    """A stored value decoded by pydicom with the object's own character set."""
    import warnings

    load_pydicom()
    from pydicom.charset import convert_encodings
    from pydicom.dataelem import RawDataElement, convert_raw_data_element
    from pydicom.tag import BaseTag

    terms = [term.strip() for term in character_set.split("\\")] if character_set else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encodings = convert_encodings(terms or ["ISO_IR 6"])
        element = convert_raw_data_element(
            RawDataElement(BaseTag(tag), None, len(raw), raw, 0, True, True), encoding=encodings
        )
    value = element.value
    return "" if value is None else str(value).rstrip(" \x00")


def _raw_bytes(client: OrthancClient, instance_id: str, tag: str) -> bytes:
    try:
        return client.instance_content(instance_id, tag, max_bytes=MAX_TEXT_READ)
    except NotFoundError:
        return b""


def _raw_text(client: OrthancClient, instance_id: str, tag: str) -> str:
    return _raw_bytes(client, instance_id, tag).decode("ascii", errors="replace").strip(" \x00")


def _document_length(client: OrthancClient, instance_id: str) -> str | None:
    raw = _raw_bytes(client, instance_id, "0042-0015")
    return str(int.from_bytes(raw[:4], "little")) if len(raw) >= 4 else None


def _by_study(pdfs: list[Instance], studies: list[Study]) -> list[tuple[Study, Instance]]:
    """Each PDF with its study, newest study first; a PDF whose study went away is left out."""
    study_of_series = {series: study for study in studies for series in study.series}
    pairs = [
        (study_of_series[pdf.parent_series], pdf)
        for pdf in pdfs
        if pdf.parent_series in study_of_series
    ]
    pairs.sort(
        key=lambda pair: (
            pair[0].main_tags.get("StudyDate", ""),
            pair[0].main_tags.get("StudyTime", ""),
            pair[0].id,
        ),
        reverse=True,
    )
    return pairs


def study_date_windows(
    today: dt.date, since: str | None = None, until: str | None = None
) -> Iterator[str]:
    """StudyDate ranges, newest first, that together cover ``since``..``until``.

    The first is open towards the future (dates typed wrong included); each next one spans
    twice the days of the one before, back to 1900, then one takes everything older.
    """
    lower = _date(since) if since else None
    upper = _date(until) if until else None
    high = upper
    start = min(today, upper or today) - dt.timedelta(days=FIRST_WINDOW_DAYS - 1)
    span = FIRST_WINDOW_DAYS
    while True:
        top = _text(high) if high is not None else ""
        if lower is not None and start <= lower:
            yield f"{_text(lower)}-{top}"
            return
        if start < EARLIEST_WINDOW:
            yield f"-{top}"
            return
        yield f"{_text(start)}-{top}"
        high = start - dt.timedelta(days=1)
        span *= 2
        start = high - dt.timedelta(days=span - 1)


def _date(text: str) -> dt.date:
    return dt.datetime.strptime(text, "%Y%m%d").date()


def _text(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def list_documents(
    client: OrthancClient,
    *,
    patient: Selector | None = None,
    study: Selector | None = None,
    since: str | None = None,
    until: str | None = None,
    title: str | None = None,
    today: dt.date | None = None,
) -> DocumentListing:
    """The Encapsulated PDF documents on the server, newest study first, read as iterated.

    ``since``/``until`` bound StudyDate (YYYYMMDD, inclusive); ``title`` is a
    case-insensitive part of DocumentTitle. Stop iterating to stop reading: the cost
    follows the documents taken (and the instances of the StudyDate windows looked into),
    not the size of the archive.
    """
    query: dict[str, str] = {}
    for selector in (patient, study):
        if selector is not None:
            if selector.orthanc_id is not None:
                query |= _identifying_query(client, selector)
            else:
                query |= dict(selector.query)
    windows: Iterable[str | None]
    if query:
        # One patient's or study's documents are few: one query, without windows.
        dates = f"{since or ''}-{until or ''}" if since or until else None
        windows = [dates]
    else:
        windows = study_date_windows(today or dt.date.today(), since, until)
    return DocumentListing(
        client,
        query,
        windows=windows,
        undated=not query and since is None and until is None,
        title=title,
    )


def _identifying_query(client: OrthancClient, selector: Selector) -> dict[str, str]:
    """The DICOM identifiers of a resource named by its Orthanc ID, to query by."""
    resource = select_one(client, selector)
    if isinstance(resource, Study):
        return {"StudyInstanceUID": resource.main_tags.get("StudyInstanceUID", "")}
    if isinstance(resource, Patient):
        return {"PatientID": resource.main_tags.get("PatientID", "")}
    return {"SeriesInstanceUID": resource.main_tags.get("SeriesInstanceUID", "")}
