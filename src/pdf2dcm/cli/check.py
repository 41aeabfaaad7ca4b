"""``pdf2dcm check``: what the tool would use to reach the server, and whether it works."""

from __future__ import annotations

import click

from .app import cli, exit_status_for
from .common import Connection, connection_options, result_line


@cli.command(
    "check",
    epilog="""\b
Examples:
  pdf2dcm check
  pdf2dcm --profile pacs check --modality pacs --worklist ris

\b
Exit 0 when every check passed; otherwise the exit code of the first failure (3 server
unreachable, 4 credentials refused or a modality unknown, 5 server failed). Secrets are
never shown.""",
)
@connection_options
@click.option(
    "--dicomweb-url",
    metavar="URL",
    help="DICOMweb root to check [then the profile's dicomweb-url; default URL/dicom-web].",
)
@click.option(
    "--modality",
    "modalities",
    multiple=True,
    metavar="NAME",
    help="A DICOM modality declared in Orthanc to C-ECHO through it; repeatable.",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    metavar="NAME",
    help="An Orthanc peer declared in Orthanc to reach through it; repeatable.",
)
@click.option(
    "--worklist",
    metavar="MODALITY",
    help="The worklist modality to query (an empty query).",
)
def check(
    connection: Connection,
    dicomweb_url: str | None,
    modalities: tuple[str, ...],
    peers: tuple[str, ...],
    worklist: str | None,
) -> None:
    """Show the URL (and where it came from), user, authentication and TLS in use, then check
    that the server answers, the credentials are accepted, DICOMweb works, and each named
    modality, peer and worklist answers, as `gh auth status` does."""
    from pdf2dcm.check import describe, first_failure, run_checks

    with connection.open(dicomweb_url=dicomweb_url) as client:
        for setting in describe(client.settings):
            result_line(f"{setting.name + ':':<16}{setting.value}")
        results = run_checks(client, modalities=modalities, peers=peers, worklist=worklist)
    for result in results:
        mark = {True: "ok", False: "FAILED", None: "skipped"}[result.ok]
        result_line(f"{mark:<8}{result.name}: {result.detail}")
    failure = first_failure(results)
    if failure is not None:
        click.get_current_context().exit(exit_status_for(failure))
