"""Nothing twice: lost answers, killed consumers and competing consumers on one queue."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from simulators import Simulators
from tests.e2e.conftest import BILLOMAT_ID, GMI_KEY, Pipeline, on_each_db_and_variant


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# Where recovery must not rely on the marker (or on sorting by id), it must still find its
# earlier upload: every lost-answer and SIGKILL test runs in those worlds too.
RECOVERY_VARIANTS = [
    "documented",
    "inbox-metadata-dropped",
    "inbox-metadata-rewritten",
    "billomat-no-sort-by-id",
]


def markers(sims: Simulators) -> Counter[str]:
    return Counter(
        str(i["metadata"].get("BELEGSYNC_REF")) for i in sims.billomat.inbox(BILLOMAT_ID)
    )  # type: ignore[union-attr]


def landed(sims: Simulators, *uids: int) -> Counter[str]:
    """How often each document's bytes are in the inbox (the marker may not be kept)."""
    wanted = {sha(sims.gmi.document_content(GMI_KEY, uid)): str(uid) for uid in uids}
    return Counter(
        wanted.get(str(i["sha256"]), "someone else's") for i in sims.billomat.inbox(BILLOMAT_ID)
    )


@on_each_db_and_variant(*RECOVERY_VARIANTS[1:])
def test_upload_that_landed_but_lost_its_answer_is_not_uploaded_again(
    any_db_pipeline: Pipeline, sims: Simulators, variant: str
) -> None:
    pipeline = any_db_pipeline
    uid = sims.gmi.seed_document(GMI_KEY, document_number="LOST-1")
    # Someone else's upload in the same window, of the same size, must not be taken for ours.
    other = sims.gmi.seed_document(GMI_KEY, document_number="LOST-2")
    account_id = pipeline.add_export()
    sims.billomat.drop_after_next_write(1, path_contains="inbox-documents")

    pipeline.produce_once()
    pipeline.consume(idle_exit=4.0)  # the retry tier brings the message back after 1 s

    assert landed(sims, uid, other) == {str(uid): 1, str(other): 1}
    if variant in ("documented", "billomat-no-sort-by-id"):
        assert markers(sims) == {
            pipeline.marker(account_id, uid): 1,
            pipeline.marker(account_id, other): 1,
        }
    rows = {r["source_id"]: r for r in pipeline.ledger()}
    assert {r["state"] for r in rows.values()} == {"synced"}
    by_hash = {str(i["sha256"]): str(i["id"]) for i in sims.billomat.inbox(BILLOMAT_ID)}
    for source in (uid, other):
        expected = by_hash[sha(sims.gmi.document_content(GMI_KEY, source))]
        assert rows[str(source)]["target_id"] == expected
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 2


def test_two_consumer_processes_on_one_queue_sync_200_documents_exactly_once(
    any_db_pipeline: Pipeline, sims: Simulators, tmp_path: Path
) -> None:
    pipeline = any_db_pipeline
    # GMI's 100 calls per minute would turn this into a test of waiting; other tests do that.
    sims.gmi.set_limits(GMI_KEY, per_minute=100_000, per_day=10**7)
    pipeline.raise_gmi_limits()
    uids = [sims.gmi.seed_document(GMI_KEY, document_number=f"B-{n:03d}") for n in range(200)]
    account_id = pipeline.add_export()
    [report] = pipeline.produce_once()
    assert report.new == 200

    for n in range(2):
        pipeline.spawn(
            "consume", "--direction", "export", "--idle-exit", "3", log=tmp_path / f"c{n}.log"
        )
    for process in pipeline.processes:
        assert process.wait(timeout=180) == 0

    counts = markers(sims)
    assert counts == {pipeline.marker(account_id, uid): 1 for uid in uids}
    assert set(pipeline.states().values()) == {"synced"}
    # both consumers really took part
    logs = [(tmp_path / f"c{n}.log").read_text() for n in range(2)]
    assert all(log.count("synced") > 10 for log in logs), logs


@on_each_db_and_variant(*RECOVERY_VARIANTS[1:3])
def test_consumer_killed_after_the_upload_and_before_the_commit_causes_no_duplicate(
    any_db_pipeline: Pipeline, sims: Simulators, tmp_path: Path, variant: str
) -> None:
    pipeline = any_db_pipeline
    uid = sims.gmi.seed_document(GMI_KEY, document_number="KILL-1")
    account_id = pipeline.add_export()
    pipeline.produce_once()
    # The upload is stored at once but answered only after 8 s: the consumer is killed while
    # it waits, so the upload landed and nobody recorded it.
    sims.billomat.hold_after_next_write(1, seconds=8, path_contains="inbox-documents")
    victim = pipeline.spawn("consume", "--direction", "export", log=tmp_path / "victim.log")
    pipeline.wait_until(lambda: len(sims.billomat.inbox(BILLOMAT_ID)) == 1, what="upload landed")
    victim.kill()  # SIGKILL
    assert victim.wait(10) == -9
    [row] = pipeline.ledger()
    assert row["state"] == "uploading"
    assert row["target_id"] is None

    survivor = pipeline.spawn("consume", "--direction", "export", "--idle-exit", "3")
    assert survivor.wait(60) == 0

    assert landed(sims, uid) == {str(uid): 1}
    if variant == "documented":
        assert markers(sims) == {pipeline.marker(account_id, uid): 1}
    [row] = pipeline.ledger()
    assert row["state"] == "synced"
    assert row["target_id"] == str(sims.billomat.inbox(BILLOMAT_ID)[0]["id"])
    assert sims.billomat.request_counts(BILLOMAT_ID)["POST /api/inbox-documents"] == 1
