"""The root command, the exit-code table and the one place errors become exit codes."""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from enum import IntEnum
from types import FrameType
from typing import Any, NoReturn, Protocol

import click

from pdf2dcm import __version__
from pdf2dcm import errors as err


class ExitStatus(IntEnum):
    """Exit codes; documented in ``pdf2dcm --help`` and the README."""

    SUCCESS = 0
    ERROR = 1
    INPUT = 2
    UNREACHABLE = 3
    REFUSED = 4
    SERVER_FAILED = 5
    JOB_FAILED = 6
    JOB_TIMEOUT = 7
    CONFLICT = 8
    HANGUP = 128 + signal.SIGHUP
    INTERRUPTED = 128 + signal.SIGINT
    REPORT_CUT = 128 + signal.SIGPIPE
    TERMINATED = 128 + signal.SIGTERM


EXIT_CODES: dict[type[err.Pdf2DcmError], ExitStatus] = {
    err.Pdf2DcmError: ExitStatus.ERROR,
    err.InputError: ExitStatus.INPUT,
    err.NotAPdfError: ExitStatus.INPUT,
    err.TagError: ExitStatus.INPUT,
    err.NotEncapsulatedPdfError: ExitStatus.INPUT,
    err.OutputExistsError: ExitStatus.INPUT,
    err.FileSystemError: ExitStatus.INPUT,
    err.IdentityConflictError: ExitStatus.INPUT,
    err.StrictModeError: ExitStatus.INPUT,
    err.ConfigurationError: ExitStatus.INPUT,
    err.NotAttemptedError: ExitStatus.ERROR,
    err.ServerError: ExitStatus.SERVER_FAILED,
    err.ServerUnreachableError: ExitStatus.UNREACHABLE,
    err.UnexpectedReplyError: ExitStatus.SERVER_FAILED,
    err.RedirectError: ExitStatus.REFUSED,
    err.ConflictError: ExitStatus.CONFLICT,
    err.HTTPStatusError: ExitStatus.SERVER_FAILED,
    err.ServerRefusedError: ExitStatus.REFUSED,
    err.AuthenticationError: ExitStatus.REFUSED,
    err.NotFoundError: ExitStatus.REFUSED,
    err.ServerFailedError: ExitStatus.SERVER_FAILED,
    err.JobError: ExitStatus.JOB_FAILED,
    err.JobFailedError: ExitStatus.JOB_FAILED,
    err.JobTimeoutError: ExitStatus.JOB_TIMEOUT,
    err.JobNotFoundError: ExitStatus.REFUSED,
    err.JobStateError: ExitStatus.INPUT,
    err.AssociationRejectedError: ExitStatus.UNREACHABLE,
    err.DicomStatusError: ExitStatus.SERVER_FAILED,
    err.DicomRefusedError: ExitStatus.REFUSED,
    err.DicomOutOfResourcesError: ExitStatus.SERVER_FAILED,
    err.CommitmentError: ExitStatus.SERVER_FAILED,
    err.CommitmentFailedError: ExitStatus.SERVER_FAILED,
    err.CommitmentTimeoutError: ExitStatus.JOB_TIMEOUT,
}

EXIT_CODE_HELP = """\b
Exit codes:
  0    success
  1    unexpected error (a bug): run with --debug for details
  2    usage or input error: bad option, bad tag, not a PDF, missing file,
       a tag that contradicts the parent or reference, a file the system refused
       (permissions, disk full, read-only, name too long, closed stdin/stdout),
       a warning refused by --strict
  3    server unreachable: refused, DNS, TLS, timeout (after retries); a DICOM
       node that rejected the association
  4    server refused the request (4xx): authentication, unknown ID; a redirect;
       a DICOM failure status (A9xx, Cxxx, 01xx)
  5    server failed (5xx) after retries, or answered in an unexpected shape; a
       DICOM node out of resources (A7xx), or that did not commit to storing
  6    an Orthanc job ended in failure
  7    waiting for a job or a storage commitment timed out (it goes on)
  8    conflict: the server holds another patient's study or another document
       under the same UID; nothing was stored
  129  hung up (SIGHUP); temporary files were removed
  130  interrupted (Ctrl-C); temporary files were removed
  141  stdout's reader went away (| head): the work was finished but the report
       was cut, or a document written to stdout was cut
  143  terminated (SIGTERM, e.g. by timeout or kill); temporary files were removed"""


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the program is so that cleanup runs as for Ctrl-C.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it while
    every ``finally`` and context manager on the way out removes its temporary files and stops
    the progress display (restoring the cursor).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class ClosedStream:
    """Stands for stdin or stdout when the shell closed it (``<&-``, ``>&-``).

    Python leaves ``sys.stdin``/``sys.stdout`` as None then; using this instead turns the
    use of the stream (reading, writing, its bytes) into one clear error, as ``cat >&-`` fails,
    while questions such as ``isatty()`` get a harmless answer.
    """

    def __init__(self, name: str, fix: str) -> None:
        self.name = f"<{name}>"
        self._what = name
        self._fix = fix

    def _closed(self) -> err.FileSystemError:
        return err.FileSystemError(f"{self._what} is closed; {self._fix}", errno=errno.EBADF)

    @property
    def buffer(self) -> NoReturn:
        raise self._closed()

    def read(self, *_args: object) -> NoReturn:
        raise self._closed()

    readline = read

    def write(self, text: str) -> int:
        raise self._closed()

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> NoReturn:
        raise self._closed()


def exit_status_for(error: BaseException) -> ExitStatus:
    """The exit code of an error: its own class's, else its nearest base's."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitStatus.ERROR


class LineConsole(Protocol):
    """What a live display offers for printing above itself (a rich Console)."""

    def print(self, *objects: Any, **options: Any) -> None: ...


class OutputState:
    """What the global flags chose for this run, and the live display on screen if any.

    Module state rather than click's context: messages also come from upload threads, which
    have no click context. Reset at the start of every invocation. (A plain class, as this
    module is all ``pdf2dcm --version`` loads: dataclasses and logging cost it about 6 ms.)
    """

    def __init__(self) -> None:
        self.quiet = False
        self.verbose = False
        self.debug = False
        self.profile: str | None = None
        self.profile_given = False
        self.display: LineConsole | None = None
        self.report_cut = False
        """stdout's reader went away: the work goes on, and the run ends with exit 141."""


output = OutputState()

_LOGGER = "pdf2dcm"


def _reset_output() -> None:
    vars(output).update(vars(OutputState()))
    logging = sys.modules.get("logging")
    if logging is None:
        return  # nothing was logged to, nor a handler added, in this process
    logger = logging.getLogger(_LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "pdf2dcm_stderr", False)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = {
    code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        *map(ord, _BIDI_CONTROLS),
        *range(0xD800, 0xE000),
    )
}


def terminal_safe(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1), bidirectional control and lone
    surrogate written as an escape (``\\x1b``, ``\\u202e``, ``\\udcff``).

    For everything shown as text that did not come from the tool itself: file names, PDF
    titles, DICOM values, server replies. Such text can then neither move the cursor,
    retitle the terminal, reorder what is shown nor break the line; JSON records keep the
    exact text.
    """
    return text.translate(_UNSAFE)


def _stderr_line(line: str) -> None:
    """One line on stderr, above the live display when there is one; its text made safe
    for a terminal (see :func:`terminal_safe`).

    Written past a live display, a line would be glued to the bar and the bar left frozen
    in the scrollback; the display's console prints it above and redraws the bar below.
    """
    line = terminal_safe(line)
    console = output.display
    if console is not None:
        console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
    else:
        click.echo(line, err=True)


def say(message: str) -> None:
    """A line on stderr, prefixed like every message of the tool.

    Under ``--quiet`` only errors are shown: a message starting with ``warning:`` is dropped.
    """
    if output.quiet and message.startswith("warning:"):
        return
    _stderr_line(f"pdf2dcm: {message}")


def info(message: str) -> None:
    """A note on stderr (a summary, a state change) that ``--quiet`` suppresses."""
    if not output.quiet:
        _stderr_line(f"pdf2dcm: {message}")


@contextlib.contextmanager
def displaying(console: LineConsole) -> Iterator[None]:
    """Register a live display's console, so that messages and results print above it."""
    previous, output.display = output.display, console
    try:
        yield
    finally:
        output.display = previous


def _add_stderr_handler() -> None:
    """The ``pdf2dcm`` logger's records (exchanges, retries) as lines on stderr, for -v."""
    import logging

    class StderrHandler(logging.Handler):
        pdf2dcm_stderr = True

        def emit(self, record: logging.LogRecord) -> None:
            try:
                _stderr_line(f"pdf2dcm: {record.getMessage()}")
            except Exception:  # a log line must never break the command
                self.handleError(record)

    logger = logging.getLogger(_LOGGER)
    if not any(getattr(h, "pdf2dcm_stderr", False) for h in logger.handlers):
        logger.addHandler(StderrHandler())
        logger.setLevel(logging.INFO)


def _set_flag(ctx: click.Context, param: click.Parameter, value: object) -> None:
    """Callback of the global flags; they may come before or after the subcommand."""
    if not value or param.name is None:
        return
    setattr(output, param.name, True)
    if output.quiet and output.verbose:
        raise click.UsageError("give -q/--quiet or -v/--verbose, not both", ctx)
    if output.verbose:
        _add_stderr_handler()


def _set_profile(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """The environment's profile applies unless one was named on the command line.

    Both the root and the subcommand read PDF2DCM_PROFILE, and the subcommand's reading
    comes later: it must not undo ``pdf2dcm --profile NAME command``.
    """
    if not value or param.name is None:
        return
    from click.core import ParameterSource

    if ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        output.profile, output.profile_given = value, True
    elif not output.profile_given:
        output.profile = value


def _global_options() -> list[click.Option]:
    """The options every command takes, before or after the subcommand's name."""
    return [
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_set_flag,
            help="Print only errors on stderr: no progress, warnings, notes or summary, and no "
            "text result lines (--json records and data on stdout still come).",
        ),
        click.Option(
            ["-v", "--verbose"],
            is_flag=True,
            expose_value=False,
            callback=_set_flag,
            help="Log each HTTP request (method, URL, status, time) and each retry on stderr.",
        ),
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            callback=_set_flag,
            help="Show the full traceback of an error.",
        ),
        click.Option(
            ["--profile"],
            metavar="NAME",
            expose_value=False,
            callback=_set_profile,
            help="Use this profile of the config file (default: the profile named 'default', "
            "if the file has one).",
        ),
    ]


ENV_PREFIX = "PDF2DCM"

_NO_AUTO_ENVIRONMENT = frozenset(
    {
        # Credentials and the server have their own ORTHANC_* names, read by the library.
        "url",
        "username",
        "password",
        "token",
        # What one run writes or attaches to: a default in the environment would silently
        # apply to every later run (and click splits repeated options at whitespace).
        "tag_assignments",
        "title",
        "output",
        "parent",
        "study_terms",
        "patient_terms",
        "series_terms",
    }
)


def environment_name(param: click.Parameter) -> str | None:
    """``PDF2DCM_<NAME>`` of an option, from its destination name (``as_json`` -> JSON).

    One flat name per meaning, not per command (not PDF2DCM_UPLOAD_...): a destination
    means the same wherever it appears (``timeout`` is always one request's limit,
    ``wait_timeout`` always the whole wait, whatever the flag is called).
    """
    if not isinstance(param, click.Option) or param.name is None:
        return None
    if param.name in _NO_AUTO_ENVIRONMENT or param.name == "version":
        return None
    return f"{ENV_PREFIX}_{param.name.removeprefix('as_').upper()}"


def _name_environment(params: list[click.Parameter]) -> None:
    for param in params:
        name = environment_name(param)
        if isinstance(param, click.Option) and name is not None and param.envvar is None:
            param.envvar = name
            param.show_envvar = True


def _adopt(command: click.Command) -> None:
    """Give a subcommand the global options and its PDF2DCM_<OPTION> environment variables.

    Done when the command is resolved, when every module has registered its commands, so
    that each command module needs no decorator of its own.
    """
    if getattr(command, "_pdf2dcm_adopted", False):
        return
    command._pdf2dcm_adopted = True  # type: ignore[attr-defined]
    names = {param.name for param in command.params}
    command.params += [option for option in _global_options() if option.name not in names]
    _name_environment(command.params)
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _adopt(subcommand)


HELP_SECTIONS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "What to write",
        frozenset(
            {
                "tag_assignments",
                "tags_file",
                "title",
                "conversion_type",
                "study_from",
                "series_from",
                "same_series",
            }
        ),
    ),
    (
        "Where it goes",
        frozenset(
            {
                "output",
                "outdir",
                "overwrite",
                "method",
                "parent",
                "study_terms",
                "patient_terms",
                "series_terms",
                "worklist",
                "send_to_modality",
                "send_to_peer",
                "wait",
                "wait_timeout",
                "done",
                "delete",
                "failed",
            }
        ),
    ),
    (
        "Batch",
        frozenset(
            {
                "files_from",
                "files_null",
                "name_pattern",
                "name_regex",
                "manifest",
                "recursive",
                "concurrency",
                "fail_fast",
                "settle",
                "once",
                "hold_for",
                "incomplete_after",
            }
        ),
    ),
    (
        "Connection",
        frozenset(
            {"url", "username", "password", "token", "ca_bundle", "insecure", "timeout"}
            | {"dicomweb_url", "profile", "wait_for_server"}
        ),
    ),
    (
        "DICOM node",
        frozenset(
            {"scp", "calling_aet", "dimse_timeout", "commit", "listen_port", "worklist_charset"}
            | {"tls", "tls_ca", "tls_cert", "tls_key"}
        ),
    ),
    (
        "Output and checks",
        frozenset(
            {"as_json", "no_progress", "dry_run", "strict", "log_file", "quiet", "verbose"}
            | {"debug", "help"}
        ),
    ),
)
"""The sections of the help of the commands with many options (encode, upload, watch), by
option destination; an option in none of them is listed under "Other options"."""


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options in :data:`HELP_SECTIONS`, not in one list.

    Use: ``@cli.command(cls=SectionedCommand)``.
    """

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        help_option = self.get_help_option(ctx)
        rows = {
            "help" if param is help_option else param.name: record
            for param in self.get_params(ctx)
            if isinstance(param, click.Option)
            and (record := param.get_help_record(ctx)) is not None
        }
        placed: set[str | None] = set()
        for title, names in HELP_SECTIONS:
            section = [record for name, record in rows.items() if name in names]
            placed.update(name for name in rows if name in names)
            if section:
                with formatter.section(title):
                    formatter.write_dl(section)
        rest = [record for name, record in rows.items() if name not in placed]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)


_COMMAND_MODULES = {
    "check": "check",
    "encode": "local",
    "extract": "local",
    "fetch": "server",
    "echo": "dimse",
    "jobs": "jobs",
    "ls": "server",
    "review": "review",
    "show": "show",
    "upload": "server",
    "watch": "watch",
}
"""Which module defines each command: only the one asked for is imported (start-up time)."""


class _Group(click.Group):
    """Maps every error to its exit code in one place, with a traceback only under --debug."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            # Importing the module registers its commands on this group.
            importlib.import_module(f"pdf2dcm.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        _reset_output()
        return super().make_context(info_name, args, parent, **extra)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _adopt(command)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except err.Pdf2DcmError as error:
            self._fail(ctx, error, f"error: {error}", exit_status_for(error))
        except KeyboardInterrupt as error:
            self._fail(ctx, error, "interrupted", ExitStatus.INTERRUPTED)
        except Terminated as error:
            self._fail(ctx, error, f"terminated by {error.name}", 128 + error.signum)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (``| head``) while stdout carried the work itself (a
            # document): it could not be finished, which 141 (as for SIGPIPE) says.
            silence_stdout()
            ctx.exit(ExitStatus.REPORT_CUT)
        except OSError as error:
            if _from_a_library(error):
                self._fail(ctx, error, _bug_line(error), ExitStatus.ERROR)
            # The system refused something no library call wrapped (a report line to a full
            # disk, say): still the system's refusal, not a bug.
            self._fail(ctx, error, f"error: {_os_error_line(error)}", ExitStatus.INPUT)
        except Exception as error:
            self._fail(ctx, error, _bug_line(error), ExitStatus.ERROR)
        if output.report_cut:
            # Every file was written or sent; only the report lost its reader (``| head``).
            info("stdout's reader went away: the work was finished, the report was cut")
            ctx.exit(ExitStatus.REPORT_CUT)
        return result

    @staticmethod
    def _fail(ctx: click.Context, error: BaseException, line: str, code: int) -> NoReturn:
        if output.debug:
            import traceback

            traceback.print_exception(type(error), error, error.__traceback__)
        say(line)
        ctx.exit(code)


@click.group(
    cls=_Group,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
    },
    epilog=f"""\b
Examples:
  pdf2dcm encode report.pdf --tag PatientName=Doe^Jane --tag PatientID=123
  cat report.pdf | pdf2dcm encode - > report.dcm
  pdf2dcm extract report.dcm -o report.pdf
  pdf2dcm show report.dcm
  pdf2dcm upload report.pdf --tag PatientID=123 --url https://pacs.example.org
  pdf2dcm --profile pacs upload scans/ --recursive --json > uploaded.jsonl
  pdf2dcm ls --patient PatientID=123
  pdf2dcm fetch --study AccessionNumber=A123 -d reports/
  pdf2dcm jobs wait 32af28ce-d1f9-4655-b38e-3237a3cdcbaa --timeout 600
  pdf2dcm watch /srv/inbox --done /srv/done --failed /srv/failed
  pdf2dcm review /srv/failed --log /srv/watch.jsonl
  pdf2dcm --profile pacs check --modality pacs
  pdf2dcm echo ORTHANC@pacs.example.org:4242 --calling-aet WARD3

\b
Settings: options can also be set in the environment, each under the PDF2DCM_ name
its command's --help shows ("env var: PDF2DCM_CONCURRENCY"); the server and credentials
as ORTHANC_URL, ORTHANC_USERNAME, ORTHANC_PASSWORD, ORTHANC_TOKEN; and in profiles of
$XDG_CONFIG_HOME/pdf2dcm/config.toml (or PDF2DCM_CONFIG), chosen by --profile.
Precedence: option > environment > profile > ~/.netrc > default.

{EXIT_CODE_HELP}""",
)
@click.version_option(__version__, "-V", "--version", prog_name="pdf2dcm")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Turn PDF files into DICOM Encapsulated PDF objects and back.

    -q, -v, --debug and --profile go before or after the command's name.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = output.debug


cli.params += _global_options()
_name_environment(cli.params)


def _bug_line(error: BaseException) -> str:
    return f"unexpected error: {type(error).__name__}: {error}; run with --debug for details"


def _from_a_library(error: OSError) -> bool:
    """The transport's errors (http.client's, ssl's, its own) are OSErrors too; one that
    escapes the client, which translates them all, is a bug."""
    return type(error).__module__.split(".")[0] in ("http", "ssl", "pdf2dcm")


def _os_error_line(error: OSError) -> str:
    cause = os.strerror(error.errno) if error.errno is not None else str(error)
    if error.filename is not None:
        return f"{os.fsdecode(error.filename)}: {cause}"
    if _raised_by_echo(error):
        # A result line to stdout on a full disk: the one write no library call wraps.
        return _stdout_refused(error)
    return cause


def _stdout_refused(error: OSError) -> str:
    from pdf2dcm.files import filesystem_error

    return str(filesystem_error(error, "<stdout>", "write"))


def _raised_by_echo(error: BaseException) -> bool:
    trace = error.__traceback__
    while trace is not None:
        code = trace.tb_frame.f_code
        if code.co_name == "echo" and trace.tb_frame.f_globals.get("__name__") == "click.utils":
            return not trace.tb_frame.f_locals.get("err")
        trace = trace.tb_next
    return False


def silence_stdout() -> None:
    """Send what is still buffered for stdout nowhere, so that exiting does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _occupy_closed_descriptors() -> None:
    """Put /dev/null on a closed 0, 1 or 2, so that no file opened later takes its place.

    Otherwise an output or temporary file could become descriptor 2 and receive whatever is
    written to stderr by the interpreter or a library.
    """
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)


def _replace_missing_streams() -> None:
    if sys.stdin is None:
        sys.stdin = ClosedStream("stdin", "give the input as a file, or redirect one into stdin")
    if sys.stdout is None:
        sys.stdout = ClosedStream("stdout", "give -o FILE, or redirect stdout to a file")


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # A second signal while unwinding ends the process at once, as the sender insists.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    raise Terminated(signum)


def _flush_stdout(status: int) -> int:
    """Flush what is left for stdout; a refusal now (``> /dev/full``) still changes the code."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except OSError as error:
        silence_stdout()
        say(f"error: {_stdout_refused(error)}")
        return status or ExitStatus.INPUT
    return status


def main() -> None:
    """Console-script entry point.

    Installs the SIGTERM and SIGHUP handlers (so ``timeout`` or a closed terminal removes
    temporary files like Ctrl-C does) and guards against closed standard streams.
    """
    _occupy_closed_descriptors()
    _replace_missing_streams()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        # Under nohup SIGHUP is ignored on purpose; that choice stands.
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _terminate)
    try:
        cli.main(prog_name="pdf2dcm")
    except SystemExit as done:
        code = done.code
    except Terminated as stopped:
        # Outside a command (while parsing the options): nothing to clean up.
        say(f"terminated by {stopped.name}")
        code = 128 + stopped.signum
    if code is not None and not isinstance(code, int):
        say(str(code))
        code = ExitStatus.ERROR
    sys.exit(_flush_stdout(code or 0))
