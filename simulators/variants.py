"""Switches for what the API documentation leaves open: each unknown, one way or the other.

The simulators follow everything ``../shared/api/*.md`` states. Where the documentation is silent
they settle a behaviour one way (the default); a *variant* settles it the other way, so the tests
can run in both worlds. ``belegsync simulate --variant NAME`` and ``Simulators(variants=[...])``
switch them on; ``PUT /_sim/options`` changes the single settings at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

LIMIT_BODIES = ("code", "empty", "detail")
INBOX_METADATA = ("kept", "dropped", "rewritten")
DEFAULT_LISTING_LAG = 5.0


@dataclass
class GmiBehaviour:
    """How the GMI simulator answers where the documentation is silent."""

    records_as_object: bool = False  # PHP's keyed-array quirk for the list's "records"
    error_shape: str = "spec"  # "spec": {success,detail,error_code}; "errors": {success,errors[]}
    # Body of a call-limit refusal: {"code":429,"detail":…} (the spec's sub-code), {} (the
    # spec's example body) or {"detail": "Daily limit exceeded"} (a text and no code).
    limit_body: str = "code"
    # Whether approving a document changes the modification time updatedOrNewSinceFilter reads.
    approval_touches_mtime: bool = True
    # Seconds a new document stays out of GET /documents (the search index lags the upload).
    listing_lag: float = 0.0

    def check(self) -> None:
        if self.limit_body not in LIMIT_BODIES:
            raise ValueError(f"limit_body must be one of {LIMIT_BODIES}")
        if self.error_shape not in ("spec", "errors"):
            raise ValueError("error_shape must be 'spec' or 'errors'")
        if self.listing_lag < 0:
            raise ValueError("listing_lag must not be negative")


@dataclass
class BillomatBehaviour:
    """How the Billomat simulator answers where the documentation is silent."""

    # What the inbox does with metadata a client sends: keeps it as sent, drops it, or
    # rewrites it (OCR replaces what it does not know and the file is renamed inbox_{id}.pdf).
    inbox_metadata: str = "kept"
    # Whether order_by may name the id (only date and number fields are shown in the docs).
    sort_by_id: bool = True
    # Largest inbox upload the gateway lets through (None: no limit); larger ones get a 413.
    max_upload_bytes: int | None = None

    def check(self) -> None:
        if self.inbox_metadata not in INBOX_METADATA:
            raise ValueError(f"inbox_metadata must be one of {INBOX_METADATA}")
        if self.max_upload_bytes is not None and self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be at least 1")


Apply = Callable[[GmiBehaviour, BillomatBehaviour, float | None], None]


@dataclass(frozen=True)
class Variant:
    """One undocumented behaviour switched the other way."""

    name: str
    summary: str
    apply: Apply
    takes_seconds: bool = False


def _limit_body(body: str) -> Apply:
    def apply(gmi: GmiBehaviour, billomat: BillomatBehaviour, value: float | None) -> None:
        gmi.limit_body = body

    return apply


def _inbox_metadata(mode: str) -> Apply:
    def apply(gmi: GmiBehaviour, billomat: BillomatBehaviour, value: float | None) -> None:
        billomat.inbox_metadata = mode

    return apply


def _approval(gmi: GmiBehaviour, billomat: BillomatBehaviour, value: float | None) -> None:
    gmi.approval_touches_mtime = False


def _lag(gmi: GmiBehaviour, billomat: BillomatBehaviour, value: float | None) -> None:
    gmi.listing_lag = DEFAULT_LISTING_LAG if value is None else value


def _no_sort_by_id(gmi: GmiBehaviour, billomat: BillomatBehaviour, value: float | None) -> None:
    billomat.sort_by_id = False


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "gmi-limit-empty-403",
            "GMI refuses calls over a limit with HTTP 403 and an empty body {}",
            _limit_body("empty"),
        ),
        Variant(
            "gmi-limit-detail-403",
            "GMI refuses calls over a limit with HTTP 403 and only a text, "
            'e.g. {"detail": "Daily limit exceeded"}',
            _limit_body("detail"),
        ),
        Variant(
            "inbox-metadata-dropped",
            "the Billomat inbox keeps none of the metadata a client sends",
            _inbox_metadata("dropped"),
        ),
        Variant(
            "inbox-metadata-rewritten",
            "the Billomat inbox replaces unknown metadata keys by its own OCR results and "
            "renames the file inbox_{id}.pdf",
            _inbox_metadata("rewritten"),
        ),
        Variant(
            "gmi-approval-keeps-mtime",
            "approving a GMI document does not change its modification time, so "
            "updatedOrNewSinceFilter does not return it",
            _approval,
        ),
        Variant(
            "gmi-listing-lag",
            f"GMI lists a new document only SECONDS (default {DEFAULT_LISTING_LAG:g}) after "
            "it was stored; GET by uid and /documents/exists see it at once",
            _lag,
            takes_seconds=True,
        ),
        Variant(
            "billomat-no-sort-by-id",
            "Billomat rejects order_by=id with HTTP 400 (only date and number fields are "
            "documented as sortable)",
            _no_sort_by_id,
        ),
    )
}

DOCUMENTED = "documented"  # no variant: every undocumented behaviour settled the default way


def parse_variant(text: str) -> tuple[Variant, float | None]:
    """``NAME`` or ``NAME=SECONDS``; ValueError with the known names otherwise."""
    name, _, raw = text.strip().partition("=")
    variant = VARIANTS.get(name.strip())
    if variant is None:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    if not raw:
        return variant, None
    if not variant.takes_seconds:
        raise ValueError(f"variant {variant.name} takes no value")
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{variant.name}={raw!r}: give the seconds as a number") from None
    if seconds < 0:
        raise ValueError(f"{variant.name}: seconds must not be negative")
    return variant, seconds


def apply_variants(
    names: Iterable[str], gmi: GmiBehaviour, billomat: BillomatBehaviour
) -> list[str]:
    """Switch on each named variant (``documented`` is none); returns the names applied."""
    applied = []
    for text in names:
        if text.strip() == DOCUMENTED:
            continue
        variant, seconds = parse_variant(text)
        variant.apply(gmi, billomat, seconds)
        applied.append(text.strip())
    gmi.check()
    billomat.check()
    return applied
