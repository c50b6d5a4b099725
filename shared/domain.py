"""The sync domain: directions, document states, account rules, type mappings. No I/O here."""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from shared.errors import InvalidValue

# ---------------------------------------------------------------------------------------------
# Vocabulary


class Direction(enum.StrEnum):
    EXPORT = "export"  # GMI -> Billomat inbox
    IMPORT = "import"  # Billomat documents -> GMI


class DocState(enum.StrEnum):
    """Where a document stands in the ledger."""

    PENDING = "pending"  # detected; its message is published or about to be
    WAITING_APPROVAL = "waiting_approval"  # export with approval required, not yet approved
    DRAFT = "draft"  # import: a Billomat draft, imported once it is finished
    UPLOADING = "uploading"  # an upload attempt is in flight; outcome not yet recorded
    UPLOADED = "uploaded"  # landed in the target; a follow-up step (archive) is pending
    SYNCED = "synced"  # done; target_id says where it landed
    RETRYING = "retrying"  # failed transiently; its message waits in a retry queue
    PARKED = "parked"  # cannot succeed as things are; waits for `belegsync replay`
    SKIPPED = "skipped"  # no longer matches the account's filters
    HELD = "held"  # the account is paused or needs attention; republished on resume


# States whose message, once published, needs no republishing by the producer.
IN_PIPELINE = frozenset({DocState.PENDING, DocState.UPLOADING, DocState.UPLOADED})
FINAL = frozenset({DocState.SYNCED})

GMI_DOCUMENT_TYPES: tuple[str, ...] = (
    "INCOMING_INVOICE",
    "RECEIPT",
    "PAYMENT_RECEIPT",
    "EXPENSE_REIMBURSEMENT",
    "SALES_INVOICE",
    "CREDIT_NOTE",
    "STATEMENT",
    "DELIVERY_NOTE",
    "ORDER_CONFIRMATION",
    "PAYROLL",
    "COMPANY_REGISTRATION_DOCUMENT",
    "MISC",
    "TRAVEL_EXPENSES",
    "REMINDER",
)

# Billomat resource path segments that hold finished documents with a PDF.
BILLOMAT_KINDS: tuple[str, ...] = (
    "invoices",
    "credit-notes",
    "offers",
    "confirmations",
    "delivery-notes",
    "reminders",
    "letters",
    "incomings",
)
DEFAULT_IMPORT_KINDS: tuple[str, ...] = ("invoices", "credit-notes")
DEFAULT_IMPORT_DOCUMENT_TYPE = "MISC"

# The brief's mapping of Billomat kinds to GMI document types; other kinds use the default.
KIND_TO_GMI_TYPE: dict[str, str] = {
    "invoices": "SALES_INVOICE",
    "credit-notes": "CREDIT_NOTE",
    "incomings": "INCOMING_INVOICE",
    "reminders": "REMINDER",
    "delivery-notes": "DELIVERY_NOTE",
    "confirmations": "ORDER_CONFIRMATION",
}

# How a person would name the PDF of each kind (German, like Billomat's own file names).
KIND_FILE_LABEL: dict[str, str] = {
    "invoices": "Rechnung",
    "credit-notes": "Gutschrift",
    "offers": "Angebot",
    "confirmations": "Auftragsbestätigung",
    "delivery-notes": "Lieferschein",
    "reminders": "Mahnung",
    "letters": "Brief",
    "incomings": "Eingangsrechnung",
}

# GMI document type -> Billomat inbox document_type (the table; others OTHER).
GMI_TO_INBOX_TYPE: dict[str, str] = {
    "INCOMING_INVOICE": "INVOICE",
    "SALES_INVOICE": "INVOICE",
    "RECEIPT": "RECEIPT",
    "PAYMENT_RECEIPT": "RECEIPT",
    "REMINDER": "REMINDER",
    "STATEMENT": "BANK_STATEMENT",
    "TRAVEL_EXPENSES": "TRAVEL_EXPENSE_REPORT",
}

# The Billomat ID becomes part of a URL, so it is held to a DNS label.
BILLOMAT_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# How belegsync names itself to GMI (x-application header; GMI shows it as the document's
# source).  Documents with this source were imported by belegsync and are never exported back.
GMI_APPLICATION = "belegsync"

# Metadata key that marks an inbox document as ours; lets a consumer find an upload whose
# answer it never saw.
MARKER_KEY = "BELEGSYNC_REF"


def inbox_type_for(gmi_type: str) -> str:
    return GMI_TO_INBOX_TYPE.get(gmi_type, "OTHER")


def export_marker(account_ref: str, gmi_uid: int | str) -> str:
    """The metadata value that names an inbox document as our upload of one GMI document.

    ``account_ref`` is the account's never-reused identity (``SyncAccount.ref``), not its
    table id: a removed account's id can come back, its ref never does.  Accounts created
    before refs existed got their old id as ref, so their earlier markers stay valid.
    """
    if not account_ref or ":" in account_ref:
        raise ValueError(f"not an account ref: {account_ref!r}")
    return f"belegsync:a{account_ref}:gmi:{gmi_uid}"


_MARKER_RE = re.compile(r"^belegsync:a([^:\s]+):gmi:(\d+)$")


@dataclass(frozen=True)
class Marker:
    account_ref: str
    gmi_uid: str


def parse_marker(value: str | None) -> Marker | None:
    """The parts of a marker ``export_marker`` built, or None for anything else."""
    match = _MARKER_RE.match((value or "").strip())
    return Marker(match.group(1), match.group(2)) if match else None


def gmi_type_for_kind(kind: str, default_type: str) -> str:
    return KIND_TO_GMI_TYPE.get(kind, default_type)


def import_file_name(kind: str, number: str, pdf_filename: str | None) -> str:
    """A file name a person recognises: Billomat's own when it has one, else `Rechnung RE-1.pdf`."""
    if pdf_filename and pdf_filename.lower().endswith(".pdf"):
        return pdf_filename
    label = KIND_FILE_LABEL.get(kind, "Dokument")
    safe_number = re.sub(r"[^\w.\- ]+", "_", number).strip() or "ohne Nummer"
    return f"{label} {safe_number}.pdf"


# ---------------------------------------------------------------------------------------------
# Input rules.  Each raises InvalidValue naming its field (the account setting's key), so the
# command line and the web console refuse the same input with the same sentence.

# Account names become part of URLs (webhooks: /billomat/<name>) and of metric labels.
ACCOUNT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ACCOUNT_NAME_RULE = (
    "1-63 lower-case letters, digits, '-' and '_', starting with a letter or digit "
    "(e.g. acme-export)"
)
MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 86400  # GMI's own sync offers nothing slower than daily
MAX_NOTE_CHARS = 2000
MAX_TAG_CHARS = 100

_DURATION_RE = re.compile(r"^\s*(\d{1,9})\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def parse_duration(
    text: str, *, minimum: int = 0, maximum: int | None = None, field: str | None = None
) -> int:
    """``30s``, ``15m``, ``1h``, ``1d`` -> seconds."""
    match = _DURATION_RE.match(text or "")
    if not match:
        raise InvalidValue(
            f"invalid duration {text!r}: use a number and s, m, h or d, e.g. 15m", field=field
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < minimum:
        raise InvalidValue(
            f"duration {text!r} is too short: at least {format_duration(minimum)}", field=field
        )
    if maximum is not None and seconds > maximum:
        raise InvalidValue(
            f"duration {text!r} is too long: at most {format_duration(maximum)}", field=field
        )
    return seconds


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_interval(text: str) -> int:
    """An account's sync interval: at least a minute, at most a day."""
    seconds = parse_duration(text, field="interval")
    return check_interval(seconds)


def check_interval(seconds: int) -> int:
    if seconds < MIN_INTERVAL_SECONDS:
        raise InvalidValue(
            f"interval {format_duration(seconds)} is too short: at least 1m", field="interval"
        )
    if seconds > MAX_INTERVAL_SECONDS:
        raise InvalidValue(
            f"interval {format_duration(seconds)} is too long: at most 1 day (1d)",
            field="interval",
        )
    return seconds


def parse_date(text: str, what: str = "date", *, field: str | None = None) -> date:
    """``YYYY-MM-DD``; a well-formed date that does not exist says so."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text or "")
    if not match:
        raise InvalidValue(f"invalid {what} {text!r}: use YYYY-MM-DD", field=field)
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        if not 1 <= month <= 12:
            why = f"there is no month {month}"
        elif day == 0:
            why = "days start at 1"
        else:
            days = calendar.monthrange(max(year, 1), month)[1]
            why = f"{_MONTHS[month - 1]} {year} has {days} days"
        raise InvalidValue(f"no such date: {what} {text!r} ({why})", field=field) from None


def parse_list(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


def check_account_name(name: str, *, field: str = "name") -> str:
    if not ACCOUNT_NAME_RE.match(name or ""):
        raise InvalidValue(f"invalid account name {name!r}: use {ACCOUNT_NAME_RULE}", field=field)
    return name


def check_billomat_id(value: str) -> str:
    if not BILLOMAT_ID_RE.match(value or ""):
        raise InvalidValue(
            f"invalid Billomat ID {value!r}: use the part before .billomat.net "
            "(lower-case letters, digits and hyphens, e.g. acme)",
            field="billomat_id",
        )
    return value


def check_document_types(
    values: Iterable[str], *, field: str = "document_types"
) -> tuple[str, ...]:
    result = []
    for value in values:
        upper = value.upper()
        if upper not in GMI_DOCUMENT_TYPES:
            raise InvalidValue(
                f"unknown GMI document type {value!r}: choose from {', '.join(GMI_DOCUMENT_TYPES)}",
                field=field,
            )
        result.append(upper)
    return tuple(dict.fromkeys(result))


def check_document_kinds(values: Iterable[str]) -> tuple[str, ...]:
    result = []
    for value in values:
        lower = value.lower()
        if lower not in BILLOMAT_KINDS:
            raise InvalidValue(
                f"unknown Billomat document kind {value!r}: "
                f"choose from {', '.join(BILLOMAT_KINDS)}",
                field="document_kinds",
            )
        result.append(lower)
    if not result:
        raise InvalidValue("document kinds: name at least one kind", field="document_kinds")
    return tuple(dict.fromkeys(result))


def check_tags(values: Iterable[str], *, field: str = "tags") -> tuple[str, ...]:
    result = []
    for value in values:
        tag = value.strip()
        if len(tag) > MAX_TAG_CHARS:
            raise InvalidValue(
                f"tag {tag[:20]!r}… is too long: at most {MAX_TAG_CHARS} characters", field=field
            )
        if tag:
            result.append(tag)
    return tuple(dict.fromkeys(result))


def check_text(value: str, *, field: str, limit: int) -> str:
    if len(value) > limit:
        label = field.replace("_", " ")
        raise InvalidValue(f"{label} is too long: at most {limit} characters", field=field)
    return value


def check_date_range(date_from: date | None, date_to: date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise InvalidValue(
            f"date range is empty: --date-from {date_from} is after --date-to {date_to}",
            field="date_to",
        )


# ---------------------------------------------------------------------------------------------
# Account rules


@dataclass(frozen=True)
class ExportRules:
    """What an export account sends, as GMI's own sync settings describe it."""

    document_types: frozenset[str] = frozenset()  # empty: all
    tags: frozenset[str] = frozenset()  # empty: any; otherwise one of these
    require_approval: bool = False
    archive_after_transfer: bool = False
    date_from: date | None = None
    date_to: date | None = None

    def rejection(
        self,
        *,
        document_type: str,
        tags: Iterable[str],
        document_date: date | None,
        is_archived: bool,
        source: str = "",
    ) -> str | None:
        """Why a document does not belong to this account, or None when it does.

        Approval is checked separately: the list call does not show it.
        """
        if source.casefold() == GMI_APPLICATION:
            return "imported into GMI by belegsync; never exported back"
        if is_archived:
            return "archived in GMI before it was transferred"
        if self.document_types and document_type not in self.document_types:
            return f"document type {document_type} is not exported by this account"
        if self.tags and not (self.tags & set(tags)):
            return f"carries none of the tags {', '.join(sorted(self.tags))}"
        if self.date_from or self.date_to:
            if document_date is None:
                return "has no document date but the account exports a date range"
            if self.date_from and document_date < self.date_from:
                return f"document date {document_date} is before {self.date_from}"
            if self.date_to and document_date > self.date_to:
                return f"document date {document_date} is after {self.date_to}"
        return None

    def approval_rejection(self, workflow_completed: bool | None) -> str | None:
        """``workflow_completed`` None means the document has no approval workflow at all.

        With approval required such a document is not exported: nobody approved it.
        """
        if not self.require_approval or workflow_completed:
            return None
        if workflow_completed is None:
            return "approval required, but the document has no approval workflow"
        return "approval required, and the approval workflow is not completed"


@dataclass(frozen=True)
class ImportRules:
    """What an import account brings into GMI and how it labels it."""

    document_kinds: tuple[str, ...] = DEFAULT_IMPORT_KINDS
    default_document_type: str = DEFAULT_IMPORT_DOCUMENT_TYPE
    default_tags: tuple[str, ...] = field(default_factory=tuple)
    default_company: str | None = None

    def gmi_type_for(self, kind: str) -> str:
        return gmi_type_for_kind(kind, self.default_document_type)
