"""One bad account never stops the others: keys that cannot be decrypted, refused credentials
and garbage answers pause or mark that account alone, by name, and release its lease."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shared.accounts import AccountChanges, AccountService
from shared.crypto import SecretBox, generate_key
from shared.db import PollState, SyncAccount
from shared.domain import Direction
from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, BILLOMAT_KEY, GMI_KEY, Pipeline
from tests.helpers import Cli

OTHER_GMI_KEY = "gmi-e2e-other-0003"


def add_under_another_key(pipeline: Pipeline, name: str, gmi_key: str) -> None:
    """An account stored by a process with another BELEGSYNC_SECRET_KEY.

    `accounts add` refuses that now; a database restored beside the wrong key file, or one
    written by an older belegsync, still looks like this.
    """
    stranger = AccountService(pipeline.db, lambda: SecretBox(generate_key()))
    changes = AccountChanges(
        gmi_api_key=gmi_key, billomat_id=BILLOMAT_ID, billomat_api_key=BILLOMAT_KEY
    )
    changes.require_approval = changes.archive_after_transfer = False
    stranger.add(Direction.EXPORT, name, changes, check_key=False)


def attention(pipeline: Pipeline, name: str) -> str | None:
    [row] = [r for r in pipeline.overview() if r["account"] == name]
    return row["attention"]  # type: ignore[no-any-return]


def test_an_account_under_another_key_is_shown_by_name_while_the_good_one_syncs(
    pipeline: Pipeline,
    sims: Simulators,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sims.gmi.add_account(OTHER_GMI_KEY)
    good_docs = [sims.gmi.seed_document(GMI_KEY, document_number=f"G-{n}") for n in range(3)]
    sims.gmi.seed_document(OTHER_GMI_KEY, document_number="B-1")
    pipeline.add_export("good")
    add_under_another_key(pipeline, "bad", OTHER_GMI_KEY)
    # Both due now, instead of spread over the producer's first minute.
    with pipeline.db.session() as session:
        session.execute(update(PollState).values(next_due_at=datetime.now(UTC)))

    producer = pipeline.spawn("produce", log=tmp_path / "producer.log")
    consumer = pipeline.spawn("consume", log=tmp_path / "consumer.log")
    pipeline.wait_until(
        lambda: pipeline.states("good") == {str(uid): "synced" for uid in good_docs},
        what="the good account's documents",
    )
    pipeline.wait_until(lambda: attention(pipeline, "bad") is not None, what="bad marked")

    assert producer.poll() is None, (tmp_path / "producer.log").read_text()
    assert consumer.poll() is None, (tmp_path / "consumer.log").read_text()
    reason = attention(pipeline, "bad")
    assert reason is not None
    assert reason.startswith("paused: cannot decrypt its stored API keys")
    assert "belegsync accounts update bad" in reason
    assert attention(pipeline, "good") is None
    markers = {i["metadata"]["BELEGSYNC_REF"] for i in sims.billomat.inbox(BILLOMAT_ID)}
    assert len(markers) == len(good_docs)
    with pipeline.db.session() as session:
        leases = dict(
            session.execute(
                select(SyncAccount.name, PollState.lease_until).join(
                    PollState, PollState.account_id == SyncAccount.id
                )
            ).all()
        )
    assert leases["bad"] is None  # nobody waits ten minutes for a lease of a failed poll

    cli = Cli(pipeline.settings, capsys)
    shown = cli("status")
    assert shown.code == 0
    assert "! bad: paused: cannot decrypt its stored API keys" in shown.out
    [bad_line] = [line for line in shown.out.splitlines() if line.startswith("bad ")]
    assert "attention" in bad_line

    log = (tmp_path / "producer.log").read_text()
    assert "Traceback" not in log
    producer.send_signal(signal.SIGTERM)
    consumer.send_signal(signal.SIGTERM)
    assert producer.wait(30) == 0, log
    assert consumer.wait(70) == 0


def test_a_consumer_holds_the_documents_of_an_account_whose_keys_turned_unreadable(
    pipeline: Pipeline, sims: Simulators
) -> None:
    sims.gmi.add_account(OTHER_GMI_KEY)
    good = [sims.gmi.seed_document(GMI_KEY, document_number=f"G-{n}") for n in range(2)]
    bad = [sims.gmi.seed_document(OTHER_GMI_KEY, document_number=f"B-{n}") for n in range(2)]
    pipeline.add_export("good")
    pipeline.add_export("bad", gmi_api_key=OTHER_GMI_KEY)
    pipeline.produce_once()  # both published while every key was readable
    # ...then the bad account's keys were entered again under another secret key
    AccountService(pipeline.db, lambda: SecretBox(generate_key())).update(
        "bad",
        AccountChanges(gmi_api_key=OTHER_GMI_KEY, billomat_api_key=BILLOMAT_KEY),
        check_key=False,  # (the service refuses this unless told it is on purpose)
    )

    assert pipeline.consume() == 4  # one consumer, every message, no crash
    assert pipeline.states("good") == {str(uid): "synced" for uid in good}
    assert pipeline.states("bad") == {str(uid): "held" for uid in bad}
    reason = attention(pipeline, "bad")
    assert reason is not None
    assert reason.startswith("paused: cannot decrypt its stored API keys")

    # The operator enters the keys again and resumes: the held documents go through.
    pipeline.accounts.update(
        "bad", AccountChanges(gmi_api_key=OTHER_GMI_KEY, billomat_api_key=BILLOMAT_KEY)
    )
    pipeline.accounts.set_enabled("bad", True)
    pipeline.produce_once(["bad"])
    pipeline.consume()
    assert pipeline.states("bad") == {str(uid): "synced" for uid in bad}
    assert len(sims.billomat.inbox(BILLOMAT_ID)) == 4


def test_refused_credentials_and_garbage_answers_mark_only_their_account(
    pipeline: Pipeline, sims: Simulators, capsys: pytest.CaptureFixture[str]
) -> None:
    sims.gmi.add_account(OTHER_GMI_KEY, blocked=True)  # GMI refuses this key (403 code 407)
    good = sims.gmi.seed_document(GMI_KEY, document_number="G-1")
    pipeline.add_export("good")
    pipeline.add_export("blocked", gmi_api_key=OTHER_GMI_KEY)
    pipeline.add_import("garbled", gmi_api_key=GMI_KEY)
    # The import account's Billomat answers are not JSON at all.
    sims.billomat.fail_next(5, status=200, html=True, path_contains="/invoices")

    cli = Cli(pipeline.settings, capsys)
    produced = cli("produce", "--once")
    assert produced.code == 1  # some polls failed; the command says which, once each
    lines = produced.out.splitlines()
    assert sum(line.startswith("good: ok") for line in lines) == 1
    assert sum(line.startswith("blocked: error") for line in lines) == 1
    assert sum(line.startswith("garbled: error") for line in lines) == 1
    assert "poll good:" not in produced.err  # no second copy of the result in the log
    pipeline.consume()
    assert pipeline.states("good") == {str(good): "synced"}

    status = cli("status", "--json").json()
    by_name = {row["account"]: row for row in status}
    assert by_name["blocked"]["attention"].startswith("paused: gmi HTTP 403 code 407")
    assert by_name["garbled"]["attention"] is None
    assert by_name["garbled"]["last_poll_result"] == "error"
    table = cli("status").out
    assert "! blocked: paused: gmi HTTP 403" in table
    assert "! garbled: last poll failed:" in table
