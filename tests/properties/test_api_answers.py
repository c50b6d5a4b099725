"""Both API clients under generated answers, over a real socket: shapes, types, sizes, encodings.

Whatever a server (or a proxy in front of it) sends — truncated JSON, HTML, an empty body,
numbers where objects belong, 1 MB strings, invalid UTF-8, JSON nested 100,000 levels, odd rate
limit headers — a client call returns a value or raises one of the error classes of
``shared/errors.py``.  Nothing else may escape: the consumer routes failures by those classes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.billomat import BillomatClient
from shared.errors import BelegsyncError
from shared.gmi import GmiClient, GmiUpload

PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedServer:
    """Answers every request with ``answer``, on a real socket."""

    def __init__(self) -> None:
        self.answer = Answer(200, b"{}")
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answer = server.answer
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                # A fresh connection per answer: a body the client leaves unread (a 204 with
                # content) must not turn into the next example's answer.
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = _reply

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer()
    yield running
    running.close()


# -- answers ----------------------------------------------------------------------------------

# The names both APIs use (getmyinvoices.md, billomat.md), so generated objects hit the parsers'
# real paths instead of being refused at the first missing key.
KEYS = [
    "documentUid", "prim_uid", "companyUid", "documentNumber", "documentDate", "documentType",
    "fileContent", "fileName", "netAmount", "grossAmount", "currency", "tags", "isArchived",
    "currentWorkflow", "isCompleted", "records", "data", "totalCount", "maxPages", "exists",
    "success", "error_code", "code", "detail", "message", "errors", "error", "id", "created",
    "updated", "date", "status", "total_net", "total_gross", "currency_code", "metadata", "key",
    "value", "base64file", "filename", "mimetype", "filesize", "document_type", "pdf",
    "inbox-documents", "inbox-document", "invoices", "invoice", "@page", "@per_page", "@total",
    "name", "countryUid", "countryCode", "document_prim_uid", "company_id",
]  # fmt: skip
TRICKY_TEXT = [
    "", " ", "0", "-1", "1e400", "1E+999999", "Infinity", "-inf", "NaN", "sNaN", "²", "٣",
    "0000-00-00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2024-02-30",
    "2024-03-04T16:12:59+01:00", "99999999999999999999999", "true", "null", "[]", "{}",
    "%PDF-1.4", "not base64!", "QUJD", "<html>", "\x00", "\ud800x",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(TRICKY_TEXT)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=10,
)

# The documented shapes (S: a leaf): filled with generated leaves they reach the parsers' inner
# paths, which random objects rarely do.
S = object()
GMI_DOCUMENT = {
    "documentUid": S, "documentNumber": S, "documentDate": S, "documentType": S, "fileName": S,
    "fileContent": S, "netAmount": S, "grossAmount": S, "currency": S, "tags": [S, S],
    "isArchived": S, "currentWorkflow": {"isCompleted": S, "currentWorkflowStep": S},
    "created": S, "updated": S, "source": S, "companyUid": S,
}  # fmt: skip
INBOX_DOCUMENT = {
    "id": S, "created": S, "filename": S, "mimetype": S, "filesize": S, "document_type": S,
    "metadata": {"data": [{"key": S, "value": S}, {"key": "BELEGSYNC_REF", "value": S}]},
    "base64file": S,
}  # fmt: skip
INVOICE = {
    "id": S, "invoice_number": S, "status": S, "date": S, "created": S, "updated": S,
    "client_id": S, "total_net": S, "total_gross": S, "currency_code": S, "title": S,
}  # fmt: skip
SHAPES: list[Any] = [
    {"totalCount": S, "maxPages": S, "records": [GMI_DOCUMENT, GMI_DOCUMENT]},
    GMI_DOCUMENT,
    {"documentUid": S, "success": S},
    {"exists": S},
    {"records": [{"companyUid": S, "name": S}], "companyUid": S},
    {"records": [{"countryUid": S, "countryCode": S}]},
    {"success": S, "error_code": S, "message": S},
    {"errors": [{"code": S, "detail": S}]},
    {"inbox-documents": {
        "@page": S, "@per_page": S, "@total": S, "inbox-document": [INBOX_DOCUMENT],
    }},
    {"inbox-document": INBOX_DOCUMENT},
    {"invoices": {"@page": S, "@per_page": S, "@total": S, "invoice": [INVOICE, INVOICE]}},
    {"invoices": {"@page": S, "invoice": INVOICE}},
    {"invoice": INVOICE},
    {"pdf": {"filename": S, "mimetype": S, "base64file": S}},
    {"errors": {"error": S}},
]  # fmt: skip


def _fill(draw: st.DrawFn, shape: Any) -> Any:
    """A shape with generated leaves; each key present with probability 0.9."""
    if shape is S:
        return draw(values)
    if isinstance(shape, dict):
        return {k: _fill(draw, v) for k, v in shape.items() if draw(st.integers(0, 9))}
    if isinstance(shape, list):
        form = draw(st.sampled_from(["list", "empty", "bare"]))  # Billomat's XML->JSON quirks
        if form == "list":
            return [_fill(draw, item) for item in shape]
        return [] if form == "empty" else _fill(draw, shape[0])
    return shape


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["shaped"] * 6 + ["json", "truncated", "raw", "html", "big"]))
    if kind == "shaped":
        return _dumps(_fill(draw, draw(st.sampled_from(SHAPES))))
    if kind == "json":
        return _dumps(draw(values))
    if kind == "truncated":
        text = _dumps(_fill(draw, draw(st.sampled_from(SHAPES))))
        return text[: draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))]
    if kind == "html":
        return b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    if kind == "big":  # a 1 MB string where a short one belongs
        return _dumps({draw(st.sampled_from(KEYS)): "A" * 1_000_000, "id": 1, "documentUid": 1})
    return draw(st.binary(max_size=300))  # empty, invalid UTF-8, anything


header_values = st.sampled_from(TRICKY_TEXT[:25]) | st.integers(-(10**30), 10**30).map(str)
answers = st.builds(
    Answer,
    status=st.sampled_from([200, 200, 200, 201, 204, 400, 401, 403, 404, 413, 422, 429, 500, 503])
    | st.integers(min_value=200, max_value=599),
    body=bodies(),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": st.sampled_from(
                ["application/json", "text/html", "text/plain", "application/xml", "x/y"]
            ),
            "X-Rate-Limit-Remaining": header_values,
            "X-Rate-Limit-Reset": header_values,
            "Retry-After": header_values,
        },
    ),
)

DEEP = b"[" * 100_000 + b"]" * 100_000
NASTY = [
    Answer(200, DEEP),
    Answer(422, b'{"errors":' * 100_000),
    Answer(200, b'{"documentUid": "Infinity", "records": [{"documentUid": "sNaN"}]}'),
    Answer(200, b'{"id": "1E+999999", "created": "9999-12-31T23:59:59-05:00"}'),
    Answer(429, b"try again in 99999999999999999999 seconds", {"Retry-After": "²"}),
    Answer(200, b"{}", {"X-Rate-Limit-Remaining": "Infinity", "X-Rate-Limit-Reset": "1e400"}),
    Answer(200, b"\xff\xfe\x00{"),
]

# -- the calls ----------------------------------------------------------------------------------

PDF = b"%PDF-1.4 belegsync"
UPLOAD = GmiUpload(file_name="a.pdf", content=PDF, document_type="INCOMING_INVOICE")
GMI_CALLS: dict[str, Callable[[GmiClient], object]] = {
    "list_documents_page": lambda c: c.list_documents_page(page=1),
    "get_document": lambda c: c.get_document(7),
    "upload_document": lambda c: c.upload_document(UPLOAD),
    "document_exists": lambda c: c.document_exists(PDF),
    "update_document": lambda c: c.update_document(7, is_archived=True),
    "list_companies": lambda c: c.list_companies(),
    "create_company": lambda c: c.create_company("Acme", 1),
    "countries": lambda c: c.countries(),
    "account": lambda c: c.account(),
}
BILLOMAT_CALLS: dict[str, Callable[[BillomatClient], object]] = {
    "inbox_page": lambda c: c.inbox_page(1, 100),
    "get_inbox_document": lambda c: c.get_inbox_document(7),
    "create_inbox_document": lambda c: c.create_inbox_document(content=PDF, filename="a.pdf"),
    "delete_inbox_document": lambda c: c.delete_inbox_document(7),
    "documents_page": lambda c: c.documents_page("invoices", page=1),
    "get_document": lambda c: c.get_document("invoices", 7),
    "get_pdf": lambda c: c.get_pdf("invoices", 7),
}


def answered(server: ScriptedServer, answer: Answer, call: Callable[[], object]) -> None:
    """The call returns, or raises one of our error classes — nothing else."""
    server.answer = answer
    try:
        call()
    except BelegsyncError as e:
        refusal = str(e)
    else:
        return
    assert refusal  # every refusal says something, and never the key
    assert "gmi-property-key" not in refusal
    assert "bm-property-key" not in refusal


@pytest.fixture(scope="module")
def gmi(server: ScriptedServer) -> Iterator[GmiClient]:
    client = GmiClient("gmi-property-key", base_url=server.url, timeout=(5.0, 30.0))
    yield client
    client.close()


@pytest.fixture(scope="module")
def billomat(server: ScriptedServer) -> Iterator[BillomatClient]:
    client = BillomatClient(
        "acme", "bm-property-key", url_template=server.url + "/{billomat_id}", timeout=(5.0, 30.0)
    )
    yield client
    client.close()


@PROPERTY
@given(st.sampled_from(sorted(GMI_CALLS)), answers)
def test_gmi_client_raises_nothing_but_its_error_classes(
    server: ScriptedServer, gmi: GmiClient, name: str, answer: Answer
) -> None:
    answered(server, answer, lambda: GMI_CALLS[name](gmi))


@PROPERTY
@given(st.sampled_from(sorted(BILLOMAT_CALLS)), answers)
def test_billomat_client_raises_nothing_but_its_error_classes(
    server: ScriptedServer, billomat: BillomatClient, name: str, answer: Answer
) -> None:
    answered(server, answer, lambda: BILLOMAT_CALLS[name](billomat))


@pytest.mark.parametrize("answer", NASTY, ids=lambda a: a.body[:12].decode("latin-1"))
def test_the_nastiest_answers_are_refused_in_every_call(
    server: ScriptedServer, gmi: GmiClient, billomat: BillomatClient, answer: Answer
) -> None:
    for gmi_call in GMI_CALLS.values():
        answered(server, answer, lambda: gmi_call(gmi))  # noqa: B023 - called at once
    for billomat_call in BILLOMAT_CALLS.values():
        answered(server, answer, lambda: billomat_call(billomat))  # noqa: B023 - called at once
