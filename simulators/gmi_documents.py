"""GMI documents: list, get, upload, update, delete, duplicate check (getmyinvoices.md §5)."""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import timedelta
from typing import Any

from simulators.gmi_model import (
    DOCUMENT_TYPES,
    GmiDocument,
    GmiStore,
    document_record,
    workflow_details,
)
from simulators.gmi_params import (
    ERROR_TEXTS,
    MAX_PER_PAGE,
    PAYMENT_FILTERS,
    UPDATE_KEYS,
    Call,
    Rejected,
    as_int,
    as_list,
    base64_param,
    date_param,
    document_fields,
    flag_param,
    int_param,
    ok,
    since_param,
    text_param,
)
from simulators.http import Response
from simulators.pdf import is_pdf, looks_like_eml
from simulators.ratelimit import FixedWindowCounter
from simulators.variants import GmiBehaviour


class DocumentRoutes:
    """The ``/documents`` handlers of the GMI API."""

    def __init__(
        self, store: GmiStore, limiter: FixedWindowCounter, behaviour: GmiBehaviour
    ) -> None:
        self._store = store
        self._limiter = limiter
        self._behaviour = behaviour

    def list_documents(self, call: Call) -> Response:
        p = call.params
        company = int_param(p, "companyFilter", 0)
        archived = int_param(
            p, "archivedFilter", 0
        )  # server default assumed 0 (not archived), like the UI
        if archived not in (0, 1, 2):
            raise Rejected(100)
        doc_type = text_param(p, "documentTypeFilter")
        if doc_type and doc_type not in DOCUMENT_TYPES:
            raise Rejected(146)
        number = text_param(p, "documentNumberFilter").lower()
        note = text_param(p, "noteFilter").lower()
        start = date_param(p.get("startDateFilter"), 104)
        end = date_param(p.get("endDateFilter"), 104)
        excluded = {as_int(v) for v in as_list(p.get("documentUidExclusionFilter"))}
        uid_start = int_param(p, "documentUidStartFilter", 0)
        since = since_param(p.get("updatedOrNewSinceFilter"))
        tags = [str(t) for t in as_list(p.get("tagFilter")) if str(t)]
        payment = text_param(p, "paymentStatusFilter") or "all"
        if payment not in PAYMENT_FILTERS:
            raise Rejected(112)
        page = max(1, int_param(p, "pageNumber", 1))
        per_page = int_param(p, "perPage", MAX_PER_PAGE)
        # Out-of-range page sizes are clamped to 1..500 (unconfirmed; newer clients say 1–500).
        per_page = min(max(per_page, 1), MAX_PER_PAGE)
        # With a lagging index a document shows up in lists only a while after it was stored.
        lag = self._behaviour.listing_lag
        visible_before = self._store.now() - timedelta(seconds=lag) if lag else None

        def wanted(doc: GmiDocument) -> bool:
            if visible_before is not None and doc.created_at > visible_before:
                return False
            if company == -1 and doc.company_uid is not None:
                return False
            if company > 0 and doc.company_uid != company:
                return False
            if (archived == 0 and doc.is_archived) or (archived == 2 and not doc.is_archived):
                return False
            if doc_type and doc.document_type != doc_type:
                return False
            # Text filters behave like searches: case-insensitive substrings (MySQL LIKE).
            if number and number not in doc.document_number.lower():
                return False
            if note and note not in doc.note.lower():
                return False
            if start and (doc.document_date is None or doc.document_date < start):
                return False
            if end and (doc.document_date is None or doc.document_date > end):
                return False
            if doc.uid in excluded or doc.uid <= uid_start:
                return False
            # Whole seconds, inclusive: a change in the same second as the filter is returned
            # again rather than lost (unconfirmed; clients must dedupe either way).
            if since is not None and doc.updated_at < since:
                return False
            # Several tags: the document must carry every one (AND; unconfirmed). A client that
            # wants "any of" asks once per tag or filters locally, which works either way.
            if any(tag not in doc.tags for tag in tags):
                return False
            return payment == "all" or PAYMENT_FILTERS[payment] == doc.payment_status

        with self._store.locked():
            account = call.account
            # Newest first, like the web app (unconfirmed): documents arriving while a client
            # pages shift the later pages, as they would on a live account.
            matching = sorted(
                (d for d in account.documents.values() if wanted(d)),
                key=lambda d: d.uid,
                reverse=True,
            )
            offset = (page - 1) * per_page
            records = [document_record(account, d) for d in matching[offset : offset + per_page]]
        amounts = [d.gross_amount for d in matching if d.gross_amount is not None]
        envelope: dict[str, Any] = {
            "totalCount": len(matching),
            # Unconfirmed meaning; read here as the largest gross amount of the result (the
            # spec example equals totalCount, /portals shows 0).
            "maxAmount": float(max(amounts)) if amounts else 0,
            "offset": offset,
            "maxPages": math.ceil(len(matching) / per_page),
            "records": records,
        }
        if self._behaviour.records_as_object:
            # PHP json_encode of a uid-keyed array; an empty array still encodes as [].
            envelope["records"] = {str(r["documentUid"]): r for r in records} if records else []
        return ok(envelope)

    def _find(self, call: Call, raw: str, code: int) -> GmiDocument:
        if not raw.isdigit():
            raise Rejected(code)
        with self._store.locked():
            doc = call.account.documents.get(int(raw))
        if doc is None:
            raise Rejected(code)
        return doc

    def get_document(self, call: Call, documentUid: str) -> Response:
        doc = self._find(call, documentUid, 106)
        p = call.params
        with self._store.locked():
            meta = document_record(call.account, doc)
            content = doc.content
            text = doc.readable_text
            if flag_param(p, "loadLineItems", default=False):
                meta["lineItems"] = list(doc.line_items)
            if flag_param(p, "transactions", default=True):
                meta["transactions"] = {"totalCount": 0, "records": []}
            # documentApproval defaults to true (the parameter reads as an opt-out);
            # workflowDetails is null when no workflow is assigned to the document.
            if flag_param(p, "documentApproval", default=True):
                meta["workflowDetails"] = workflow_details(doc)
        payload: dict[str, Any] = {"meta_data": meta}
        if flag_param(p, "includeDocument", default=True):
            payload["fileContent"] = base64.b64encode(content).decode("ascii")
        if flag_param(p, "readableText", default=False):
            payload["readableContent"] = text
        return ok(payload)

    def upload(self, call: Call) -> Response:
        p = call.params
        file_name = text_param(p, "fileName")
        raw_content = p.get("fileContent")
        if raw_content in (None, ""):
            raise Rejected(141)
        if not file_name or not text_param(p, "documentType"):
            raise Rejected(102)
        content = base64_param(raw_content)
        extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
        # Name and bytes must agree: a renamed PNG is not a PDF.
        if not (
            (extension == "pdf" and is_pdf(content))
            or (extension == "eml" and looks_like_eml(content))
        ):
            raise Rejected(101)
        fields = document_fields(call, p)
        limits = call.account.limits
        now = self._store.now()
        # Built (and hashed) before taking the lock: files can be several MB.
        doc = GmiDocument(
            uid=0,
            document_type=fields.pop("document_type"),
            content=content,
            filename=file_name,
            created_at=now,
            updated_at=now,
            # The optional x-application header names the source; without it "API" is
            # assumed (unconfirmed; uploads in the web app show "Manual").
            source=call.request.header("x-application") or "API",
        )
        for key, value in fields.items():
            setattr(doc, key, value)
        with self._store.locked():
            uploads = self._limiter.peek(
                (call.account.api_key, "uploads"), limits.uploads_per_hour, limits.hour_seconds
            )
            if not uploads.allowed:
                raise Rejected(105, ERROR_TEXTS[105].format(limit=limits.uploads_per_hour))
            if call.account.document_with_hash(doc.sha256) is not None:
                # Identical bytes (sha256 of the decoded file) already in the account.
                raise Rejected(127)
            doc.uid = self._store.next_document_uid()
            self._store.add_document(call.account.api_key, doc)
            self._limiter.add((call.account.api_key, "uploads"), limits.hour_seconds)
        return ok({"success": True, "documentUid": doc.uid})

    def update_document(self, call: Call, documentUid: str) -> Response:
        if not documentUid.isdigit():
            raise Rejected(134)
        doc = self._find(call, documentUid, 135)
        present = [k for k in UPDATE_KEYS if k in call.params]
        if not present:
            raise Rejected(136)
        if doc.is_locked:
            raise Rejected(147)
        fields = document_fields(call, call.params)
        if "isArchived" in call.params:
            raw = call.params["isArchived"]
            # 0/1, also as strings (the PHP example sends "1"); booleans are not accepted.
            if isinstance(raw, bool) or str(raw) not in ("0", "1"):
                raise Rejected(133)
            fields["is_archived"] = str(raw) == "1"
        self._store.update_document(call.account.api_key, doc.uid, **fields)
        return ok({"success": True, "documentUid": doc.uid})

    def delete_document(self, call: Call, documentUid: str) -> Response:
        doc = self._find(call, documentUid, 106)
        self._store.delete_document(call.account.api_key, doc.uid)
        return ok({"success": True})

    def exists(self, call: Call) -> Response:
        p = call.params
        file_hash = text_param(p, "fileHash").lower()
        if p.get("fileContent") not in (None, ""):
            file_hash = hashlib.sha256(base64_param(p["fileContent"])).hexdigest()
        if not file_hash:
            raise Rejected(102)
        # The algorithm is unconfirmed: a 64-digit hash is compared as sha256, a 32-digit one
        # as md5. Deleted documents are gone, so they never count.
        with self._store.locked():
            docs = list(call.account.documents.values())
        exists = any(file_hash in (d.sha256, d.md5) for d in docs)
        return ok({"success": True, "exists": exists})
