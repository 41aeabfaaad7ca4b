"""Pieces the commands share: tag and connection options, progress display, output helpers."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

import click
from click.core import ParameterSource

from pdf2dcm import errors as err
from pdf2dcm.imports import load_pydicom

from . import app
from .app import displaying, info, say

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from pdf2dcm.client import OrthancClient
    from pdf2dcm.config import Profile
    from pdf2dcm.lookup import Target
    from pdf2dcm.progress import ProgressCallback
    from pdf2dcm.tags import ValidatedTags
    from pdf2dcm.upload import Forward, Method


T = TypeVar("T")


def option_group(
    argument: str,
    group: type[Any],
    options: Sequence[Callable[[Any], Any]],
    **fixed: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare ``options`` on a command and hand it their values as one ``argument``.

    ``group`` is a dataclass whose fields are the options' destinations, plus the ``fixed``
    ones the command's declaration sets (:class:`Connection`, :class:`Destination`, ...).
    """
    names = [f.name for f in dataclasses.fields(group) if f.name not in fixed]

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            return function(*args, **{argument: group(**values, **fixed)}, **kwargs)

        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def tag_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape the DICOM attributes; encode and upload share them."""
    options = [
        click.option(
            "--tag",
            "tag_assignments",
            multiple=True,
            metavar="KEY=VALUE",
            shell_complete=complete_tag,
            help="Set an attribute (keyword or gggg,eeee); repeatable; split at the first '='. "
            "Multiple values are separated by '\\'; a sequence takes a JSON array of objects.",
        ),
        click.option(
            "--tags-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="JSON object of tags, as in Orthanc's create-dicom 'Tags'; --tag overrides it.",
        ),
        click.option(
            "--title", help="DocumentTitle (default: the PDF's Title, else the file name)."
        ),
        click.option(
            "--conversion-type",
            type=click.Choice(["WSD", "SD"]),
            default="WSD",
            show_default=True,
            help="WSD for a workstation-made document, SD for a scanned one.",
        ),
        click.option(
            "--study-from",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Copy the patient and study attributes of this DICOM file.",
        ),
        click.option(
            "--series-from",
            type=click.Path(path_type=Path),
            multiple=True,
            help="Copy the patient, study and series of this DICOM file; repeatable, or a "
            "directory: InstanceNumber goes one past the highest of them (upload --parent "
            "asks the server instead).",
        ),
        click.option(
            "--same-series",
            is_flag=True,
            help="Put all the inputs in one new series (default: a new study and series each).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def complete_tag(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of ``--tag``: the DICOM keywords that start with what was typed.

    Offered as ``Keyword=`` (the value is the user's); retired attributes are left out.
    Case is ignored, so ``patientn`` completes to ``PatientName=``. pydicom is imported
    here, when the shell asks, never on a normal start.
    """
    from click.shell_completion import CompletionItem

    load_pydicom()
    from pydicom.datadict import dictionary_is_retired, keyword_dict

    if "=" in incomplete:
        return []
    typed = incomplete.lower()
    keywords = sorted(
        keyword
        for keyword, tag in keyword_dict.items()
        if keyword.lower().startswith(typed) and not dictionary_is_retired(tag)
    )
    return [CompletionItem(f"{keyword}=") for keyword in keywords]


def collect_tags(
    assignments: Sequence[str],
    tags_file: Path | None,
    defaults: Mapping[str, object] | None = None,
) -> ValidatedTags:
    """The tags of ``defaults`` (a profile's), then the tags file, then each ``--tag``."""
    from pdf2dcm.tags import load_tags_file, parse_assignment, short_value, validate_tags

    collected: ValidatedTags = {}
    if defaults:
        profile = current_profile()
        try:
            collected |= validate_tags(dict(defaults))
        except err.TagError as error:
            where = profile.where if profile is not None else "the profile"
            raise err.TagError(f"default tags of {where}: {error}") from None
    if tags_file is not None:
        collected |= validate_tags(load_tags_file(tags_file))
    for assignment in assignments:
        try:
            key, value = parse_assignment(assignment)
            collected |= validate_tags({key: value})
        except err.TagError as error:
            raise err.TagError(f"--tag {short_value(assignment)}: {error}") from None
    return collected


def current_profile() -> Profile | None:
    """The profile this run uses (``--profile``, ``PDF2DCM_PROFILE``, else ``default``).

    Upload takes its default tags and method from it::

        profile = current_profile()
        tags = collect_tags(tag_assignments, tags_file, profile.tags if profile else None)
        method = profile_choice("method", method, profile.method if profile else None)
    """
    from pdf2dcm.config import load_profile

    return load_profile(app.output.profile, named=app.output.profile_given)


def profile_choice(name: str, value: T, from_profile: T | None) -> T:
    """An option's value, unless it was left at its default: then the profile's, if any.

    So an option and its PDF2DCM_ variable both beat the profile, which beats the default.
    """
    source = click.get_current_context().get_parameter_source(name)
    given = source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return value if given or from_profile is None else from_profile


def load_reference(study_from: Path | None, series_from: Sequence[Path] | Path | None) -> Any:
    if isinstance(series_from, Path):
        series_from = (series_from,)
    if study_from is not None and series_from:
        raise click.UsageError("give --study-from or --series-from, not both")
    from pdf2dcm.dicom import read_reference

    if series_from:
        return read_reference(list(series_from), "series")
    if study_from is not None:
        return read_reference(study_from, "study")
    return None


@contextlib.contextmanager
def progress_display(
    enabled: bool, total: int | None, files: int | None = None
) -> Iterator[ProgressCallback | None]:
    """A rich progress bar (bytes, and files when several) on stderr.

    Only when stderr is a terminal and not disabled (nor -q); events may come from several
    upload threads, and a restarted (retried) file gives back the bytes it had counted. The
    bar is transient and registered while it runs, so that :func:`result_line`, messages and
    log lines print above it instead of gluing to it; sizes are in KiB, MiB (1024).
    """
    if not enabled or app.output.quiet or not sys.stderr.isatty():
        yield None
        return
    import threading

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from pdf2dcm.progress import ProgressEvent

    class _Speed(ProgressColumn):
        """Transfer speed in KiB/s, the unit of the byte counts next to it."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{size_text(int(speed))}/s")

    columns = [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(binary_units=True),
    ]
    columns += [_Speed(), TimeRemainingColumn()]
    with (
        Progress(*columns, console=Console(stderr=True), transient=True) as bar,
        displaying(bar.console),
    ):
        task = bar.add_task("", total=total)
        seen: dict[str, int] = {}
        finished: set[str] = set()
        lock = threading.Lock()
        completed = 0

        def update(event: ProgressEvent) -> None:
            nonlocal completed
            with lock:
                completed += event.done - seen.get(event.label, 0)
                seen[event.label] = event.done
                if event.total is not None and event.done >= event.total:
                    finished.add(event.label)
                name = app.terminal_safe(Path(event.label).name)
                counter = f"[{len(finished)}/{files}] " if files and files > 1 else ""
                bar.update(task, completed=completed, description=f"{counter}{name}")

        yield update


def refuse_terminal(stream: IO[Any], what: str) -> None:
    if stream.isatty():
        raise click.UsageError(
            f"refusing to write {what} to a terminal; use -o FILE or redirect the output"
        )


def refuse_terminal_stdin(what: str = "a PDF") -> None:
    """Refuse ``-`` when stdin is a terminal: the command would wait silently for a file.

    The counterpart of :func:`refuse_terminal`: binary data comes from a pipe or a file,
    never from someone typing.
    """
    if sys.stdin.isatty():
        raise click.UsageError(
            f"refusing to read {what} from a terminal ('-' is stdin); pipe or redirect a file "
            "into it, or give the file's name"
        )


def result_line(text: str) -> None:
    """One result line on stdout, starting at column 0 even while a progress bar runs.

    With a live display on screen and stdout on the same terminal, the display's console
    prints the line above the bar and redraws the bar below it; elsewhere (a pipe, a file,
    no display) the line is written as it is. ``-q`` drops text results.
    """
    if app.output.quiet:
        return
    _stdout_line(app.terminal_safe(text))


def cell(value: object) -> Any:
    """A table cell of text from outside: escaped for the terminal, never read as markup."""
    from rich.text import Text

    return Text(app.terminal_safe(value if isinstance(value, str) else str(value)))


def print_json(record: Mapping[str, Any]) -> None:
    """One JSON record on stdout (one line), above a live display like :func:`result_line`.

    Not dropped by ``-q``: asking for ``--json`` asks for the records.
    """
    from pdf2dcm.records import dumps

    _stdout_line(dumps(record))


def _stdout_line(text: str) -> None:
    if app.output.report_cut:
        return
    console = app.output.display
    try:
        if console is not None and sys.stdout.isatty():
            console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            click.echo(text)
    except BrokenPipeError:
        # The reader left (``| head``): finish the work, report nothing more, end with 141.
        app.output.report_cut = True
        app.silence_stdout()


def batch_summary(
    count: int,
    tally: Mapping[str, int],
    *,
    failed: int = 0,
    not_attempted: int = 0,
    seconds: float | None = None,
    noun: str = "file",
) -> str:
    """``300 files: 120 stored, 180 already stored, 0 failed in 1.4 s``.

    ``tally`` counts the outcomes in the words to show, in the order to show them.
    """
    parts = [f"{number} {label}" for label, number in tally.items()]
    parts.append(f"{failed} failed")
    if not_attempted:
        parts.append(f"{not_attempted} not attempted")
    took = "" if seconds is None else f" in {seconds:.1f} s"
    plural = "" if count == 1 else "s"
    return f"{count} {noun}{plural}: {', '.join(parts)}{took}"


@dataclass
class Batch:
    """Counts a batch's outcomes, then ends it with one summary line and its exit code::

    batch = Batch(len(sources))
    batch.done("stored")            # or "already stored", "written", ...
    batch.failed(error)
    batch.end()                     # summary on stderr (not with -q), then exit code
    """

    count: int
    noun: str = "file"
    started: float = field(default_factory=time.monotonic)
    tally: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[err.Pdf2DcmError] = field(default_factory=list)

    def done(self, outcome: str) -> None:
        self.tally[outcome] += 1

    def failed(self, error: err.Pdf2DcmError) -> None:
        self.failures.append(error)

    def summary(self) -> str:
        skipped = sum(isinstance(f, err.NotAttemptedError) for f in self.failures)
        return batch_summary(
            self.count,
            self.tally,
            failed=len(self.failures) - skipped,
            not_attempted=skipped,
            seconds=time.monotonic() - self.started,
            noun=self.noun,
        )

    def end(self) -> None:
        """Print the summary, then exit with the first real failure's code, if any."""
        info(self.summary())
        self.exit()

    def exit(self) -> None:
        """Exit with the first real failure's code, if any; no summary line."""
        end_batch(self.failures, self.count, summary=False)


@dataclass(frozen=True)
class Destination:
    """Where upload and watch put documents: how they are sent, what they attach to, and
    where they are forwarded; gathered into one argument, as :class:`Connection` is."""

    method: str
    dicomweb_url: str | None
    parent: str | None
    study_terms: tuple[str, ...]
    patient_terms: tuple[str, ...]
    series_terms: tuple[str, ...]
    worklist: str | None
    send_to_modality: str | None
    send_to_peer: str | None
    per_file: bool = False
    """Each file finds its own target (watch): terms may hold ``{Keyword}``."""

    def target(self, *, has_reference_file: bool = False) -> Target | None:
        """What ``--parent``/``--study``/``--patient``/``--series`` attach to (one at most)."""
        from pdf2dcm.lookup import Target

        flags = (
            ("--parent", self.parent),
            ("--study", self.study_terms),
            ("--patient", self.patient_terms),
            ("--series", self.series_terms),
        )
        given = [flag for flag, value in flags if value]
        if has_reference_file:
            given.append("--study-from/--series-from")
        if len(given) > 1:
            raise click.UsageError(f"give one of {', '.join(given)}, not several")
        if self.worklist is not None and not self.study_terms:
            raise click.UsageError("--worklist goes with --study KEY=VALUE (what to look up)")
        if not given or given == ["--study-from/--series-from"]:
            return None
        return Target(
            self.parent,
            self.study_terms,
            self.patient_terms,
            self.series_terms,
            self.worklist,
            placeholders=self.per_file,
        )

    def forward(self) -> Forward | None:
        """The modality or peer to forward stored documents to, if any."""
        if self.send_to_modality is not None and self.send_to_peer is not None:
            raise click.UsageError("give --send-to-modality or --send-to-peer, not both")
        if self.send_to_modality is not None:
            return ("modality", self.send_to_modality)
        if self.send_to_peer is not None:
            return ("peer", self.send_to_peer)
        return None

    def chosen_method(self, profile: Profile | None) -> Method:
        """``--via``, unless left at its default: then the profile's method, if it has one."""
        method = profile_choice("method", self.method, profile.method if profile else None)
        if method not in ("instances", "create-dicom", "stow", "dimse"):
            raise AssertionError(method)
        return method  # type: ignore[return-value]


def destination_options(*, per_file: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of :class:`Destination`, passed to the command as ``destination``.

    ``per_file`` (watch): each file finds its own target, so terms may hold placeholders.
    """

    return option_group(
        "destination", Destination, _destination_option_list(per_file), per_file=per_file
    )


def _destination_option_list(per_file: bool) -> list[Callable[[Any], Any]]:
    each = " Terms may hold {Keyword}, filled from each file's values." if per_file else ""
    return [
        click.option(
            "--via",
            "method",
            type=click.Choice(["instances", "create-dicom", "stow", "dimse"]),
            default="instances",
            show_default=True,
            help="instances: encode here, POST /instances; create-dicom: Orthanc encodes; "
            "stow: DICOMweb STOW-RS; dimse: C-STORE to --scp AET@HOST:PORT, no Orthanc "
            "[then the profile's method].",
        ),
        click.option(
            "--dicomweb-url",
            metavar="URL",
            help="DICOMweb root for --via stow [default: URL/dicom-web].",
        ),
        click.option(
            "--parent",
            metavar="ORTHANC_ID",
            help="Attach to this Orthanc patient, study or series (copies its attributes).",
        ),
        click.option(
            "--study",
            "study_terms",
            multiple=True,
            metavar="KEY=VALUE",
            help="Attach to the one study matching every term (AccessionNumber=A123, "
            "StudyInstanceUID=..., PatientID=...), or an Orthanc study ID; a new series." + each,
        ),
        click.option(
            "--patient",
            "patient_terms",
            multiple=True,
            metavar="KEY=VALUE",
            help="Attach to the one patient matching (PatientID=4711, IssuerOfPatientID=...); "
            "a new study." + each,
        ),
        click.option(
            "--series",
            "series_terms",
            multiple=True,
            metavar="KEY=VALUE",
            help="Attach to the one series matching (SeriesInstanceUID=...); the next "
            "InstanceNumber." + each,
        ),
        click.option(
            "--worklist",
            metavar="MODALITY",
            help="With --study: look the study up in the worklist of this Orthanc modality "
            "(or of the worklist SCP AET@HOST:PORT, asked directly) instead of the archive, "
            "and take the patient and study from the scheduled procedure.",
        ),
        click.option(
            "--send-to-modality",
            metavar="NAME",
            help="Then forward the stored documents to this DICOM modality (an Orthanc job"
            + (" per file)." if per_file else ")."),
        ),
        click.option(
            "--send-to-peer",
            metavar="NAME",
            help="Then forward the stored documents to this Orthanc peer (an Orthanc job"
            + (" per file)." if per_file else ")."),
        ),
    ]


def stdin() -> BinaryIO:
    return sys.stdin.buffer


def stdout() -> BinaryIO:
    return sys.stdout.buffer


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError(unit)


@dataclass(frozen=True)
class Connection:
    """The connection options of a server command, gathered into one argument."""

    url: str | None
    username: str | None
    password: str | None = field(repr=False)
    token: str | None = field(repr=False)
    ca_bundle: str | None
    insecure: bool
    timeout: float | None

    def open(
        self,
        *,
        pool_size: int = 10,
        dicomweb_url: str | None = None,
        stdin_in_use: bool = False,
    ) -> OrthancClient:
        """A client for these settings; asks for a missing password only on a terminal."""
        from pdf2dcm.client import OrthancClient
        from pdf2dcm.config import ENV_PASSWORD, resolve_settings

        settings = resolve_settings(
            url=self.url,
            username=self.username,
            password=self.password,
            token=self.token,
            ca_bundle=self.ca_bundle,
            insecure=self.insecure,
            timeout=self.timeout,
            dicomweb_url=dicomweb_url,
            profile=current_profile(),
        )
        for notice in settings.notices:
            say(f"warning: {notice}")
        if settings.username is not None and settings.password is None:
            if not stdin_in_use and sys.stdin.isatty():
                secret = click.prompt(
                    f"Password for {settings.username} at {settings.url}",
                    hide_input=True,
                    err=True,
                )
                settings = dataclasses.replace(settings, password=secret)
            else:
                say(f"warning: no password for {settings.username}; set {ENV_PASSWORD} or ~/.netrc")
        if self.insecure:
            say("warning: TLS certificates are not verified (--insecure)")
        client = OrthancClient(settings, pool_size=pool_size)
        # One line per HTTP exchange (the time until the answer's headers arrived); retries
        # are logged by the client itself.
        client.log_exchanges = app.output.verbose
        return client


def connection_options_for(
    timeout_flag: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The connection options, passed to the command as one ``connection`` argument.

    ``jobs wait`` names the per-request timeout differently, because its ``--timeout``
    bounds the whole wait.
    """

    return option_group("connection", Connection, _connection_option_list(timeout_flag))


def _connection_option_list(timeout_flag: str) -> list[Callable[[Any], Any]]:
    return [
        click.option(
            "--url",
            metavar="URL",
            help="Orthanc base URL [env ORTHANC_URL; then the profile's url; default "
            "http://localhost:8042].",
        ),
        click.option(
            "--username",
            metavar="USER",
            help="HTTP user [env ORTHANC_USERNAME; then the profile; then ~/.netrc].",
        ),
        click.option(
            "--password",
            metavar="PASSWORD",
            help="HTTP password; prefer env ORTHANC_PASSWORD, a profile's password-file or "
            "~/.netrc, which stay out of process listings. Asked for on a terminal when only a "
            "user is given.",
        ),
        click.option(
            "--token",
            metavar="TOKEN",
            help="Bearer token [env ORTHANC_TOKEN; then the profile's token-file].",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False),
            help="PEM file of CAs to trust for https [then the profile's ca-bundle].",
        ),
        click.option(
            "--insecure", is_flag=True, help="Do not verify TLS certificates (with a warning)."
        ),
        click.option(
            timeout_flag,
            "timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Limit for each HTTP request, in seconds; not a limit on the whole command "
            "[default 60].",
        ),
    ]


connection_options = connection_options_for("--timeout")


def file_size(name: str) -> int:
    """Size for a progress total; 0 when unknown (stdin, or an error reported later)."""
    if name == "-":
        return 0
    try:
        return os.stat(name).st_size
    except OSError:
        return 0


def end_batch(failures: Sequence[err.Pdf2DcmError], count: int, *, summary: bool = True) -> None:
    """After a batch that went on past errors: a summary line and the first real error's code.

    Files skipped because the batch stopped early do not set the code; what stopped it does.
    ``summary=False`` leaves the line out (:meth:`Batch.end` prints its own).
    """
    if not failures:
        return
    from .app import exit_status_for

    first = next((f for f in failures if not isinstance(f, err.NotAttemptedError)), failures[0])
    if summary:
        say(f"{len(failures)} of {count} files failed")
    click.get_current_context().exit(exit_status_for(first))
