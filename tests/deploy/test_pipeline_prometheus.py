"""A real Prometheus scrapes a real producer and consumer through one end-to-end run.

The run, on the real RabbitMQ and the simulators, with faults armed only after Prometheus has
seen every counter at its starting value:

- export (GMI -> Billomat inbox): four documents land; the first inbox upload is answered 503
  and retried; a fifth document whose file Billomat refuses (400) is parked as permanent;
- import (Billomat -> GMI): the first poll is answered 429 (rate limited), the next one finds
  two invoices, and both land in GMI;
- a malformed message published to the import work queue is parked as malformed.

Then every dashboard panel query and every alert expression is evaluated through the HTTP API,
and the counters Prometheus holds are compared with what the simulators, the ledger and the
broker say happened.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from app import bootstrap
from shared.accounts import AccountChanges
from shared.db import PollState
from shared.domain import Direction
from simulators import Simulators
from tests.conftest import make_settings
from tests.deploy.prom import (
    ALERTS,
    GRAFANA_VARIABLES,
    PrometheusServer,
    Query,
    alert_queries,
    alert_rules,
    dashboard_queries,
    free_port,
    run_prometheus,
)
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.prometheus

PRODUCER_JOB = "belegsync-producer"
CONSUMER_JOB = "belegsync-consumer"
JOBS = (PRODUCER_JOB, CONSUMER_JOB)

EXPORT_ACCOUNT = "acme-export"
IMPORT_ACCOUNT = "busy-import"
GMI_EXPORT_KEY = "gmi-obs-export-key-7f3a2c"
GMI_IMPORT_KEY = "gmi-obs-import-key-91c2d8"
EXPORT_TENANT, EXPORT_TENANT_KEY = "acme", "bm-obs-acme-key-5d1e77"
IMPORT_TENANT, IMPORT_TENANT_KEY = "busy", "bm-obs-busy-key-c04b19"
SECRETS = (GMI_EXPORT_KEY, GMI_IMPORT_KEY, EXPORT_TENANT_KEY, IMPORT_TENANT_KEY)

# Billomat counts calls in clock-aligned windows. The export tenant's window is far longer
# than the run, so the quota the consumer last saw is this run's count; the import tenant's
# is short, so the poll refused with 429 may try again within seconds.
EXPORT_TENANT_LIMIT = 300
EXPORT_TENANT_WINDOW = 10_000_000.0
IMPORT_TENANT_WINDOW = 4.0

GOOD_EXPORTS = 4
NOT_A_PDF = b"plain text: neither a PDF nor an image\n"
IMPORTS = 2
PARKED = 2  # the export whose file Billomat refused, and the malformed message

# A $__rate_interval as Grafana would use for a view of the last few minutes. It must cover the
# whole run, from the first poll to the evaluation: the fixture's waits add up to less.
RUN_VARIABLES = {**GRAFANA_VARIABLES, "$__rate_interval": "2m"}

# What each panel must show after this run. DATA: the label sets (matched as subsets) that must
# carry a value other than 0 and NaN, because the run produced what they count; {} for a
# single-value panel. ZERO: panels whose every value must be 0, and why. EMPTY: panels that
# must return nothing, and why. Every panel target is in exactly one of the three.
EXPORT, IMPORT = {"direction": "export"}, {"direction": "import"}
BOTH_DIRECTIONS = [EXPORT, IMPORT]
PANEL_DATA: dict[str, list[dict[str, str]]] = {
    "panel 'Consumers up' A": [{}],
    "panel 'Producers up' A": [{}],
    "panel 'Synced in range' A": [{}],
    "panel 'Parked now' A": [{}],
    "panel 'Throughput by direction and outcome' A": [
        {**EXPORT, "outcome": "synced"},
        {**EXPORT, "outcome": "retried"},
        {**EXPORT, "outcome": "parked"},
        {**IMPORT, "outcome": "synced"},
    ],
    "panel 'End-to-end latency (detection → landing)' A": BOTH_DIRECTIONS,
    "panel 'End-to-end latency (detection → landing)' B": BOTH_DIRECTIONS,
    "panel 'End-to-end latency (detection → landing)' C": BOTH_DIRECTIONS,
    "panel 'Processing time per message (p50, p90)' A": BOTH_DIRECTIONS,
    "panel 'Processing time per message (p50, p90)' B": BOTH_DIRECTIONS,
    "panel 'Retries by error class' A": [{**EXPORT, "error_class": "transient"}],
    "panel 'Parked documents by error class' A": [
        {**EXPORT, "error_class": "permanent"},
        {**IMPORT, "error_class": "malformed"},
    ],
    "panel 'Queue depths' A": [{"queue": "parked", "role": "parked"}],
    "panel 'Consumers per work queue' A": [{"queue": "export"}, {"queue": "import"}],
    "panel 'Consumer targets up' A": [{}],
    "panel 'API errors (non-2xx)' A": [
        {"api": "billomat", "endpoint": "POST /inbox-documents", "status_class": "5xx"},
        {"api": "billomat", "endpoint": "POST /inbox-documents", "status_class": "4xx"},
        {"api": "billomat", "endpoint": "GET /invoices", "status_class": "4xx"},
    ],
    "panel 'Rate limited (429)' A": [{"api": "billomat"}],
    "panel 'Quota remaining per account' A": [
        {"api": "billomat", "account": EXPORT_ACCOUNT},
        {"api": "billomat", "account": IMPORT_ACCOUNT},
    ],
    "panel 'API requests by status class' A": [
        {"api": "billomat", "status_class": "2xx"},
        {"api": "billomat", "status_class": "4xx"},
        {"api": "billomat", "status_class": "5xx"},
        {"api": "gmi", "status_class": "2xx"},
    ],
    "panel 'API latency p90' A": [{"api": "billomat"}, {"api": "gmi"}],
    "panel 'Polls by result' A": [
        {**EXPORT, "result": "ok"},
        {**IMPORT, "result": "ok"},
        {**IMPORT, "result": "rate_limited"},
    ],
    "panel 'Documents detected' A": BOTH_DIRECTIONS,
    "panel 'Poll age in poll intervals' A": [
        {"account": EXPORT_ACCOUNT},
        {"account": IMPORT_ACCOUNT},
    ],
    "panel 'Poll duration p90' A": BOTH_DIRECTIONS,
    "panel 'Running versions' A": [
        {"job": PRODUCER_JOB, "role": "producer"},
        {"job": CONSUMER_JOB, "role": "consumer"},
    ],
}
ZERO_PANELS = {
    "panel 'Waiting in work queues' A": "every message was handled: the work queues are empty",
    "panel 'Accounts with stale polls' A": "both accounts were polled successfully seconds ago",
    "panel 'Documents in progress' A": "the consumer is idle at the end of the run",
    "panel 'Backlog per account' A": (
        "every document landed or was parked: no account has a backlog (the producer reads "
        "it right after the settled queue depths)"
    ),
    "panel 'Backlog done in (at the current quota)' A": "no backlog is done at once",
}
EMPTY_PANELS = {
    "panel 'Accounts not polled successfully for 3 intervals' A": (
        "both accounts were polled successfully seconds ago; the panel lists only accounts "
        "without a successful poll for 45 minutes"
    ),
}
API_STATUS_PANELS = {
    "panel 'API errors (non-2xx)' A",
    "panel 'API requests by status class' A",
}

# Alerts whose expression this run must leave empty, and why.
EMPTY_ALERTS = {
    "alert BelegsyncAccountNotPolled": (
        "both accounts were polled successfully seconds ago, not more than 3 intervals ago"
    ),
    "alert BelegsyncProducerDown": "the producer target is up",
    "alert BelegsyncNoConsumerRunning": (
        "a consumer target is up, and the work queues are empty at the end of the run"
    ),
    "alert BelegsyncWorkQueueWithoutConsumer": "the work queues are empty at the end of the run",
}
# What the alerts that hold must report: one label set per result sample.
ALERT_LABELS = {
    "alert BelegsyncDocumentsParked": [
        {"direction": "export", "error_class": "permanent"},
        {"direction": "import", "error_class": "malformed"},
    ],
    "alert BelegsyncParkedQueueGrowing": [{"queue": "parked"}],
    "alert BelegsyncRateLimitedSustained": [{"api": "billomat"}],
}


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Run:
    """Prometheus after the run, and what the simulators, ledger and broker say happened."""

    prom: PrometheusServer
    synced_exports: int
    synced_imports: int
    export_ledger: dict[str, str]
    import_ledger: dict[str, str]
    polls_in_database: int
    gmi_requests: int
    billomat_requests: dict[str, int]
    parked_in_broker: int
    started: float  # Unix time the accounts fell due
    document_ids: set[str]  # source and target ids and document numbers of the ledger


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def ready(port: int) -> bool:
    try:
        return http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    except OSError:
        return False


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def own_samples(port: int) -> Samples:
    """Every belegsync sample a process serves on its /metrics right now."""
    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("belegsync_")
    }


def scraped_samples(prom: PrometheusServer, job: str) -> Samples:
    """The latest sample Prometheus holds of every belegsync series of ``job``."""
    samples: Samples = {}
    for sample in prom.result(f'{{job="{job}", __name__=~"belegsync_.*"}}'):
        labels = dict(sample["metric"])
        name = labels.pop("__name__")
        del labels["job"], labels["instance"]
        samples[(name, frozenset(labels.items()))] = float(sample["value"][1])
    return samples


def same(a: Samples, b: Samples) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


def add_accounts(pipeline: Pipeline) -> None:
    export = AccountChanges(
        gmi_api_key=GMI_EXPORT_KEY, billomat_id=EXPORT_TENANT, billomat_api_key=EXPORT_TENANT_KEY,
        require_approval=False, archive_after_transfer=False,
    )  # fmt: skip
    pipeline.accounts.add(Direction.EXPORT, EXPORT_ACCOUNT, export)
    imports = AccountChanges(
        gmi_api_key=GMI_IMPORT_KEY, billomat_id=IMPORT_TENANT, billomat_api_key=IMPORT_TENANT_KEY,
        document_kinds=["invoices"],
    )  # fmt: skip
    pipeline.accounts.add(Direction.IMPORT, IMPORT_ACCOUNT, imports)


def set_next_poll(pipeline: Pipeline, at: datetime) -> None:
    with pipeline.db.session() as session:
        session.execute(update(PollState).values(next_due_at=at))


def publish_malformed(pipeline: Pipeline) -> None:
    """Bytes no belegsync process wrote, routed to the import work queue as real messages are."""
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        broker.publish_work(b"{this is not json", Direction.IMPORT)
    finally:
        broker.close()


def parked_messages(pipeline: Pipeline) -> int:
    broker = bootstrap.broker(pipeline.settings)
    broker.connect()
    try:
        return next(
            d.messages for (_, role), d in broker.queue_depths().items() if role == "parked"
        )
    finally:
        broker.close()


def settled(pipeline: Pipeline) -> bool:
    exports = pipeline.states(EXPORT_ACCOUNT)
    imports = pipeline.states(IMPORT_ACCOUNT)
    return (
        sorted(exports.values()) == ["parked"] + ["synced"] * GOOD_EXPORTS
        and sorted(imports.values()) == ["synced"] * IMPORTS
    )


def seed(sims: Simulators) -> None:
    sims.gmi.add_account(GMI_EXPORT_KEY)
    sims.gmi.add_account(GMI_IMPORT_KEY)
    sims.billomat.add_tenant(
        EXPORT_TENANT, EXPORT_TENANT_KEY,
        limit=EXPORT_TENANT_LIMIT, window_seconds=EXPORT_TENANT_WINDOW,
    )  # fmt: skip
    sims.billomat.add_tenant(IMPORT_TENANT, IMPORT_TENANT_KEY, window_seconds=IMPORT_TENANT_WINDOW)
    for n in range(GOOD_EXPORTS):
        sims.gmi.seed_document(GMI_EXPORT_KEY, document_number=f"OBS-E{n}")
    sims.gmi.seed_document(
        GMI_EXPORT_KEY, document_number="OBS-BAD", content=NOT_A_PDF, filename="note.txt"
    )
    for n in range(IMPORTS):
        sims.billomat.add_document(IMPORT_TENANT, "invoices", number=f"OBS-I{n}")


def arm_faults(sims: Simulators) -> None:
    """The first export upload is answered 503, the first import poll 429."""
    sims.billomat.fail_next(
        1, status=503, methods=["POST"], path_contains=f"/{EXPORT_TENANT}/api/inbox-documents"
    )
    sims.billomat.fail_next(
        1, status=429, methods=["GET"], path_contains=f"/{IMPORT_TENANT}/api/invoices"
    )


PARKED_QUEUE = ("belegsync_queue_messages", frozenset({("queue", "parked"), ("role", "parked")}))


def final_samples(ports: dict[str, int]) -> dict[str, Samples]:
    """Each process's samples once the run is over and they stopped changing."""

    # The producer reads queue depths every 15 s: first a reading that shows every parked
    # message and empty work and delay queues, then two reads of both processes that agree.
    def settled_reading() -> bool:
        # A reading taken while the last message was still on its way would show it in a work
        # queue (quorum queues' counts also trail a moment): wait for one after the run.
        samples = own_samples(ports[PRODUCER_JOB])
        others = [
            value
            for (name, labels), value in samples.items()
            if name == "belegsync_queue_messages" and ("role", "parked") not in labels
        ]
        return samples.get(PARKED_QUEUE) == PARKED and bool(others) and not any(others)

    wait_until(settled_reading, "the producer's reading of the settled queues", 50)
    final: dict[str, Samples] = {}

    def stable() -> bool:
        now = {job: own_samples(port) for job, port in ports.items()}
        unchanged = all(same(now[job], final.get(job, {})) for job in JOBS)
        final.update(now)
        return unchanged

    wait_until(stable, "the processes' metrics to stop changing", 15)
    return final


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, broker_url: str
) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("pipeline-prometheus")
    shutil.copy(sqlite_template, tmp / "belegsync.db")
    with Simulators() as sims:
        seed(sims)
        settings = make_settings(
            f"sqlite:///{tmp / 'belegsync.db'}",
            tmp,
            broker_url=broker_url,
            gmi_base_url=sims.gmi_base_url,
            billomat_base_url=sims.billomat_url_template,
            retry_delays="1s,2s,3s",
        )
        pipeline = Pipeline(settings, sims)
        try:
            add_accounts(pipeline)
            # Nothing is due until Prometheus has seen every counter at its starting value.
            set_next_poll(pipeline, datetime.now(UTC) + timedelta(days=1))
            ports = {PRODUCER_JOB: free_port(), CONSUMER_JOB: free_port()}
            producer = pipeline.spawn(
                "produce", "--metrics-port", str(ports[PRODUCER_JOB]), log=tmp / "producer.log"
            )
            consumer = pipeline.spawn(
                "consume", "--metrics-port", str(ports[CONSUMER_JOB]), log=tmp / "consumer.log"
            )
            wait_until(lambda: all(ready(p) for p in ports.values()), "/readyz of both")
            targets = {job: [f"127.0.0.1:{port}"] for job, port in ports.items()}
            with run_prometheus(tmp / "prometheus", targets, rule_files=[ALERTS]) as prom:
                prom.wait_for_scrapes(JOBS, count=2)
                arm_faults(sims)
                publish_malformed(pipeline)
                started = time.time()
                set_next_poll(pipeline, datetime.fromtimestamp(started, UTC))

                # These waits add up to less than RUN_VARIABLES' $__rate_interval.
                wait_until(lambda: settled(pipeline), "every document's final state", 45)
                final = final_samples(ports)
                wait_until(
                    lambda: all(same(scraped_samples(prom, job), final[job]) for job in JOBS),
                    "Prometheus to scrape the final values",
                    15,
                )
                assert producer.poll() is None, "the producer exited"
                assert consumer.poll() is None, "the consumer exited"

                ledger = pipeline.ledger()
                with pipeline.db.session() as session:
                    polls = sum(session.scalars(select(PollState.polls)))
                yield Run(
                    prom=prom,
                    synced_exports=len(sims.billomat.inbox(EXPORT_TENANT)),
                    synced_imports=len(sims.gmi.documents(GMI_IMPORT_KEY)),
                    export_ledger=pipeline.states(EXPORT_ACCOUNT),
                    import_ledger=pipeline.states(IMPORT_ACCOUNT),
                    polls_in_database=polls,
                    gmi_requests=sum(sims.gmi.request_counts().values()),
                    billomat_requests={
                        tenant: sum(sims.billomat.request_counts(tenant).values())
                        for tenant in (EXPORT_TENANT, IMPORT_TENANT)
                    },
                    parked_in_broker=parked_messages(pipeline),
                    started=started,
                    document_ids={
                        str(value)
                        for row in ledger
                        for value in (row["source_id"], row["target_id"], row["document_number"])
                        if value
                    },
                )
        finally:
            for process in pipeline.processes:
                if process.poll() is None:
                    process.terminate()
            for process in pipeline.processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
            pipeline.close()


# ---------------------------------------------------------------------------------------------
# every query


def _ids(queries: list[Query]) -> list[str]:
    return [q.source for q in queries]


PANEL_QUERIES = dashboard_queries(variables=RUN_VARIABLES)
ALERT_QUERIES = alert_queries()


def test_every_panel_and_alert_has_an_expectation_for_this_run() -> None:
    panels = [q.source for q in PANEL_QUERIES]
    expectations = [*PANEL_DATA, *ZERO_PANELS, *EMPTY_PANELS]
    assert sorted(panels) == sorted(expectations)
    assert set(PANEL_DATA) >= API_STATUS_PANELS
    assert sorted(set(EMPTY_ALERTS) | set(ALERT_LABELS)) == sorted(q.source for q in ALERT_QUERIES)
    assert not set(EMPTY_ALERTS) & set(ALERT_LABELS)


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=_ids(PANEL_QUERIES))
def test_dashboard_query_is_valid_and_returns_data_unless_the_run_made_none(
    run: Run, query: Query
) -> None:
    answer = run.prom.query(query.expr)
    assert answer["status"] == "success", f"{query.expr}: {answer.get('error')}"
    result = answer["data"]["result"]
    if query.source in EMPTY_PANELS:
        assert result == [], f"{query.source} should be empty: {EMPTY_PANELS[query.source]}"
    else:
        assert result, f"{query.source} returned no data: {query.expr}"


def _number(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


@pytest.mark.parametrize(
    "query",
    [pytest.param(q, id=q.source) for q in PANEL_QUERIES if q.source not in EMPTY_PANELS],
)
def test_dashboard_panel_shows_the_values_the_run_produced(run: Run, query: Query) -> None:
    result = run.prom.result(query.expr)
    if query.source in ZERO_PANELS:
        numbers = [_number(s) for s in result]
        assert numbers, query.expr
        assert all(n == 0 for n in numbers), f"{query.source}: {ZERO_PANELS[query.source]}"
        return
    for wanted in PANEL_DATA[query.source]:
        matching = [s for s in result if wanted.items() <= s["metric"].items()]
        assert matching, f"{query.source}: no series {wanted} in {result}"
        for sample in matching:
            number = _number(sample)
            assert number != 0, f"{query.source}: {sample['metric']} is 0"
            assert not math.isnan(number), f"{query.source}: {sample['metric']} is NaN"


@pytest.mark.parametrize("query", ALERT_QUERIES, ids=_ids(ALERT_QUERIES))
def test_alert_expression_is_valid_and_holds_exactly_where_the_run_says(
    run: Run, query: Query
) -> None:
    answer = run.prom.query(query.expr)
    assert answer["status"] == "success", f"{query.expr}: {answer.get('error')}"
    labels = sorted(
        (sample["metric"] for sample in answer["data"]["result"]), key=lambda m: sorted(m.items())
    )
    expected = ALERT_LABELS.get(query.source, [])
    assert labels == sorted(expected, key=lambda m: sorted(m.items())), EMPTY_ALERTS.get(
        query.source, query.expr
    )


def test_rule_evaluator_makes_exactly_the_alerts_of_the_run_pending(run: Run) -> None:
    expected = {source.removeprefix("alert ") for source in ALERT_LABELS}
    states: dict[str, dict[str, Any]] = {}

    def evaluated() -> bool:
        states.update({r["name"]: r for r in run.prom.rules()})
        return all(states[name]["state"] == "pending" for name in expected)

    wait_until(evaluated, "the rule evaluator to catch up", 15)
    assert set(states) == {rule["alert"] for rule in alert_rules()}
    for name, rule in states.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
        assert rule["state"] == ("pending" if name in expected else "inactive"), name


# ---------------------------------------------------------------------------------------------
# the counters moved as the run says


def value(prom: PrometheusServer, expr: str) -> float:
    [sample] = prom.result(expr)
    return float(sample["value"][1])


def values(prom: PrometheusServer, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    """``expr``'s samples by the values of ``labels``, which must tell them apart."""
    found: dict[tuple[str, ...], float] = {}
    for sample in prom.result(expr):
        key = tuple(sample["metric"][label] for label in labels)
        assert key not in found, f"{expr}: several samples for {key}"
        found[key] = float(sample["value"][1])
    return found


P, C = PRODUCER_JOB, CONSUMER_JOB


def test_the_run_itself_went_as_planned(run: Run) -> None:
    assert run.synced_exports == GOOD_EXPORTS
    assert run.synced_imports == IMPORTS
    assert sorted(run.export_ledger.values()) == ["parked"] + ["synced"] * GOOD_EXPORTS
    assert sorted(run.import_ledger.values()) == ["synced"] * IMPORTS
    assert run.parked_in_broker == PARKED


def test_document_outcomes_match_what_landed_and_what_was_parked(run: Run) -> None:
    p = run.prom
    outcomes = values(
        p,
        "sum by (job, direction, outcome) (belegsync_documents_processed_total) > 0",
        "job", "direction", "outcome",
    )  # fmt: skip
    parked_exports = list(run.export_ledger.values()).count("parked")
    assert outcomes == {
        (C, "export", "synced"): run.synced_exports,
        (C, "export", "retried"): 1,  # the upload answered 503
        (C, "export", "parked"): parked_exports,  # the file Billomat refused
        (C, "import", "synced"): run.synced_imports,
    }
    parked = values(p, "belegsync_parked_total > 0", "job", "direction", "error_class")
    assert parked == {(C, "export", "permanent"): 1, (C, "import", "malformed"): 1}
    assert sum(parked.values()) == run.parked_in_broker
    retries = values(p, "belegsync_retries_total > 0", "job", "direction", "error_class")
    assert retries == {(C, "export", "transient"): 1}

    # Every outcome of a decodable message is timed; a landed one also has its latency.
    timed = values(p, "sum by (direction) (belegsync_processing_seconds_count)", "direction")
    # (export: the landed ones, the attempt answered 503 and the parked one)
    assert timed == {("export",): run.synced_exports + 2, ("import",): run.synced_imports}
    latency = values(p, "sum by (direction) (belegsync_sync_latency_seconds_count)", "direction")
    assert latency == {("export",): run.synced_exports, ("import",): run.synced_imports}
    assert value(p, "sum(belegsync_documents_in_progress)") == 0


def test_polls_and_detections_match_the_ledger(run: Run) -> None:
    p = run.prom
    polls = values(p, "belegsync_polls_total > 0", "job", "direction", "result")
    assert polls == {
        (P, "export", "ok"): 1,
        (P, "import", "rate_limited"): 1,  # the list call answered 429
        (P, "import", "ok"): 1,
    }
    assert sum(polls.values()) == run.polls_in_database
    assert value(p, "sum(belegsync_poll_seconds_count)") == run.polls_in_database
    detected = values(p, "belegsync_documents_detected_total > 0", "job", "direction")
    assert detected == {
        (P, "export"): len(run.export_ledger),
        (P, "import"): len(run.import_ledger),
    }
    last_success = values(p, "belegsync_last_successful_poll_timestamp_seconds", "job", "account")
    assert set(last_success) == {(P, EXPORT_ACCOUNT), (P, IMPORT_ACCOUNT)}
    for stamp in last_success.values():
        assert run.started <= stamp <= time.time()


def test_api_calls_match_what_the_simulators_received(run: Run) -> None:
    p = run.prom
    billomat_calls = sum(run.billomat_requests.values())
    calls = values(
        p, "sum by (api, status_class) (belegsync_api_requests_total) > 0", "api", "status_class"
    )
    assert calls == {
        ("gmi", "2xx"): run.gmi_requests,
        ("billomat", "2xx"): billomat_calls - 3,
        ("billomat", "4xx"): 2,  # the refused file (400) and the refused poll (429)
        ("billomat", "5xx"): 1,  # the upload answered 503
    }
    timed = values(p, "sum by (api) (belegsync_api_request_seconds_count)", "api")
    assert timed == {("gmi",): run.gmi_requests, ("billomat",): billomat_calls}
    rate_limited = values(p, "belegsync_rate_limited_total > 0", "job", "api")
    assert rate_limited == {(P, "billomat"): 1}


def test_quota_gauge_is_what_billomat_said_last(run: Run) -> None:
    p = run.prom
    quota = values(p, 'belegsync_api_quota_remaining{api="billomat"}', "job", "account")
    assert set(quota) == {
        (P, EXPORT_ACCOUNT),  # the first poll read the inbox once for earlier uploads
        (C, EXPORT_ACCOUNT),
        (P, IMPORT_ACCOUNT),
        (C, IMPORT_ACCOUNT),
    }
    # After the producer's one look at the inbox (before anything was published), only the
    # consumer calls the export tenant, one call after another, so the last answer it read is
    # the tenant's remaining quota now. The 503 was injected before the tenant's quota counted
    # the call.
    counted = run.billomat_requests[EXPORT_TENANT] - 1
    assert quota[(C, EXPORT_ACCOUNT)] == EXPORT_TENANT_LIMIT - counted
    assert not p.result('belegsync_api_quota_remaining{api="gmi"}')  # GMI sends no quota


def test_queue_gauges_show_the_parked_messages_and_empty_work_queues(run: Run) -> None:
    p = run.prom
    messages = values(p, "belegsync_queue_messages", "job", "queue", "role")
    assert messages == {
        (P, "export", "work"): 0,
        (P, "import", "work"): 0,
        (P, "retry.1s", "retry"): 0,
        (P, "retry.2s", "retry"): 0,
        (P, "retry.3s", "retry"): 0,
        (P, "parked", "parked"): run.parked_in_broker,
    }
    consumers = values(p, 'belegsync_queue_consumers{role="work"}', "job", "queue")
    assert consumers == {(P, "export"): 1, (P, "import"): 1}


def test_each_job_reports_its_own_role(run: Run) -> None:
    roles = {
        (s["metric"]["job"], s["metric"]["role"]) for s in run.prom.result("belegsync_info == 1")
    }
    assert roles == {(PRODUCER_JOB, "producer"), (CONSUMER_JOB, "consumer")}


# ---------------------------------------------------------------------------------------------
# nothing secret or per-document in a label

_SEGMENTS = re.compile(r"[/\s?&=:,]+")


def test_no_series_carries_an_api_key_or_a_document_id(run: Run) -> None:
    series = run.prom.get("/api/v1/series", {"match[]": '{job=~"belegsync-.*"}'})["data"]
    assert series
    assert run.document_ids
    for labels in series:
        for name, label_value in labels.items():
            for secret in SECRETS:
                assert secret not in label_value, f"{labels['__name__']} {name}: an API key"
            if name in ("le", "instance"):  # bucket bounds; Prometheus's own host:port
                continue
            segments = set(_SEGMENTS.split(label_value))
            leaked = segments & run.document_ids
            assert not leaked, f"{labels['__name__']} {name}={label_value!r}: ids {leaked}"
