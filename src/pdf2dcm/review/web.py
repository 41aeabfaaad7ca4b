"""The review page: plain HTML over the :class:`~pdf2dcm.review.desk.Desk`, no script.

Werkzeug (the ``review`` extra) routes, parses forms, serves the PDF and runs the threaded
local server. Every request must carry the token printed with the address (as a query
parameter, or the cookie the first visit sets); a request whose ``Host`` is not the address
served is refused (DNS rebinding); a POST must come from the page itself (``Origin``, or
``Referer``, of this address) and carry the token in its form, so another site open in the
same browser can neither read the page nor file anything. Handlers are thin: they read the
form, call the desk, and show what it returns, or the error's message as one sentence.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from pdf2dcm.errors import InputError, Pdf2DcmError

from .desk import CHOICE_KINDS, SEARCH_KEYS, Choice, Desk, Filed, Preview
from .queue import Waiting

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from pdf2dcm.client import Patient, Study

COOKIE = "pdf2dcm_review"
_ROUTES = Map(
    [
        Rule("/", endpoint="index", methods=["GET"]),
        Rule("/pdf", endpoint="pdf", methods=["GET"]),
        Rule("/preview", endpoint="preview", methods=["POST"]),
        Rule("/file", endpoint="file", methods=["POST"]),
        Rule("/reject", endpoint="reject", methods=["POST"]),
    ]
)
_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f2f2f2}.error{color:#a00;white-space:pre-line;
font-weight:bold}.note{color:#555}iframe{width:100%;height:34em;border:1px solid #999}
.panes{display:flex;gap:1.5em}.panes>section{flex:1;min-width:0}form.inline{display:inline}
label{margin-right:.8em}.current{background:#fff6d5}
"""


class ReviewApp:
    """The WSGI application; ``hosts`` are the ``Host`` values it answers to (None: any, for
    a page served on every interface, which the token alone guards)."""

    def __init__(self, desk: Desk, token: str, hosts: Collection[str] | None) -> None:
        self.desk = desk
        self.token = token
        self.hosts = None if hosts is None else frozenset(hosts)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.respond(request)
        response.headers.setdefault("Content-Security-Policy", _PAGE_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The answer to one request: refused, an error page, or the handler's."""
        refusal = self._refusal(request)
        if refusal is not None:
            return _page("Refused", _error(refusal), status=403)
        try:
            endpoint, _ = _ROUTES.bind_to_environ(request.environ).match()
        except HTTPException as exc:
            return _page(
                "Not here", _error(exc.description or "no such page"), status=exc.code or 404
            )
        handler = getattr(self, f"_{endpoint}")
        try:
            response: Response = handler(request)
        except Pdf2DcmError as error:
            response = _page("Not done", _error(str(error)) + _back(request), status=400)
        if request.args.get("token") and hmac.compare_digest(request.args["token"], self.token):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    def _refusal(self, request: Request) -> str | None:
        """Why a request is refused (a wrong host, token or origin), or None."""
        if self.hosts is not None and request.host not in self.hosts:
            return f"this page answers at {' or '.join(sorted(self.hosts))}, not {request.host}"
        given = request.args.get("token") or request.cookies.get(COOKIE) or ""
        if request.method == "POST":
            given = request.form.get("token", "")
            origin = request.headers.get("Origin") or _origin_of(request.referrer)
            if origin != f"{request.scheme}://{request.host}":
                return "the request did not come from this page; open the address printed"
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return "wrong or missing token; open the address pdf2dcm review printed"
        return None

    # --- handlers ----------------------------------------------------------------------------

    def _index(self, request: Request) -> Response:
        documents = self.desk.documents()
        shown_kind = request.args.get("reason", "")
        listed = [d for d in documents if not shown_kind or d.kind == shown_kind]
        key = request.args.get("doc")
        body = _listing(documents, listed, shown_kind, key)
        if key:
            body += self._document_panel(request, key)
        return _page("Documents waiting", body)

    def _document_panel(self, request: Request, key: str) -> Markup:
        try:
            document = self.desk.document(key)
        except Pdf2DcmError as error:
            return _error(str(error))
        searched = any(name in request.args for name in SEARCH_KEYS)
        # Before the first search, the form holds the values read from the file.
        given = request.args if searched else document.values
        search = {name: given.get(name, "") for name in SEARCH_KEYS}
        where = request.args.get("in", "studies")
        results = Markup("")
        if searched:
            try:
                results = self._results(where, search, key)
            except Pdf2DcmError as error:
                results = _error(str(error))
        candidates = self.desk.candidates(document) if document.candidates else []
        return (
            _document(document)
            + Markup('<div class="panes"><section>')
            + Markup(
                '<iframe id="first-page" title="first page" src="/pdf?doc={}#page=1&view=FitH">'
                "</iframe>"
            ).format(quote(key))
            + Markup("</section><section>")
            + (
                Markup("<h3>Named in the refusal</h3>") + _studies(candidates, key, self.token)
                if candidates
                else Markup("")
            )
            + _search_form(key, search, where, worklist=self.desk.options.worklist is not None)
            + results
            + _actions(key, self.token)
            + Markup("</section></div>")
        )

    def _results(self, where: str, search: Mapping[str, str], key: str) -> Markup:
        if where == "patients":
            return _patients(self.desk.search_patients(search), key, self.token)
        if where == "worklist":
            return _worklist(self.desk.search_worklist(search), key, self.token)
        return _studies(self.desk.search_studies(search), key, self.token)

    def _pdf(self, request: Request) -> Response:
        document = self.desk.document(request.args.get("doc", ""))
        response = Response(
            _read_file(document.path), mimetype="application/pdf", direct_passthrough=True
        )
        response.headers["Content-Security-Policy"] = "frame-ancestors 'self'"
        response.headers["Content-Disposition"] = "inline"
        return response

    def _preview(self, request: Request) -> Response:
        preview = self.desk.preview(request.form.get("doc", ""), _choice(request.form))
        return _page("Confirm filing", _preview_page(preview, self.token))

    def _file(self, request: Request) -> Response:
        form = request.form
        filed = self.desk.file(form.get("doc", ""), _choice(form), form.get("confirmation", ""))
        return _page("Filed", _filed(filed))

    def _reject(self, request: Request) -> Response:
        filed = self.desk.reject(request.form.get("doc", ""), request.form.get("reason", ""))
        return _page("Rejected", _filed(filed))


class ReviewServer:
    """The page served on ``host``:``port`` (0: a free port) in a thread of its own."""

    def __init__(self, desk: Desk, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind now (an address in use fails here, as an OSError); serve from :meth:`start`."""
        self.token = secrets.token_urlsafe(24)
        self.app = ReviewApp(desk, self.token, ())
        self._server = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        shown = f"[{host}]" if ":" in host else host
        names = {shown, "localhost", "127.0.0.1", "[::1]"}
        every_interface = host in ("0.0.0.0", "::", "")
        self.app.hosts = (
            None if every_interface else frozenset(f"{name}:{self.port}" for name in names)
        )
        self.address = f"http://{shown}:{self.port}/?token={self.token}"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the requests in hand and close the socket (also when never started)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class _QuietHandler(WSGIRequestHandler):
    """No access log: the first request's line would carry the token."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


def _read_file(path: Path) -> Iterable[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(256 * 1024):
            yield block


def _origin_of(referrer: str | None) -> str | None:
    if not referrer:
        return None
    parts = urlsplit(referrer)
    return f"{parts.scheme}://{parts.netloc}"


def _choice(form: Mapping[str, str]) -> Choice:
    kind = form.get("kind", "")
    for known in CHOICE_KINDS:
        if kind == known:
            return Choice(known, form.get("value", ""))
    raise InputError(
        f"{kind[:40]!r} is not a choice; choose a study, a patient, a worklist item or a retry"
    )


# --- HTML --------------------------------------------------------------------------------------


def _page(title: str, body: Markup, *, status: int = 200) -> Response:
    html = Markup(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{} - pdf2dcm review'
        "</title><style>{}</style></head><body><h1>{}</h1>{}</body></html>"
    ).format(title, Markup(_STYLE), title, body)
    return Response(str(html), status=status, mimetype="text/html")


def _error(message: str) -> Markup:
    return Markup('<p class="error" role="alert">{}</p>').format(message)


def _back(request: Request) -> Markup:
    key = request.form.get("doc") or request.args.get("doc")
    target = f"/?doc={quote(key)}" if key else "/"
    return Markup('<p><a href="{}">Back</a></p>').format(target)


def _listing(
    documents: Sequence[Waiting], listed: Sequence[Waiting], shown_kind: str, current: str | None
) -> Markup:
    kinds = sorted({d.kind for d in documents})
    options = Markup("").join(
        Markup('<option value="{}"{}>{} ({})</option>').format(
            kind,
            Markup(" selected") if kind == shown_kind else "",
            kind,
            sum(d.kind == kind for d in documents),
        )
        for kind in kinds
    )
    rows = Markup("").join(
        Markup(
            '<tr{}><td><a href="/?doc={}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td></tr>"
        ).format(
            Markup(' class="current"') if d.key == current else "",
            quote(d.key),
            d.key.partition("/")[2],
            d.arrived.strftime("%Y-%m-%d %H:%M:%S UTC"),
            d.kind,
            d.reason or "",
            ", ".join(f"{k}={v}" for k, v in d.values.items()),
        )
        for d in listed
    )
    return Markup(
        '<form method="get" action="/"><label>Reason <select name="reason">'
        '<option value="">all ({})</option>{}</select></label><button>Show</button></form>'
        '<table id="documents"><tr><th>File</th><th>Arrived</th><th>Reason</th><th>Why</th>'
        "<th>Values from its name and sidecar</th></tr>{}</table>{}"
    ).format(
        len(documents),
        options,
        rows,
        Markup("") if listed else Markup('<p class="note">Nothing waits.</p>'),
    )


def _document(document: Waiting) -> Markup:
    from pdf2dcm.errors import NotAPdfError
    from pdf2dcm.pdf import inspect_pdf

    title = None
    try:
        with document.path.open("rb") as handle:
            title = inspect_pdf(handle, document.size, document.key).title
    except (NotAPdfError, OSError):
        title = None
    notes = Markup("").join(Markup('<p class="note">{}</p>').format(n) for n in document.notes)
    return Markup(
        '<h2 id="document">{}</h2><p>Title: {} &middot; {} bytes &middot; arrived {}</p>'
        '<p id="reason">Why it waits: {}</p>{}'
    ).format(
        document.key.partition("/")[2],
        title or "(none)",
        document.size,
        document.arrived.strftime("%Y-%m-%d %H:%M:%S UTC"),
        document.reason or "not tried yet",
        notes,
    )


def _search_form(key: str, search: Mapping[str, str], where: str, *, worklist: bool) -> Markup:
    labels = {
        "PatientName": "Name",
        "PatientID": "Patient ID",
        "AccessionNumber": "Accession",
        "StudyDate": "Date (YYYYMMDD)",
    }
    fields = Markup("").join(
        Markup('<label>{} <input name="{}" id="search-{}" value="{}" size="14"></label>').format(
            labels[name], name, name, search.get(name, "")
        )
        for name in SEARCH_KEYS
    )
    places = ["studies", "patients", *(["worklist"] if worklist else [])]
    choices = Markup("").join(
        Markup('<option value="{}"{}>{}</option>').format(
            place, Markup(" selected") if place == where else "", place
        )
        for place in places
    )
    return Markup(
        '<h3>Search</h3><form method="get" action="/" id="search">'
        '<input type="hidden" name="doc" value="{}">{}<label>In <select name="in">{}</select>'
        '</label><button id="search-button">Search</button></form>'
    ).format(key, fields, choices)


def _choose(key: str, token: str, kind: str, value: str, label: str) -> Markup:
    return Markup(
        '<form method="post" action="/preview" class="inline">'
        '<input type="hidden" name="token" value="{}"><input type="hidden" name="doc" value="{}">'
        '<input type="hidden" name="kind" value="{}"><input type="hidden" name="value" value="{}">'
        '<button class="choose">{}</button></form>'
    ).format(token, key, kind, value, label)


def _studies(studies: Sequence[Study], key: str, token: str) -> Markup:
    if not studies:
        return Markup('<p class="note">No study matches.</p>')
    columns = ("PatientName", "PatientID", "PatientBirthDate")
    study_columns = ("StudyDate", "AccessionNumber", "StudyDescription")
    rows = Markup("").join(
        Markup("<tr>{}{}<td>{}</td></tr>").format(
            Markup("").join(
                Markup("<td>{}</td>").format(s.patient_main_tags.get(c, "")) for c in columns
            ),
            Markup("").join(
                Markup("<td>{}</td>").format(s.main_tags.get(c, "")) for c in study_columns
            ),
            _choose(key, token, "study", s.id, "File in this study"),
        )
        for s in studies
    )
    return Markup(
        '<table class="results"><tr><th>Name</th><th>Patient ID</th><th>Born</th><th>Date</th>'
        "<th>Accession</th><th>Study</th><th></th></tr>{}</table>"
    ).format(rows)


def _patients(patients: Sequence[Patient], key: str, token: str) -> Markup:
    if not patients:
        return Markup('<p class="note">No patient matches.</p>')
    columns = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
    rows = Markup("").join(
        Markup("<tr>{}<td>{}</td></tr>").format(
            Markup("").join(Markup("<td>{}</td>").format(p.main_tags.get(c, "")) for c in columns),
            _choose(key, token, "patient", p.id, "New study for this patient"),
        )
        for p in patients
    )
    return Markup(
        '<table class="results"><tr><th>Name</th><th>Patient ID</th><th>Born</th><th>Sex</th>'
        "<th></th></tr>{}</table>"
    ).format(rows)


def _worklist(items: Sequence[Mapping[str, str]], key: str, token: str) -> Markup:
    if not items:
        return Markup('<p class="note">No scheduled procedure matches.</p>')
    columns = ("PatientName", "PatientID", "AccessionNumber", "RequestedProcedureDescription")
    rows = Markup("").join(
        Markup("<tr>{}<td>{}</td></tr>").format(
            Markup("").join(Markup("<td>{}</td>").format(item.get(c, "")) for c in columns),
            _choose(key, token, "worklist", _worklist_term(item), "File for this procedure"),
        )
        for item in items
    )
    return Markup(
        '<table class="results"><tr><th>Name</th><th>Patient ID</th><th>Accession</th>'
        "<th>Procedure</th><th></th></tr>{}</table>"
    ).format(rows)


def _worklist_term(item: Mapping[str, str]) -> str:
    uid = item.get("StudyInstanceUID", "").strip()
    if uid:
        return f"StudyInstanceUID={uid}"
    return f"AccessionNumber={item.get('AccessionNumber', '').strip()}"


def _actions(key: str, token: str) -> Markup:
    return Markup(
        "<h3>Or</h3>{}"
        '<form method="post" action="/reject" id="reject"><input type="hidden" name="token" '
        'value="{}"><input type="hidden" name="doc" value="{}"><label>Reason <input '
        'name="reason" id="reject-reason" size="30" required></label><button>Reject</button>'
        "</form>"
    ).format(_choose(key, token, "as-is", "", "Retry as it is"), token, key)


def _preview_page(preview: Preview, token: str) -> Markup:
    warnings = Markup("").join(
        Markup('<p class="note">warning: {}</p>').format(w) for w in preview.warnings
    )
    rows = Markup("").join(
        Markup("<tr><th>{}</th><td>{}</td></tr>").format(name, _value(value))
        for name, value in preview.attributes.items()
    )
    key = preview.document.key
    return Markup(
        "<p>{} will be filed ({}) with these attributes. Nothing is sent until you confirm."
        '</p>{}<form method="post" action="/file"><input type="hidden" name="token" value="{}">'
        '<input type="hidden" name="doc" value="{}"><input type="hidden" name="kind" value="{}">'
        '<input type="hidden" name="value" value="{}">'
        '<input type="hidden" name="confirmation" value="{}">'
        '<button id="confirm">Confirm and file</button> <a href="/?doc={}">Back</a></form>'
        '<table id="attributes">{}</table>'
    ).format(
        key.partition("/")[2],
        str(preview.choice),
        warnings,
        token,
        key,
        preview.choice.kind,
        preview.choice.value,
        preview.confirmation,
        quote(key),
        rows,
    )


def _value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _filed(filed: Filed) -> Markup:
    name = filed.document.key.partition("/")[2]
    if filed.result is None:
        line = Markup('<p id="outcome">{} was rejected and moved to {}.</p>').format(
            name, filed.destination
        )
    else:
        line = Markup(
            '<p id="outcome">{} was filed as instance {} ({}) in study {}; moved to {}.</p>'
        ).format(
            name,
            filed.result.id or filed.result.sop_instance_uid,
            filed.result.status,
            filed.result.parent_study or filed.result.study_instance_uid,
            filed.destination,
        )
    return line + Markup('<p><a href="/">Back to the list</a></p>')
