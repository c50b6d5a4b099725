"""Taking a delivery in: what must hold before a consumer may write anything for a message.

A message is a claim by whoever published it.  Two checks turn it into work:

- it decodes (``shared.messages.decode_message``: bounded, typed, in range), else it is parked
  raw with the decoder's reason;
- the ledger row it names exists, belongs to the account it names, is the document it names,
  and that account has the message's direction.  Until this read has succeeded nothing in the
  ledger is changed; a mismatch is parked and leaves every row as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.db import Database, Document, SyncAccount
from shared.deliveries import Delivery
from shared.messages import DELIVERY_COUNT_HEADER, SyncMessage, header_int


@dataclass(frozen=True)
class Target:
    """The ledger row and account a message really refers to (a detached snapshot)."""

    account: SyncAccount
    state: str


@dataclass(frozen=True)
class Mismatch:
    """Why a well-formed message refers to nothing we may touch."""

    reason: str


def resolve(db: Database, msg: SyncMessage) -> Target | Mismatch:
    """Read the row and account a message names, and check that they belong together."""
    with db.session() as session:
        doc = session.get(Document, msg.document_id)
        if doc is None:
            return Mismatch(f"no ledger row {msg.document_id} (removed?)")
        if doc.account_id != msg.account_id:
            return Mismatch(
                f"ledger row {msg.document_id} does not belong to account id {msg.account_id}"
            )
        if (doc.source_kind, doc.source_id) != (msg.source_kind, msg.source_id):
            return Mismatch(
                f"ledger row {msg.document_id} is not {msg.source_kind} {msg.source_id}"
            )
        account = session.get(SyncAccount, msg.account_id)
        if account is None:
            return Mismatch(f"no sync account with id {msg.account_id} (removed?)")
        if account.direction != msg.direction.value:
            return Mismatch(
                f"account {account.name!r} syncs {account.direction}, the message says "
                f"{msg.direction.value}"
            )
        return Target(account, doc.state)


def owns(doc: Document | None, msg: SyncMessage) -> bool:
    """Whether ``doc`` is the row ``msg`` refers to (checked again in every writing session)."""
    return (
        doc is not None
        and doc.account_id == msg.account_id
        and doc.source_kind == msg.source_kind
        and doc.source_id == msg.source_id
    )


def redeliveries(delivery: Delivery) -> int:
    """How often the broker handed this message out before, without an outcome.

    ``x-delivery-count`` is RabbitMQ's on a redelivery; on a first delivery it is whatever the
    sender wrote (a string, a table, a count of 19), so it is believed only for a redelivery.
    """
    if not delivery.redelivered:
        return 0
    return header_int(delivery.headers, DELIVERY_COUNT_HEADER)
