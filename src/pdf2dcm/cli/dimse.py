"""Commands that speak DICOM to a node directly (``AET@HOST:PORT``), without Orthanc."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pdf2dcm import errors as err

from .app import cli
from .common import current_profile, profile_choice, result_line

if TYPE_CHECKING:
    from pdf2dcm.dimse import Node

from pdf2dcm.constants import DEFAULT_CALLING_AET
from pdf2dcm.constants import DEFAULT_DIMSE_TIMEOUT as DEFAULT_TIMEOUT


def node_argument(_ctx: click.Context, _param: click.Parameter, value: str) -> Node:
    """Parse ``AET@HOST:PORT`` as click parses a value: a bad one is a usage error."""
    from pdf2dcm.dimse import Node

    try:
        return Node.parse(value)
    except err.InputError as error:
        raise click.BadParameter(str(error)) from None


def dicom_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--calling-aet`` and ``--timeout`` of a command that opens DICOM associations."""
    function = click.option(
        "--timeout",
        "dimse_timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for the connection and for each DICOM answer.",
    )(function)
    return click.option(
        "--calling-aet",
        default=DEFAULT_CALLING_AET,
        show_default=True,
        metavar="AET",
        help="The AE title pdf2dcm calls from (the node may only accept titles it knows) "
        "[then the profile's calling-aet].",
    )(function)


def resolve_calling_aet(value: str) -> str:
    """``--calling-aet``, unless left at its default: then the profile's, if it has one."""
    from pdf2dcm.dimse import check_ae_title

    profile = current_profile()
    chosen = profile_choice("calling_aet", value, profile.calling_aet if profile else None)
    if profile is None or chosen is value:
        return check_ae_title(chosen, "calling AE title")
    try:
        return check_ae_title(chosen, f"calling-aet of {profile.where}")
    except err.InputError as error:
        raise err.ConfigurationError(str(error)) from None


@cli.command(
    epilog="""\b
Examples:
  pdf2dcm echo ORTHANC@localhost:4242
  pdf2dcm echo PACS@pacs.example.org:104 --calling-aet WARD3

\b
Prints one line and exits 0 when the node answers; otherwise exits 3 with the reason
(connection refused, timed out, unknown host, or the association rejected with the
node's reason, such as an unknown called or calling AE title).""",
)
@click.argument("node", metavar="AET@HOST:PORT", callback=node_argument)
@dicom_options
def echo(node: Node, calling_aet: str, dimse_timeout: float) -> None:
    """Check that a DICOM node accepts pdf2dcm (C-ECHO)."""
    from pdf2dcm import dimse

    answered = dimse.echo(node, calling_aet=resolve_calling_aet(calling_aet), timeout=dimse_timeout)
    result_line(f"{node} answered C-ECHO in {answered.seconds * 1000:.0f} ms")
