"""The demo's own verdict: it must notice a document landed twice, a stray upload, a shortfall.

In-process against the simulators and a sandbox database; no broker needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.bootstrap import broker
from app.demo.checks import find_problems
from app.demo.model import BILLOMAT_API_KEY, BILLOMAT_ID, GMI_API_KEY, RETRY_DELAYS
from app.demo.rounds import expected_synced
from app.demo.sandbox import Sandbox, Teardown, create_sandbox
from shared.billomat import BillomatClient
from shared.domain import Direction, export_marker
from shared.settings import Settings


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    teardown = Teardown()
    # Never connected: the sandbox only takes the URL and the queue prefix from it.
    unused = broker(Settings(queue_prefix="belegsync-demo-unit", retry_delays=RETRY_DELAYS))
    try:
        yield create_sandbox(teardown, unused, keep=False)
    finally:
        teardown.run()


def upload(sandbox: Sandbox, uid: int, marker: str | None = None) -> int:
    """Put GMI document ``uid`` into the Billomat inbox as an export would."""
    client = BillomatClient(
        BILLOMAT_ID, BILLOMAT_API_KEY, url_template=sandbox.settings.billomat_base_url
    )
    account_ref = sandbox.accounts[Direction.EXPORT].ref
    try:
        created = client.create_inbox_document(
            content=sandbox.sims.gmi.document_content(GMI_API_KEY, uid),
            document_type="INVOICE",
            metadata={"BELEGSYNC_REF": marker or export_marker(account_ref, uid)},
        )
    finally:
        client.close()
    return created.id


def synced_row(uid: int, inbox_id: int) -> dict[str, Any]:
    return {"gmi_uid": uid, "state": "synced", "billomat_inbox_id": inbox_id, "reason": None}


def first_approved(sandbox: Sandbox) -> int:
    return next(d["uid"] for d in sandbox.gmi_before if d["approval"] is True)


def test_the_demo_data_has_four_approved_expenses_and_nine_finished_sales_documents(
    sandbox: Sandbox,
) -> None:
    assert expected_synced(sandbox) == {Direction.EXPORT: 4, Direction.IMPORT: 9}


def test_one_landed_document_as_expected_is_no_problem(sandbox: Sandbox) -> None:
    uid = first_approved(sandbox)
    inbox_id = upload(sandbox, uid)

    expected = {Direction.EXPORT: 1, Direction.IMPORT: 0}
    assert find_problems(sandbox, expected, [synced_row(uid, inbox_id)], []) == []


def test_a_document_in_the_inbox_twice_is_reported(sandbox: Sandbox) -> None:
    uid = first_approved(sandbox)
    inbox_id = upload(sandbox, uid)
    upload(sandbox, uid)

    expected = {Direction.EXPORT: 1, Direction.IMPORT: 0}
    problems = find_problems(sandbox, expected, [synced_row(uid, inbox_id)], [])

    assert problems == [f"GMI {uid} is in the inbox 2 times"]


def test_an_inbox_document_no_synced_row_accounts_for_is_reported(sandbox: Sandbox) -> None:
    upload(sandbox, first_approved(sandbox), marker="belegsync:a99:gmi:1")

    expected = {Direction.EXPORT: 0, Direction.IMPORT: 0}
    problems = find_problems(sandbox, expected, [], [])

    assert problems == ["1 inbox document(s) belong to no synced GMI document"]


def test_fewer_synced_documents_than_expected_are_reported(sandbox: Sandbox) -> None:
    expected = {Direction.EXPORT: 0, Direction.IMPORT: 2}

    assert find_problems(sandbox, expected, [], []) == ["import: 0 synced, 2 expected"]


def test_a_parked_document_is_reported_with_its_reason(sandbox: Sandbox) -> None:
    row = {"gmi_uid": 7, "state": "parked", "billomat_inbox_id": None, "reason": "HTTP 400"}
    expected = {Direction.EXPORT: 0, Direction.IMPORT: 0}

    assert find_problems(sandbox, expected, [row], []) == ["GMI 7 is parked: HTTP 400"]


def test_teardown_runs_every_step_even_when_one_fails_and_says_what_was_done() -> None:
    teardown = Teardown()
    ran: list[str] = []
    teardown.add("first registered", ran.append, "first")
    teardown.add("fails", lambda: 1 / 0)
    teardown.add("last registered", ran.append, "last")

    with pytest.raises(ZeroDivisionError):
        teardown.run()

    assert ran == ["last", "first"]
    assert teardown.done == ["last registered", "first registered"]
