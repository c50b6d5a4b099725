"""Where every document ended up, and whether that is what should have happened."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from app.demo.model import BILLOMAT_ID, EXPORT_ACCOUNT, GMI_API_KEY, IMPORT_ACCOUNT, LANDED, STUCK
from app.demo.rounds import _day
from app.demo.sandbox import Sandbox
from app.status import documents
from shared.domain import Direction, DocState, export_marker

# ---------------------------------------------------------------------------------------------
# Reporting: where every document ended up, and whether that is what should have happened


def _approval_label(value: bool | None) -> str:
    return {None: "no workflow", False: "pending", True: "approved"}[value]


def export_rows(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Each GMI document: its ledger state and, if it landed, the Billomat inbox document."""
    rules = sandbox.export_rules
    ledger = {r["source_id"]: r for r in documents(sandbox.db, account=EXPORT_ACCOUNT)}
    inbox = {str(i["id"]): i for i in sandbox.sims.billomat.inbox(BILLOMAT_ID)}
    now = {d["uid"]: d for d in sandbox.sims.gmi.documents(GMI_API_KEY)}
    before = {d["uid"]: d for d in sandbox.gmi_before}
    uids = sorted(set(before) | {int(uid) for uid in ledger})
    rows = []
    for uid in uids:
        doc = before.get(uid) or now[uid]
        row = ledger.get(str(uid))
        target = inbox.get(row["target_id"]) if row and row["target_id"] else None
        if row is None:
            state = "not selected"
            reason = rules.rejection(
                document_type=doc["document_type"],
                tags=doc["tags"],
                document_date=_day(doc["document_date"]),
                is_archived=doc["is_archived"],
            )
        else:
            state = row["state"]
            reason = None if state == DocState.SYNCED else row["last_error"]
        rows.append(
            {
                "gmi_uid": uid,
                "document_number": doc["document_number"],
                "document_type": doc["document_type"],
                "company": doc["company_name"],
                "approval": _approval_label(doc["approval"]),
                "approval_now": _approval_label(now[uid]["approval"]) if uid in now else None,
                "state": state,
                "reason": reason,
                "billomat_inbox_id": target["id"] if target else None,
                "inbox_document_type": target["document_type"] if target else None,
                "archived_in_gmi": now[uid]["is_archived"] if uid in now else None,
            }
        )
    return rows


def import_rows(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Each Billomat document of the imported kinds: its ledger state and its GMI document."""
    ledger = {
        (r["source_kind"], r["source_id"]): r for r in documents(sandbox.db, account=IMPORT_ACCOUNT)
    }
    gmi_now = {str(d["uid"]): d for d in sandbox.sims.gmi.documents(GMI_API_KEY)}
    rows = []
    for kind in sandbox.import_rules.document_kinds:
        for doc in sandbox.sims.billomat.documents(BILLOMAT_ID, kind):
            row = ledger.get((kind, str(doc["id"])))
            target = gmi_now.get(row["target_id"]) if row and row["target_id"] else None
            state = row["state"] if row else "not listed"
            rows.append(
                {
                    "kind": kind,
                    "billomat_id": doc["id"],
                    "document_number": doc["number"] or None,
                    "status": doc["status"],
                    "client": doc["party_name"],
                    "state": state,
                    "reason": None if state == DocState.SYNCED else (row or {}).get("last_error"),
                    "gmi_uid": target["uid"] if target else None,
                    "gmi_document_type": target["document_type"] if target else None,
                    "gmi_company": target["company_name"] if target else None,
                    "gmi_tags": target["tags"] if target else None,
                }
            )
    return rows


def simulator_state(sandbox: Sandbox) -> dict[str, Any]:
    """The raw facts on both sides, so a reader (or a test) can check the demo's claims."""
    sims = sandbox.sims

    def gmi_doc(d: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("uid", "document_type", "document_number", "company_name", "tags", "approval")
        return {k: d[k] for k in (*keys, "is_archived", "source", "sha256")}

    return {
        "gmi_documents_before": [gmi_doc(d) for d in sandbox.gmi_before],
        "gmi_documents_after": [gmi_doc(d) for d in sims.gmi.documents(GMI_API_KEY)],
        "billomat_documents": [
            {k: d[k] for k in ("id", "kind", "status", "number", "pdf_sha256")}
            for kind in sandbox.import_rules.document_kinds
            for d in sims.billomat.documents(BILLOMAT_ID, kind)
        ],
        "billomat_inbox": [
            {
                "id": i["id"],
                "document_type": i["document_type"],
                "marker": i["metadata"].get("BELEGSYNC_REF"),
                "sha256": i["sha256"],
                "filesize": i["filesize"],
            }
            for i in sims.billomat.inbox(BILLOMAT_ID)
        ],
    }


def find_problems(
    sandbox: Sandbox,
    expected: Mapping[Direction, int],
    exported: list[dict[str, Any]],
    imported: list[dict[str, Any]],
) -> list[str]:
    """Every landed document exactly once with its own bytes, and as many as expected."""
    problems: list[str] = []
    export_ref = sandbox.accounts[Direction.EXPORT].ref
    inbox = sandbox.sims.billomat.inbox(BILLOMAT_ID)
    markers = Counter(i["metadata"].get("BELEGSYNC_REF") for i in inbox)
    gmi_now = {d["uid"]: d for d in sandbox.sims.gmi.documents(GMI_API_KEY)}
    inbox_by_id = {i["id"]: i for i in inbox}
    ours = set()
    for row in exported:
        if row["state"] in STUCK:
            problems.append(f"GMI {row['gmi_uid']} is {row['state']}: {row['reason']}")
        if row["state"] not in LANDED:
            continue
        marker = export_marker(export_ref, row["gmi_uid"])
        ours.add(marker)
        if markers[marker] != 1:
            problems.append(f"GMI {row['gmi_uid']} is in the inbox {markers[marker]} times")
        item = inbox_by_id.get(row["billomat_inbox_id"])
        source = gmi_now.get(row["gmi_uid"])
        if item is None or source is None or item["sha256"] != source["sha256"]:
            problems.append(f"GMI {row['gmi_uid']}: the inbox does not hold its bytes")
    strays = sum(n for marker, n in markers.items() if marker not in ours)
    if strays:
        problems.append(f"{strays} inbox document(s) belong to no synced GMI document")

    pdfs = {
        (kind, d["id"]): d["pdf_sha256"]
        for kind in sandbox.import_rules.document_kinds
        for d in sandbox.sims.billomat.documents(BILLOMAT_ID, kind)
    }
    hashes = Counter(d["sha256"] for d in gmi_now.values())
    for row in imported:
        if row["state"] in STUCK:
            problems.append(
                f"Billomat {row['kind']} {row['billomat_id']} is {row['state']}: {row['reason']}"
            )
        if row["state"] != DocState.SYNCED:
            continue
        pdf = pdfs[(row["kind"], row["billomat_id"])]
        target = gmi_now.get(row["gmi_uid"]) if row["gmi_uid"] is not None else None
        if target is None or target["sha256"] != pdf:
            problems.append(f"Billomat {row['kind']} {row['billomat_id']}: GMI lacks its PDF")
        elif hashes[pdf] != 1:
            problems.append(
                f"Billomat {row['kind']} {row['billomat_id']} is in GMI {hashes[pdf]} times"
            )

    synced = {
        Direction.EXPORT: sum(1 for r in exported if r["state"] == DocState.SYNCED),
        Direction.IMPORT: sum(1 for r in imported if r["state"] == DocState.SYNCED),
    }
    for direction, count in synced.items():
        if count != expected[direction]:
            problems.append(f"{direction.value}: {count} synced, {expected[direction]} expected")
    return problems
