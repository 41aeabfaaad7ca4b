"""Commands that speak DICOM to a node directly (``AET@HOST:PORT``), without Orthanc."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from pdf2dcm import errors as err

from .app import cli
from .common import current_profile, option_group, profile_choice, result_line

if TYPE_CHECKING:
    import ssl

    from pdf2dcm.dimse import Node
    from pdf2dcm.dimse_archive import DicomArchive
    from pdf2dcm.lookup import Target

from pdf2dcm.constants import DEFAULT_CALLING_AET
from pdf2dcm.constants import DEFAULT_DIMSE_TIMEOUT as DEFAULT_TIMEOUT
from pdf2dcm.imports import load_pydicom


def node_argument(_ctx: click.Context, _param: click.Parameter, value: str) -> Node:
    """Parse ``AET@HOST:PORT`` as click parses a value: a bad one is a usage error."""
    load_pydicom()
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
    load_pydicom()
    from pdf2dcm.dimse import check_ae_title

    profile = current_profile()
    chosen = profile_choice("calling_aet", value, profile.calling_aet if profile else None)
    if profile is None or chosen is value:
        return check_ae_title(chosen, "calling AE title")
    try:
        return check_ae_title(chosen, f"calling-aet of {profile.where}")
    except err.InputError as error:
        raise err.ConfigurationError(str(error)) from None


@dataclass(frozen=True)
class TlsChoice:
    """How DICOM nodes are reached: plain TCP, or TLS (``--tls`` and its files)."""

    tls: bool
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None

    def context(self) -> ssl.SSLContext | None:
        """The TLS of every node spoken to, or None; usage errors for files without --tls."""
        if not self.tls:
            _only_with(
                "--tls",
                (
                    ("--tls-ca", self.tls_ca),
                    ("--tls-cert", self.tls_cert),
                    ("--tls-key", self.tls_key),
                ),
            )
            return None
        if self.tls_key is not None and self.tls_cert is None:
            raise click.UsageError("--tls-key goes with --tls-cert")
        load_pydicom()
        from pdf2dcm.dimse import tls_context

        return tls_context(self.tls_ca, self.tls_cert, self.tls_key)


def tls_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options of :class:`TlsChoice`, passed to the command as ``tls``."""
    files = click.Path(dir_okay=False, exists=True)
    return option_group(
        "tls",
        TlsChoice,
        [
            click.option(
                "--tls",
                is_flag=True,
                help="Speak to DICOM nodes over TLS (DICOM's secure transport, TLS 1.2 or "
                "later), verifying their certificate.",
            ),
            click.option(
                "--tls-ca",
                type=files,
                metavar="FILE",
                help="With --tls: the PEM certificates of the CAs to trust for nodes "
                "[default: the system's].",
            ),
            click.option(
                "--tls-cert",
                type=files,
                metavar="FILE",
                help="With --tls: this machine's PEM certificate (with its key, unless "
                "--tls-key gives it), for nodes that ask for one.",
            ),
            click.option(
                "--tls-key",
                type=files,
                metavar="FILE",
                help="With --tls-cert: its private key (PEM, not encrypted).",
            ),
        ],
    )(function)


def _only_with(anchor: str, options: Sequence[tuple[str, object]]) -> None:
    """A usage error for the first of ``options`` given, which go only with ``anchor``."""
    for flag, value in options:
        if value:
            raise click.UsageError(f"{flag} goes with {anchor}")


def dicom_destination(
    dicom: DicomChoice, tls: TlsChoice, method: str, forwarding: bool, target: Target | None
) -> tuple[DicomArchive | None, Target | None]:
    """The DICOM node documents go to (None: Orthanc) and the target told how to ask a
    worklist node, both over TLS with ``--tls``; upload and watch take them the same way."""
    secure = tls.context()
    archive = dicom.archive(method, forwarding, secure)
    target = dicom.with_worklist(target, secure)
    if secure is not None and archive is None and not (target is not None and target.worklist_node):
        # The HTTP server's TLS is the URL's https.
        raise click.UsageError(
            "--tls goes with --via dimse or --worklist AET@HOST:PORT; for Orthanc's REST API "
            "give an https:// URL"
        )
    return archive, target


@dataclass(frozen=True)
class DicomChoice:
    """The upload options of a DICOM node destination (``--via dimse``) and of a worklist
    asked directly, gathered as :class:`Destination` gathers the others."""

    scp: str | None
    calling_aet: str
    dimse_timeout: float
    commit: bool
    listen_port: int | None
    worklist_charset: str | None

    def archive(
        self, method: str, forwarding: bool, tls: ssl.SSLContext | None = None
    ) -> DicomArchive | None:
        """The node to store to with ``--via dimse``; usage errors for options that do not
        go together."""
        if method != "dimse":
            _only_with(
                "--via dimse",
                (
                    ("--scp", self.scp),
                    ("--commit", self.commit),
                    ("--listen-port", self.listen_port),
                ),
            )
            return None
        profile = current_profile()
        scp = profile_choice("scp", self.scp, profile.scp if profile else None)
        if scp is None:
            raise click.UsageError("--via dimse needs --scp AET@HOST:PORT, the node to store to")
        if forwarding:
            raise click.UsageError(
                "--send-to-modality and --send-to-peer forward from Orthanc; with --via dimse "
                "give the node itself as --scp"
            )
        if self.listen_port is not None and not self.commit:
            raise click.UsageError("--listen-port goes with --commit")
        if self.listen_port is not None and tls is not None:
            raise click.UsageError(
                "--listen-port takes the report in plain TCP; with --tls the report comes on "
                "the request's association: leave --listen-port out"
            )
        if scp is self.scp or profile is None:
            node = _parse_node(scp, "--scp")
        else:
            load_pydicom()
            from pdf2dcm.dimse import Node

            try:
                node = Node.parse(scp)
            except err.InputError as error:
                raise err.ConfigurationError(f"scp of {profile.where}: {error}") from None
        load_pydicom()
        from pdf2dcm.dimse_archive import DicomArchive

        return DicomArchive(
            node.over_tls(tls), resolve_calling_aet(self.calling_aet), self.dimse_timeout
        )

    def with_worklist(
        self, target: Target | None, tls: ssl.SSLContext | None = None
    ) -> Target | None:
        """The target, told how to ask a worklist SCP directly."""
        if target is None or target.worklist is None or not target.worklist_node:
            _only_with("--worklist AET@HOST:PORT", (("--worklist-charset", self.worklist_charset),))
            return target
        _parse_node(target.worklist, "--worklist")
        return dataclasses.replace(
            target,
            worklist_charset=self.worklist_charset,
            calling_aet=resolve_calling_aet(self.calling_aet),
            timeout=self.dimse_timeout,
            tls=tls,
        )


def _parse_node(text: str, flag: str) -> Node:
    load_pydicom()
    from pdf2dcm.dimse import Node

    try:
        return Node.parse(text)
    except err.InputError as error:
        raise click.BadParameter(str(error), param_hint=flag) from None


def _charset_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return value  # pydicom is imported only when there is a name to check
    load_pydicom()
    from pydicom.charset import python_encoding

    if value in python_encoding:
        return value
    known = ", ".join(name for name in python_encoding if name.startswith(("ISO_IR", "GB")))
    raise click.BadParameter(f"{value!r} is not a DICOM character set; known: {known}")


def dimse_upload_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options of :class:`DicomChoice`, passed to the command as ``dicom``."""
    return option_group(
        "dicom",
        DicomChoice,
        [
            click.option(
                "--scp",
                metavar="AET@HOST:PORT",
                help="With --via dimse: the DICOM node to C-STORE to; --study/--patient/"
                "--series are then found on it by C-FIND [then the profile's scp].",
            ),
            click.option(
                "--calling-aet",
                default=DEFAULT_CALLING_AET,
                show_default=True,
                metavar="AET",
                help="The AE title pdf2dcm calls DICOM nodes from [then the profile's "
                "calling-aet].",
            ),
            click.option(
                "--dimse-timeout",
                type=click.FloatRange(min=0, min_open=True),
                default=DEFAULT_TIMEOUT,
                show_default=True,
                metavar="SECONDS",
                help="Seconds to wait for a DICOM node's connection and each of its answers "
                "(and for the storage commitment report).",
            ),
            click.option(
                "--commit",
                is_flag=True,
                help="With --via dimse: ask the node to commit to storing the documents "
                "(storage commitment) and wait for its report; exit 5 if it refuses, 7 if no "
                "report comes in time. watch moves a file out of the inbox only once committed.",
            ),
            click.option(
                "--listen-port",
                type=click.IntRange(1, 65535),
                help="With --commit: take the report on an association the node opens to "
                "this port (the node must know --calling-aet at this address).",
            ),
            click.option(
                "--worklist-charset",
                metavar="CHARSET",
                callback=_charset_name,
                help="With --worklist AET@HOST:PORT: the character set of answers that "
                "declare none but hold non-ASCII text (ISO_IR 100, ISO_IR 192, GB18030...).",
            ),
        ],
    )(function)


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
@tls_options
def echo(node: Node, calling_aet: str, dimse_timeout: float, tls: TlsChoice) -> None:
    """Check that a DICOM node accepts pdf2dcm (C-ECHO)."""
    load_pydicom()
    from pdf2dcm import dimse

    answered = dimse.echo(
        node.over_tls(tls.context()),
        calling_aet=resolve_calling_aet(calling_aet),
        timeout=dimse_timeout,
    )
    result_line(f"{node} answered C-ECHO in {answered.seconds * 1000:.0f} ms")
