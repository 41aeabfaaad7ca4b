"""The root command, the exit-code table and the one place errors become exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from enum import IntEnum
from typing import Any, NoReturn

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
    INTERRUPTED = 130


EXIT_CODES: dict[type[err.Pdf2DcmError], ExitStatus] = {
    err.Pdf2DcmError: ExitStatus.ERROR,
    err.InputError: ExitStatus.INPUT,
    err.NotAPdfError: ExitStatus.INPUT,
    err.TagError: ExitStatus.INPUT,
    err.NotEncapsulatedPdfError: ExitStatus.INPUT,
    err.OutputExistsError: ExitStatus.INPUT,
    err.FileSystemError: ExitStatus.INPUT,
    err.IdentityConflictError: ExitStatus.INPUT,
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
}

EXIT_CODE_HELP = """\b
Exit codes:
  0    success
  1    unexpected error (a bug): run with --debug for details
  2    usage or input error: bad option, bad tag, not a PDF, missing file,
       a tag that contradicts the parent or reference, a file the system refused
  3    server unreachable: refused, DNS, TLS, timeout (after retries)
  4    server refused the request (4xx): authentication, unknown ID; a redirect
  5    server failed (5xx) after retries, or answered in an unexpected shape
  6    an Orthanc job ended in failure
  7    waiting for a job timed out (the job goes on)
  8    conflict: the server holds another patient's study or another document
       under the same UID; nothing was stored
  130  interrupted (Ctrl-C)"""


def exit_status_for(error: BaseException) -> ExitStatus:
    """The exit code of an error: its own class's, else its nearest base's."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitStatus.ERROR


def say(message: str) -> None:
    """A line on stderr, prefixed like every message of the tool."""
    click.echo(f"pdf2dcm: {message}", err=True)


class _Group(click.Group):
    """Maps every error to its exit code in one place, with a traceback only under --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except err.Pdf2DcmError as error:
            self._fail(ctx, error, f"error: {error}", exit_status_for(error))
        except KeyboardInterrupt as error:
            self._fail(ctx, error, "interrupted", ExitStatus.INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (``| head``); that is its choice, not an error of ours.
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            ctx.exit(ExitStatus.SUCCESS)
        except Exception as error:
            self._fail(
                ctx,
                error,
                f"unexpected error: {type(error).__name__}: {error}; run with --debug for details",
                ExitStatus.ERROR,
            )

    @staticmethod
    def _fail(ctx: click.Context, error: BaseException, line: str, code: int) -> NoReturn:
        if ctx.obj and ctx.obj.get("debug"):
            traceback.print_exception(type(error), error, error.__traceback__)
        say(line)
        ctx.exit(code)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"""\b
Examples:
  pdf2dcm encode report.pdf --tag PatientName=Doe^Jane --tag PatientID=123
  pdf2dcm extract report.dcm -o report.pdf
  cat report.pdf | pdf2dcm encode - > report.dcm

{EXIT_CODE_HELP}""",
)
@click.version_option(__version__, "--version", prog_name="pdf2dcm")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Turn PDF files into DICOM Encapsulated PDF objects and back."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pdf2dcm")
