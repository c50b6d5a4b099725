"""What GMI's answers mean: result types, parsers (pure: JSON in, dataclasses out), failures.

GMI's answers vary (getmyinvoices.md §2, §5, §11): ``records`` as a list or as an object keyed
by uid, numbers as numbers or strings, two shapes of 422 body, ``success: false`` inside a 200,
and limits reported as 403 with code 429 (or, unconfirmed, with no code) and no headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import requests

from shared.domain import GMI_DOCUMENT_TYPES
from shared.readers import (
    ResponseShapeError,
    decode_base64,
    encode_base64,
    is_empty,
    read_bool,
    read_date,
    read_decimal,
    read_int,
    read_str,
    retry_after,
)

MAX_PER_PAGE = 500
BERLIN = ZoneInfo("Europe/Berlin")


# ---------------------------------------------------------------------------------------------
# Results and inputs


@dataclass(frozen=True)
class Workflow:
    name: str
    step: str
    is_completed: bool


@dataclass(frozen=True)
class GmiDocument:
    uid: int
    document_type: str
    document_number: str
    document_date: date | None
    created_at: date | None
    company_uid: int | None
    company_name: str
    net_amount: Decimal | None
    gross_amount: Decimal | None
    currency: str
    tags: tuple[str, ...]
    is_archived: bool
    is_locked: bool
    filename: str
    note: str
    source: str = ""  # who put it into GMI ("Manual", an application's x-application)
    workflow: Workflow | None = None
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DocumentPage:
    records: list[GmiDocument]
    page: int
    total_count: int
    max_pages: int | None
    per_page: int = MAX_PER_PAGE  # the page size asked for; used when maxPages is absent

    @property
    def has_more(self) -> bool:
        if not self.records:
            return False
        if self.max_pages is not None:
            return self.page < self.max_pages
        return self.page * self.per_page < self.total_count


@dataclass(frozen=True)
class GmiUpload:
    file_name: str
    content: bytes = field(repr=False)
    document_type: str
    company_id: int | None = None
    document_number: str | None = None
    document_date: date | None = None
    net_amount: Decimal | None = None
    gross_amount: Decimal | None = None
    currency: str | None = None
    tags: Sequence[str] = ()
    note: str | None = None


@dataclass(frozen=True)
class Company:
    uid: int
    name: str
    company_type: str


# ---------------------------------------------------------------------------------------------
# Parsers (pure: JSON in, dataclasses out)


def records_of(value: object) -> list[Mapping[str, Any]]:
    """``records`` as a list, as an object keyed by uid (PHP ``json_encode`` of a sparse
    array), or one bare record."""
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    if isinstance(value, Mapping):
        if any(key in value for key in ("documentUid", "companyUid", "countryUid")):
            return [value]
        return [item for item in value.values() if isinstance(item, Mapping)]
    return []


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # v2 sent a comma-separated string
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list):
        return tuple(read_str(t) for t in value if read_str(t))
    return ()


def parse_workflow(value: object) -> Workflow | None:
    # Absent, null, {} or [] (PHP's empty array) all mean "no approval workflow".
    if not isinstance(value, Mapping) or not value:
        return None
    workflow = value.get("currentWorkflow")
    step = value.get("currentWorkflowStep")
    return Workflow(
        name=read_str(workflow.get("name")) if isinstance(workflow, Mapping) else "",
        step=read_str(step.get("name")) if isinstance(step, Mapping) else "",
        is_completed=read_bool(value.get("isCompleted")),
    )


def parse_document(
    record: Mapping[str, Any], *, content: bytes | None = None, uid: int | None = None
) -> GmiDocument:
    found = read_int(record.get("documentUid", record.get("prim_uid")))
    if found is None and uid is None:
        raise ResponseShapeError("document without a numeric documentUid")
    return GmiDocument(
        uid=found if found is not None else int(uid or 0),
        document_type=read_str(record.get("documentType")),
        document_number=read_str(record.get("documentNumber")),
        document_date=read_date(record.get("documentDate")),
        created_at=read_date(record.get("createdAt")),
        # 0 means "no company" (companyFilter uses -1 for unassigned; records show 0/null).
        company_uid=read_int(record.get("companyUid")) or None,
        company_name=read_str(record.get("companyName")),
        net_amount=read_decimal(record.get("netAmount")),
        gross_amount=read_decimal(record.get("grossAmount")),
        currency=read_str(record.get("currency")),
        tags=_tags(record.get("tags")),
        is_archived=read_bool(record.get("isArchived")),
        is_locked=read_bool(record.get("isLocked")),
        filename=read_str(record.get("filename", record.get("fileName"))),
        note=read_str(record.get("note")),
        source=read_str(record.get("source")),
        workflow=parse_workflow(record.get("workflowDetails")),
        content=content,
    )


def parse_document_page(body: object, page: int, per_page: int) -> DocumentPage:
    if isinstance(body, list):  # a bare array: everything on one page
        records = records_of(body)
        return DocumentPage([parse_document(r) for r in records], page, len(records), 1, per_page)
    if not isinstance(body, Mapping):
        raise ResponseShapeError("the document list is not a JSON object")
    records = records_of(body.get("records"))
    total = read_int(body.get("totalCount"))
    return DocumentPage(
        records=[parse_document(r) for r in records],
        page=page,
        total_count=total if total is not None else (page - 1) * per_page + len(records),
        max_pages=read_int(body.get("maxPages")),
        per_page=per_page,
    )


def parse_single_document(body: object, uid: int) -> GmiDocument:
    if not isinstance(body, Mapping):
        raise ResponseShapeError("the document is not a JSON object")
    meta = body.get("meta_data")
    record = meta if isinstance(meta, Mapping) else body
    raw_file = body.get("fileContent", body.get("file_content"))
    content = None if is_empty(raw_file) else decode_base64(raw_file, "fileContent")
    return parse_document(record, content=content, uid=uid)


def parse_company(record: Mapping[str, Any]) -> Company:
    uid = read_int(record.get("companyUid", record.get("prim_uid")))
    if uid is None:
        raise ResponseShapeError("company without a numeric companyUid")
    return Company(
        uid=uid,
        name=read_str(record.get("name")),
        company_type=read_str(record.get("companyType", record.get("company_type"))),
    )


def new_uid(body: object, *names: str) -> int:
    if isinstance(body, Mapping):
        for name in names:
            uid = read_int(body.get(name))
            if uid is not None:
                return uid
        meta = body.get("meta_data")
        if isinstance(meta, Mapping):
            return new_uid(meta, *names)
    raise ResponseShapeError(f"no {names[0]} in the answer")


@dataclass(frozen=True)
class Failure:
    """What a GMI error body says: its own code and reason."""

    code: int | None
    detail: str


def read_failure(body: object) -> Failure:
    """Both 422 shapes, the 403/415/503 ``{code, detail}`` shape and ``{}``.

    With several entries in ``errors``, the first one's code classifies the failure.
    """
    if not isinstance(body, Mapping):
        return Failure(None, "")
    errors = body.get("errors")
    if isinstance(errors, list | Mapping):
        entries = [errors] if isinstance(errors, Mapping) else errors
        entries = [e for e in entries if isinstance(e, Mapping)]
        if entries:
            detail = "; ".join(read_str(e.get("detail") or e.get("message")) for e in entries if e)
            return Failure(read_int(entries[0].get("code")), detail)
    code = read_int(body.get("error_code", body.get("code")))
    detail = read_str(body.get("detail") or body.get("message") or body.get("error"))
    return Failure(code, detail)


def is_failure_envelope(body: object) -> bool:
    """``success: false`` in an otherwise successful answer."""
    return isinstance(body, Mapping) and "success" in body and not read_bool(body["success"], True)


# Rate-limit reset estimates: GMI sends no headers, only a text (getmyinvoices.md §3).


def next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _next_hour(now: datetime) -> datetime:
    # Whole hours coincide in UTC and Berlin time, so the UTC boundary is the server's.
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _next_berlin_midnight(now: datetime) -> datetime:
    tomorrow = now.astimezone(BERLIN).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=BERLIN).astimezone(UTC)


_RESET_BY_TEXT: tuple[tuple[re.Pattern[str], Callable[[datetime], datetime]], ...] = (
    (re.compile(r"minute", re.IGNORECASE), next_minute),
    (re.compile(r"\b(day|daily|24 ?h)", re.IGNORECASE), _next_berlin_midnight),
    (re.compile(r"hour", re.IGNORECASE), _next_hour),
)
UPLOAD_LIMIT_CODE = 105  # "Hourly upload limit of 100 documents reached."


def rate_limit_reset(
    failure: Failure, response: requests.Response, now: datetime | None = None
) -> datetime | None:
    """When a refused call may be tried again; ``None`` leaves the 60 s default."""
    now = now or datetime.now(UTC)
    if failure.code == UPLOAD_LIMIT_CODE:
        return _next_hour(now)
    header = retry_after(response)  # not documented; honoured should GMI ever send it
    if header is not None:
        return header
    for pattern, reset in _RESET_BY_TEXT:
        if pattern.search(failure.detail):
            return reset(now)
    return None


def upload_body(upload: GmiUpload) -> dict[str, Any]:
    if upload.document_type not in GMI_DOCUMENT_TYPES:
        raise ValueError(f"unknown GMI document type {upload.document_type!r}")
    if not upload.file_name or not upload.content:
        raise ValueError("an upload needs a file name and content")
    body: dict[str, Any] = {
        "fileName": upload.file_name,
        "fileContent": encode_base64(upload.content),
        "documentType": upload.document_type,
    }
    optional: dict[str, Any] = {
        "companyId": upload.company_id,
        "documentNumber": upload.document_number,
        "documentDate": upload.document_date.isoformat() if upload.document_date else None,
        # Amounts go out as strings, as in the spec's example ("2000.00").
        "netAmount": _amount(upload.net_amount),
        "grossAmount": _amount(upload.gross_amount),
        "currency": upload.currency,
        "tags": list(upload.tags) or None,
        "note": upload.note,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def format_since(moment: datetime) -> str:
    """``updatedOrNewSinceFilter`` as ``Y-m-d H:i:s`` in UTC.

    The server's timezone for this filter is unconfirmed, probably Europe/Berlin, which is
    ahead of UTC all year. Sending UTC means a Berlin-reading server sees an earlier moment:
    the window only gets wider and no change is ever missed; the cost is re-seeing a few
    documents, which the ledger deduplicates.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("updated_since must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
