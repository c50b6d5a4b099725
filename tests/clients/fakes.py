"""Recorded-response fakes of GMI and Billomat on real sockets: the second implementation.

Each fake keeps just enough state to answer like the API docs' examples
(shared/api/getmyinvoices.md, shared/api/billomat.md), with the same seeding methods as
``simulators.Simulators`` for the subset the contract suite uses. ``script()`` queues one-shot
replies (odd shapes, HTML gateways, dropped connections) ahead of the stateful behaviour.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
HTML_502 = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center>" + b"<p>" + b"x" * 4000 + b"</p>"
    b"<hr><center>nginx</center></body></html>"
)
PDF = b"%PDF-1.4\n%fake\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    raw_query: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def q(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def q_all(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes/str as they are; anything else is JSON-encoded
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # read the request, then close the connection without answering
    delay: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return Reply(status, body, headers=dict(headers))


class FakeServer:
    """A threaded HTTP/1.1 server around ``app``; records every request."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._scripted: deque[tuple[str | None, str | None, Reply]] = deque()
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._drops_after_write = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parts.query,
                    parse_qsl(parts.query, keep_blank_values=True),
                    dict(self.headers.items()),
                    body,
                )
                reply = fake._dispatch(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.payload()
                self.send_response(reply.status)
                if reply.content_type:
                    self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *replies: Reply, method: str | None = None, path: str | None = None) -> None:
        """The next matching requests get these replies, in order, instead of the real answer."""
        with self._lock:
            self._scripted.extend((method, path, r) for r in replies)

    def clear_faults(self) -> None:
        with self._lock:
            self._scripted.clear()

    def fail_next(self, n: int = 1, status: int = 503, html: bool = False) -> None:
        reply = Reply(status, HTML_502, "text/html") if html else self.error_reply(status)
        self.script(*[reply] * n)

    def drop_after_next_write(self, n: int = 1) -> None:
        with self._lock:
            self._drops_after_write += n

    def _dispatch(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            for i, (method, path, reply) in enumerate(self._scripted):
                if (method is None or method == seen.method) and (
                    path is None or seen.path.endswith(path)
                ):
                    del self._scripted[i]
                    return reply
            reply = self.handle(seen)
            drops = self._drops_after_write
            if drops and seen.method != "GET":
                # The write is performed; only the answer is lost.
                self._drops_after_write = drops - 1
                return Reply(drop=True)
            return reply

    def requests_to(self, method: str, path_suffix: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.endswith(path_suffix)]

    # -- to override -------------------------------------------------------------------------

    def handle(self, seen: Seen) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int) -> Reply:
        raise NotImplementedError


# =============================================================================================
# GMI


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class _GmiAccount:
    name: str
    read_only: bool = False
    blocked: bool = False
    cancelled: bool = False
    per_minute: int = 100
    per_day: int = 2500
    uploads_per_hour: int = 100
    rate_limit_status: int = 403
    minute_calls: list[float] = field(default_factory=list)
    day_calls: int = 0
    upload_times: list[float] = field(default_factory=list)
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)
    companies: dict[int, dict[str, Any]] = field(default_factory=dict)


class FakeGmi(FakeServer):
    """GMI Accounts API v3 at ``{url}/accounts/v3``.

    ``error_shape`` picks the 422 body: ``"spec"`` (``detail``/``error_code``) or ``"errors"``
    (the newer ``errors: [{code, detail}]``); ``records_as_object`` emits ``records`` keyed by uid.
    """

    def __init__(self, *, error_shape: str = "spec", records_as_object: bool = False) -> None:
        super().__init__()
        self.error_shape = error_shape
        self.records_as_object = records_as_object
        self.accounts: dict[str, _GmiAccount] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        self._next_uid = 28715

    @property
    def base_url(self) -> str:
        return self.url + "/accounts/v3"

    # -- seeding (same names as simulators.Simulators().gmi) ---------------------------------

    def add_account(
        self,
        api_key: str,
        *,
        name: str = "Fake GmbH",
        read_only: bool = False,
        blocked: bool = False,
        cancelled: bool = False,
    ) -> None:
        self.accounts[api_key] = _GmiAccount(name, read_only, blocked, cancelled)

    def set_limits(
        self,
        api_key: str,
        *,
        per_minute: int = 100,
        per_day: int = 2500,
        uploads_per_hour: int = 100,
        rate_limit_status: int = 403,
        **_: Any,
    ) -> None:
        account = self.accounts[api_key]
        account.per_minute, account.per_day = per_minute, per_day
        account.uploads_per_hour = uploads_per_hour
        account.rate_limit_status = rate_limit_status

    def set_options(
        self, *, records_as_object: bool | None = None, error_shape: str | None = None
    ) -> None:
        if records_as_object is not None:
            self.records_as_object = records_as_object
        if error_shape is not None:
            self.error_shape = error_shape

    def seed_document(
        self,
        api_key: str,
        *,
        document_type: str = "INCOMING_INVOICE",
        document_number: str | None = None,
        document_date: str = "2026-11-02",
        company_name: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        net_amount: str | None = None,
        gross_amount: str | None = None,
        currency: str = "EUR",
        content: bytes | None = None,
        filename: str | None = None,
        approval: bool | None = None,
        is_archived: bool = False,
        is_locked: bool = False,
        note: str = "",
    ) -> int:
        with self._lock:
            uid = self._new_uid()
            data = content or PDF + str(uid).encode()
            self.accounts[api_key].docs[uid] = {
                "documentUid": uid,
                "createdAt": "2026-11-02",
                "companyUid": 307 if company_name else 0,
                "companyName": company_name or "",
                "documentType": document_type,
                "documentNumber": document_number or f"receipt-{uid}",
                "documentDate": document_date,
                "documentDueDate": "",
                "netAmount": float(net_amount) if net_amount else 0.0,
                "grossAmount": float(gross_amount) if gross_amount else 0.0,
                "currency": currency,
                "isArchived": is_archived,
                "isLocked": is_locked,
                "isOcrCompleted": 1,
                "tags": list(tags),
                "note": note,
                "source": "Manual",
                "filename": filename or f"receipt-{uid}.pdf",
                "fileSize": f"{len(data) / 1024:.2f}",
                "paymentStatus": "Unknown",
                "_content": data,
                "_approval": approval,
            }
            return uid

    def set_tags(self, api_key: str, uid: int, tags: list[str]) -> None:
        self.accounts[api_key].docs[uid]["tags"] = list(tags)

    def approve(self, api_key: str, uid: int) -> None:
        self.accounts[api_key].docs[uid]["_approval"] = True

    def documents(self, api_key: str) -> list[dict[str, Any]]:
        return [
            {
                **{k: v for k, v in d.items() if not k.startswith("_")},
                "sha256": hashlib.sha256(d["_content"]).hexdigest(),
            }
            for d in self.accounts[api_key].docs.values()
        ]

    def request_counts(self, api_key: str | None = None) -> dict[str, int]:
        return {
            endpoint: n
            for (key, endpoint), n in self.counts.items()
            if api_key is None or key == api_key
        }

    def _new_uid(self) -> int:
        self._next_uid += 1
        return self._next_uid

    # -- wire --------------------------------------------------------------------------------

    def error_reply(self, status: int) -> Reply:
        if status == 503:
            return json_reply(503, {"code": 503, "detail": "Temporary Issue. Please retry later."})
        return json_reply(status, {"code": status, "detail": "Error"})

    def fail422(self, code: int, detail: str) -> Reply:
        if self.error_shape == "errors":
            return json_reply(422, {"success": False, "errors": [{"code": code, "detail": detail}]})
        return json_reply(422, {"success": False, "detail": detail, "error_code": code})

    def handle(self, seen: Seen) -> Reply:
        prefix = "/accounts/v3"
        if not seen.path.startswith(prefix):
            return Reply(404, "<html><body>Not Found</body></html>", "text/html")
        path = seen.path[len(prefix) :]
        key = seen.header("X-API-KEY") or ""
        account = self.accounts.get(key)
        if account is None:
            return json_reply(403, {"code": 403, "detail": "API Key does not exist"})
        if account.blocked:
            return json_reply(403, {"code": 407, "detail": "API Key is blocked"})
        if account.cancelled:
            return json_reply(403, {"code": 431, "detail": "Account is cancelled"})
        now = time.monotonic()
        account.minute_calls = [t for t in account.minute_calls if now - t < 60]
        if account.day_calls >= account.per_day:
            return json_reply(
                account.rate_limit_status, {"code": 429, "detail": "Daily API limit exceeded."}
            )
        if len(account.minute_calls) >= account.per_minute:
            return json_reply(
                account.rate_limit_status,
                {"code": 429, "detail": "Per minute API call limit exceeded."},
            )
        account.minute_calls.append(now)
        account.day_calls += 1
        if seen.method != "GET" and not (seen.header("Content-Type") or "").startswith(
            "application/json"
        ):
            return json_reply(415, {"code": 415, "detail": "Request content-type is not valid."})
        if seen.method != "GET" and account.read_only:
            return json_reply(403, {"code": 430, "detail": "You do not have required permission"})
        params: dict[str, Any] = dict(seen.query)
        if seen.body:
            params.update(seen.json())
        segments = path.strip("/").split("/")
        endpoint = f"{seen.method} /{segments[0]}" + ("/{uid}" if len(segments) > 1 else "")
        if segments[1:2] == ["exists"]:
            endpoint = f"{seen.method} /documents/exists"
        self.counts[(key, endpoint)] += 1
        handler: Callable[[_GmiAccount, Seen, dict[str, Any], list[str]], Reply] | None = {
            "GET /documents": self._list,
            "GET /documents/{uid}": self._get,
            "POST /documents": self._upload,
            "POST /documents/exists": self._exists,
            "PUT /documents/{uid}": self._update,
            "GET /companies": self._companies,
            "POST /companies": self._create_company,
            "GET /countries": self._countries,
            "GET /account": self._account,
        }.get(endpoint)
        if handler is None:
            return json_reply(405, {})
        return handler(account, seen, params, segments)

    def _public(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if not k.startswith("_")}

    def _list(self, account: _GmiAccount, seen: Seen, p: dict[str, Any], _: list[str]) -> Reply:
        docs = sorted(account.docs.values(), key=lambda d: d["documentUid"])
        archived = int(p.get("archivedFilter", 0))
        if archived == 0:
            docs = [d for d in docs if not d["isArchived"]]
        elif archived == 2:
            docs = [d for d in docs if d["isArchived"]]
        if p.get("documentNumberFilter"):
            needle = str(p["documentNumberFilter"]).lower()
            docs = [d for d in docs if needle in d["documentNumber"].lower()]  # a search
        if p.get("documentTypeFilter"):
            docs = [d for d in docs if d["documentType"] == p["documentTypeFilter"]]
        if p.get("documentUidStartFilter"):
            docs = [d for d in docs if d["documentUid"] > int(p["documentUidStartFilter"])]
        for tag in seen.q_all("tagFilter[]"):
            docs = [d for d in docs if tag in d["tags"]]
        since = p.get("updatedOrNewSinceFilter")
        if since is not None:
            try:
                datetime.strptime(since, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                return self.fail422(140, "Invalid Date Format. Must be in format Y-m-d H:i:s.")
        per_page = int(p.get("perPage", 500))
        page = int(p.get("pageNumber", 1))
        chunk = docs[(page - 1) * per_page : page * per_page]
        records: Any = [self._public(d) for d in chunk]
        if self.records_as_object:
            records = {str(r["documentUid"]): r for r in records}
        return json_reply(
            200,
            {
                "totalCount": len(docs),
                "maxAmount": per_page,
                "offset": (page - 1) * per_page,
                "maxPages": max(1, math.ceil(len(docs) / per_page)),
                "records": records,
            },
        )

    def _get(self, account: _GmiAccount, seen: Seen, p: dict[str, Any], seg: list[str]) -> Reply:
        doc = account.docs.get(int(seg[1])) if seg[1].isdigit() else None
        if doc is None:
            return self.fail422(106, "Invalid Document Prim UID.")
        meta = self._public(doc)
        if str(p.get("documentApproval", "1")) != "0" and doc["_approval"] is not None:
            meta["workflowDetails"] = {
                "currentWorkflow": {"name": "Standard Workflow", "id": 1},
                "currentWorkflowStep": {"name": "Standard Workflow Step 1", "id": 3},
                "isCompleted": bool(doc["_approval"]),
            }
        body: dict[str, Any] = {"meta_data": meta}
        if str(p.get("includeDocument", "1")) != "0":
            body["fileContent"] = _b64(doc["_content"])
        return json_reply(200, body)

    def _upload(self, account: _GmiAccount, seen: Seen, p: dict[str, Any], _: list[str]) -> Reply:
        if not p.get("fileName") or not p.get("fileContent") or not p.get("documentType"):
            return self.fail422(102, "Required parameters not set.")
        try:
            content = base64.b64decode(p["fileContent"], validate=True)
        except binascii.Error:
            return self.fail422(103, "file_content: Wrong encoding. Must be base64 encoding.")
        if p["documentType"] not in ("INCOMING_INVOICE", "SALES_INVOICE", "CREDIT_NOTE", "MISC"):
            return self.fail422(146, "Invalid document type.")
        now = time.monotonic()
        account.upload_times = [t for t in account.upload_times if now - t < 3600]
        if len(account.upload_times) >= account.uploads_per_hour:
            return self.fail422(105, "Hourly upload limit of 100 documents reached.")
        digest = hashlib.sha256(content).digest()
        if any(hashlib.sha256(d["_content"]).digest() == digest for d in account.docs.values()):
            return self.fail422(127, "Document already exists in account.")
        account.upload_times.append(now)
        uid = self.seed_document(
            next(k for k, a in self.accounts.items() if a is account),
            document_type=p["documentType"],
            document_number=p.get("documentNumber") or "",
            document_date=p.get("documentDate", ""),
            tags=p.get("tags", []),
            net_amount=p.get("netAmount"),
            gross_amount=p.get("grossAmount"),
            content=content,
            filename=p["fileName"],
            note=p.get("note", ""),
        )
        return json_reply(200, {"success": True, "documentUid": uid})

    def _exists(self, account: _GmiAccount, seen: Seen, p: dict[str, Any], _: list[str]) -> Reply:
        content = base64.b64decode(p.get("fileContent", ""))
        exists = any(d["_content"] == content for d in account.docs.values())
        return json_reply(200, {"success": True, "exists": exists})

    def _update(self, account: _GmiAccount, seen: Seen, p: dict[str, Any], seg: list[str]) -> Reply:
        doc = account.docs.get(int(seg[1])) if seg[1].isdigit() else None
        if doc is None:
            return self.fail422(135, "Invalid Document.")
        if not p:
            return self.fail422(136, "No input meta data found to update.")
        if doc["isLocked"]:
            return self.fail422(147, "Document is locked.")
        if "isArchived" in p:
            doc["isArchived"] = str(p["isArchived"]) == "1"
        if "tags" in p:
            doc["tags"] = list(p["tags"])
        if "note" in p:
            doc["note"] = p["note"]
        return json_reply(200, {"success": True, "documentUid": doc["documentUid"]})

    def _companies(self, account: _GmiAccount, *_: Any) -> Reply:
        return json_reply(200, list(account.companies.values()))  # a bare array (live-observed)

    def _create_company(self, account: _GmiAccount, seen: Seen, p: dict[str, Any], _: Any) -> Reply:
        if not p.get("name"):
            return self.fail422(114, "Company name parameter not set.")
        if not p.get("countryUid"):
            return self.fail422(115, "Company country parameter not set.")
        if any(c["name"] == p["name"] for c in account.companies.values()):
            return self.fail422(116, "Company name already exists.")
        uid = self._new_uid()
        account.companies[uid] = {
            "companyUid": uid,
            "name": p["name"],
            "companyType": "CUSTOM_COMPANY",
            "note": "",
            "tags": [],
            "countryUid": int(p["countryUid"]),
        }
        return json_reply(200, {"success": True, "companyUid": uid, "name": p["name"]})

    def _countries(self, *_: Any) -> Reply:
        return json_reply(
            200,
            [
                {
                    "countryUid": 76,
                    "name": "Germany",
                    "translations": {"en_us": "Germany", "de_de": "Deutschland"},
                    "countryCode": "DE",
                    "vat": 19,
                    "is_eu": 1,
                }
            ],
        )

    def _account(self, account: _GmiAccount, *_: Any) -> Reply:
        return json_reply(200, {"name": account.name, "accountId": "G-20707-0"})


# =============================================================================================
# Billomat

SINGULAR = {
    "invoices": ("invoice", "invoice_number", "RE"),
    "credit-notes": ("credit-note", "credit_note_number", "GS"),
    "offers": ("offer", "offer_number", "AN"),
    "confirmations": ("confirmation", "confirmation_number", "AB"),
    "delivery-notes": ("delivery-note", "delivery_note_number", "LS"),
    "reminders": ("reminder", "invoice_number", "RE"),
    "letters": ("letter", "label", ""),
    "incomings": ("incoming", "number", "ER"),
}


def berlin(moment: datetime) -> str:
    return moment.astimezone(BERLIN).isoformat(timespec="seconds")


@dataclass
class _Tenant:
    api_key: str
    limit: int
    window_seconds: float
    window_start: float = 0.0
    used: int = 0
    inbox: dict[int, dict[str, Any]] = field(default_factory=dict)
    docs: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


class FakeBillomat(FakeServer):
    """Billomat at ``{url}/{billomat_id}/api``; JSON when asked for, every quirk of §3–§4."""

    def __init__(self) -> None:
        super().__init__()
        self.tenants: dict[str, _Tenant] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        self._next_id = 1000

    @property
    def url_template(self) -> str:
        return self.url + "/{billomat_id}/api"

    def add_tenant(
        self,
        billomat_id: str,
        api_key: str,
        *,
        limit: int = 300,
        window_seconds: float = 900.0,
        **_: Any,
    ) -> None:
        self.tenants[billomat_id] = _Tenant(api_key, limit, window_seconds, time.monotonic())

    def add_document(
        self,
        billomat_id: str,
        kind: str,
        *,
        status: str = "OPEN",
        number: str | None = None,
        date: str = "2026-11-02",
        client_name: str = "Hallo GmbH",
        total_net: str = "100.00",
        total_gross: str = "119.00",
        currency_code: str = "EUR",
        content: bytes | None = None,
        title: str | None = None,
    ) -> int:
        with self._lock:
            self._next_id += 1
            doc_id = self._next_id
            _, number_field, prefix = SINGULAR[kind]
            now = datetime.now(UTC)
            self.tenants[billomat_id].docs.setdefault(kind, {})[doc_id] = {
                "id": str(doc_id),
                "created": berlin(now),
                "updated": berlin(now),
                "client_id": "485054",
                "contact_id": "",
                number_field: "" if status == "DRAFT" else (number or f"{prefix}{doc_id}"),
                "number": "" if status == "DRAFT" else str(doc_id),
                "title": title if title is not None else f"Dokument {doc_id}",
                "date": date,
                "due_date": "",
                "status": status,
                "total_net": format(Decimal(total_net).normalize(), "f"),
                "total_gross": format(Decimal(total_gross).normalize(), "f"),
                "currency_code": currency_code,
                "discount_amount": None,
                "taxes": {"tax": {"name": "ust", "rate": "19", "amount": "19"}},
                "customfield": "",
                "_content": content or PDF + str(doc_id).encode(),
            }
            return doc_id

    def complete(self, billomat_id: str, kind: str, doc_id: int) -> None:
        doc = self.tenants[billomat_id].docs[kind][doc_id]
        _, number_field, prefix = SINGULAR[kind]
        doc["status"] = "OPEN"
        doc[number_field] = f"{prefix}{doc_id}"

    def inbox(self, billomat_id: str) -> list[dict[str, Any]]:
        out = []
        for rec in self.tenants[billomat_id].inbox.values():
            meta = rec["metadata"]
            entries = meta.get("data", []) if isinstance(meta, dict) else []
            entries = [entries] if isinstance(entries, dict) else entries
            out.append(
                {
                    **{k: v for k, v in rec.items() if not k.startswith("_")},
                    "sha256": hashlib.sha256(rec["_content"]).hexdigest(),
                    "metadata": {e["key"]: e["value"] for e in entries},
                }
            )
        return out

    def request_counts(self, billomat_id: str | None = None) -> dict[str, int]:
        return {
            endpoint: n
            for (tenant, endpoint), n in self.counts.items()
            if billomat_id is None or tenant == billomat_id
        }

    # -- wire --------------------------------------------------------------------------------

    def error_reply(self, status: int) -> Reply:
        return json_reply(status, {"errors": {"error": "Internal error"}})

    def _quota_headers(self, tenant: _Tenant) -> dict[str, str]:
        reset = time.time() + tenant.window_seconds - (time.monotonic() - tenant.window_start)
        return {
            "X-Rate-Limit-Remaining": str(max(0, tenant.limit - tenant.used)),
            "X-Rate-Limit-Reset": str(math.ceil(reset)),
        }

    def handle(self, seen: Seen) -> Reply:
        parts = seen.path.strip("/").split("/")
        if len(parts) < 3 or parts[1] != "api" or parts[0] not in self.tenants:
            return Reply(404, "<html><body>No such account</body></html>", "text/html")
        tenant = self.tenants[parts[0]]
        if seen.header("X-BillomatApiKey") != tenant.api_key:
            return json_reply(401, {"errors": {"error": "Unauthorized"}})
        now = time.monotonic()
        if now - tenant.window_start >= tenant.window_seconds:
            tenant.window_start, tenant.used = now, 0
        if tenant.used >= tenant.limit:
            wait = math.ceil(tenant.window_seconds - (now - tenant.window_start))
            reply = json_reply(
                429,
                {
                    "errors": {
                        "error": f"Maximum number of requests ({tenant.limit} per 15 minutes)"
                        f" reached. Try again in {wait} seconds."
                    }
                },
            )
            reply.headers.update(self._quota_headers(tenant))
            return reply
        tenant.used += 1
        if "application/json" not in (seen.header("Accept") or ""):
            body = '<?xml version="1.0"?><errors><error>XML only in this fake</error></errors>'
            return Reply(406, body, "application/xml")
        resource, rest = parts[2], parts[3:]
        template = "/".join(["", "api", resource, *("{id}" if r.isdigit() else r for r in rest)])
        self.counts[(parts[0], f"{seen.method} {template}")] += 1
        if resource == "inbox-documents":
            reply = self._inbox(tenant, seen, rest)
        elif resource in SINGULAR:
            reply = self._documents(tenant, resource, seen, rest)
        else:
            reply = json_reply(404, {"errors": {"error": "Not found"}})
        reply.headers.update(self._quota_headers(tenant))
        return reply

    @staticmethod
    def _envelope(
        plural: str, singular: str, items: list[dict[str, Any]], seen: Seen, total: int
    ) -> Reply:
        container: dict[str, Any] = {}
        public = [{k: v for k, v in i.items() if not k.startswith("_")} for i in items]
        if len(public) == 1:
            container[singular] = public[0]  # one item: an object, not a list
        elif public:
            container[singular] = public
        container["@page"] = seen.q("page") or "1"
        container["@per_page"] = seen.q("per_page") or "100"
        container["@total"] = str(total)
        return json_reply(200, {plural: container}, **{"X-Total-Count": str(total)})

    @staticmethod
    def _page(items: list[dict[str, Any]], seen: Seen) -> list[dict[str, Any]]:
        page, per_page = int(seen.q("page") or 1), int(seen.q("per_page") or 100)
        return items[(page - 1) * per_page : page * per_page]

    def _inbox(self, tenant: _Tenant, seen: Seen, rest: list[str]) -> Reply:
        if seen.method == "GET" and not rest:
            items = sorted(tenant.inbox.values(), key=lambda r: int(r["id"]))
            return self._envelope(
                "inbox-documents", "inbox-document", self._page(items, seen), seen, len(items)
            )
        if seen.method == "POST" and not rest:
            record = (seen.json() or {}).get("inbox-document", {})
            if not record.get("base64file"):
                return json_reply(400, {"errors": {"error": "base64file is missing"}})
            content = base64.b64decode(record["base64file"])
            self._next_id += 1
            now = datetime.now(UTC)
            rec = {
                "id": str(self._next_id),
                "created": berlin(now),
                "updated": berlin(now),
                "user_id": "12",
                "filename": record.get("filename") or f"inbox_{self._next_id}.pdf",
                "mimetype": "application/pdf",
                "document_type": record.get("document_type", ""),
                "filesize": str(len(content)),
                "page_count": "1",
                "metadata": record.get("metadata") or "",
                "customfield": "",
                "_content": content,
            }
            tenant.inbox[self._next_id] = rec
            public = {k: v for k, v in rec.items() if not k.startswith("_")}
            return json_reply(201, {"inbox-document": {**public, "base64file": _b64(content)}})
        found = tenant.inbox.get(int(rest[0])) if rest and rest[0].isdigit() else None
        if found is None:
            return json_reply(404, {"errors": {"error": "Inbox document not found"}})
        if seen.method == "DELETE":
            del tenant.inbox[int(rest[0])]
            return Reply(200, b"", None)
        public = {k: v for k, v in found.items() if not k.startswith("_")}
        public["base64file"] = _b64(found["_content"])
        return json_reply(200, {"inbox-document": public})

    def _documents(self, tenant: _Tenant, kind: str, seen: Seen, rest: list[str]) -> Reply:
        singular, number_field, _ = SINGULAR[kind]
        docs = tenant.docs.get(kind, {})
        if not rest:
            items = sorted(docs.values(), key=lambda d: int(d["id"]))
            if seen.q("from"):
                items = [d for d in items if d["date"] >= (seen.q("from") or "")]
            if seen.q("to"):
                items = [d for d in items if d["date"] <= (seen.q("to") or "")]
            if seen.q("status"):
                wanted = {s.upper() for s in (seen.q("status") or "").split(",")}
                items = [d for d in items if d["status"] in wanted]
            if (seen.q("order_by") or "").lower().endswith("desc"):
                items.reverse()
            return self._envelope(kind, singular, self._page(items, seen), seen, len(items))
        doc = docs.get(int(rest[0])) if rest[0].isdigit() else None
        if doc is None:
            return json_reply(404, {"errors": {"error": "Not found"}})
        public = {k: v for k, v in doc.items() if not k.startswith("_")}
        if rest[1:] == ["pdf"]:
            if doc["status"] == "DRAFT":
                return json_reply(404, {"errors": {"error": "No PDF for a draft"}})
            parent = singular.replace("-", "_") + "_id"
            return json_reply(
                200,
                {
                    "pdf": {
                        "id": str(int(doc["id"]) + 50000),
                        "created": doc["created"],
                        parent: doc["id"],
                        "filename": f"Rechnung {doc[number_field]}.pdf",
                        "mimetype": "application/pdf",
                        "filesize": str(len(doc["_content"])),
                        "base64file": _b64(doc["_content"]),
                    }
                },
            )
        return json_reply(200, {singular: public})


def utc_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
