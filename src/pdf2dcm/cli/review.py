"""The ``review`` command: a local web page to match what a hot folder could not file."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pdf2dcm import errors as err

from .app import cli, info
from .common import (
    Connection,
    collect_tags,
    connection_options,
    current_profile,
    result_line,
)
from .watch import _name_rule, _stop_on_signals

if TYPE_CHECKING:
    from pdf2dcm.review.web import ReviewServer

INSTALL_HINT = "pip install 'pdf2dcm[review]'"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``:PORT`` (``[::1]:8080`` for IPv6); port 0 takes a free one."""
    host, port = "127.0.0.1", "0"
    if text.startswith("["):
        inside, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise click.BadParameter(f"{text!r} is not [HOST]:PORT", param_hint="--listen")
        host, port = inside, rest.removeprefix(":") or "0"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        host = host or "127.0.0.1"
    elif text:
        host = text
    if not port.isdigit() or int(port) > 65535 or not host:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--listen")
    return host, int(port)


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm review /srv/failed --log /srv/watch.jsonl \\
      --name-pattern '{PatientID}_{AccessionNumber}_{*}.pdf' \\
      --study 'AccessionNumber={AccessionNumber}'
  pdf2dcm review /srv/failed /srv/inbox --log /srv/watch.jsonl --done /srv/done \\
      --rejected /srv/rejected --worklist RIS --listen 127.0.0.1:8042

\b
Serves a page on 127.0.0.1 (a free port unless --listen says otherwise) and prints its
address, with a token that every request must carry. The page lists the PDFs waiting in the
FOLDERs (newest first, with why they wait, from NAME.pdf.error.json or the --log journal),
shows each one's first page, searches the archive's patients and studies (and the worklist),
and files a document into the study chosen after showing every attribute it will get, by
the same checks as upload. Filed files move to done/, rejected ones to rejected/ (inside
their folder unless --done/--rejected say otherwise); the journal gets 'matched' and
'rejected' records. Files a running watcher holds in its inbox are listed too (give the inbox
and its journal); the page and the watcher lock each file, so only one of them files it; the
inbox then needs --done and --rejected outside it. Ctrl-C stops the page.
Needs the review extra: """
    + INSTALL_HINT
    + ".",
)
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    metavar="FOLDER...",
)
@connection_options
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on; port 0 takes a free one. Another host than 127.0.0.1 lets "
    "other machines reach the page (still only with the token): use it on a trusted network.",
)
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The hot folder's journal: reasons are read from it, 'matched' and 'rejected' "
    "records appended.",
)
@click.option(
    "--name-pattern", metavar="PATTERN", help="Read values from file names, as watch does."
)
@click.option("--name-regex", metavar="REGEX", help="As --name-pattern, a regular expression.")
@click.option(
    "--study",
    "study_terms",
    multiple=True,
    metavar="KEY=VALUE",
    help="What 'Retry as it is' looks up, terms with {Keyword} as the watcher's --study.",
)
@click.option(
    "--worklist",
    metavar="MODALITY",
    help="Also search the worklist of this Orthanc modality, and file for its procedures.",
)
@click.option(
    "--tag",
    "tag_assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an attribute on every document filed; repeatable.",
)
@click.option(
    "--done",
    type=click.Path(file_okay=False, path_type=Path),
    help="Move filed documents here [default: done/ in their folder].",
)
@click.option(
    "--rejected",
    type=click.Path(file_okay=False, path_type=Path),
    help="Move rejected documents here [default: rejected/ in their folder].",
)
def review(
    folders: tuple[Path, ...],
    connection: Connection,
    listen: str,
    log_file: Path | None,
    name_pattern: str | None,
    name_regex: str | None,
    study_terms: tuple[str, ...],
    worklist: str | None,
    tag_assignments: tuple[str, ...],
    done: Path | None,
    rejected: Path | None,
) -> None:
    """Serve a local page to match, file or reject the documents waiting in FOLDERs."""
    if importlib.util.find_spec("werkzeug") is None:
        raise err.ConfigurationError(
            f"pdf2dcm review needs its web library; install it with: {INSTALL_HINT}"
        )
    from pdf2dcm.lookup import Target
    from pdf2dcm.review import Desk, ReviewOptions
    from pdf2dcm.review.web import ReviewServer
    from pdf2dcm.upload import UploadOptions

    host, port = parse_listen(listen)
    profile = current_profile()
    options = ReviewOptions(
        folders=folders,
        upload=UploadOptions(
            tags=collect_tags(tag_assignments, None, profile.tags if profile else None)
        ),
        target=Target(study=study_terms),
        name_rule=_name_rule(name_pattern, name_regex),
        worklist=worklist,
        journal=log_file,
        done=done,
        rejected=rejected,
    )
    with connection.open() as client:
        try:
            server = ReviewServer(Desk(client, options), host, port)
        except OSError as exc:
            raise err.FileSystemError(
                f"cannot serve on {listen}: {exc.strerror}; give another --listen"
            ) from exc
        result_line(server.address)
        info("Ctrl-C stops the page")
        _serve_until_stopped(server)


def _serve_until_stopped(server: ReviewServer) -> None:
    """Serve until SIGINT or SIGTERM (as watch stops); the requests in hand are finished."""
    stop = threading.Event()
    server.start()
    try:
        with _stop_on_signals(stop):
            stop.wait()
    finally:
        server.stop()
