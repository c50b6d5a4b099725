"""The metrics a process exposes: names, labels, initial series, and what must never leak."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics as metrics_module
from shared.metrics import (
    DIRECTIONS,
    ERROR_CLASSES,
    OUTCOMES,
    POLL_RESULTS,
    Metrics,
    normalise_endpoint,
    queue_role,
    status_class,
)
from tests.deploy.prom import REPO, require_tool
from tests.deploy.recorded import DOCUMENT_ID, DOCUMENT_UID, FAKE_API_KEY

# name → (type, label names) exactly as the brief specifies.
EXPECTED_FAMILIES = {
    "belegsync_documents_processed": ("counter", {"direction", "outcome"}),
    "belegsync_processing_seconds": ("histogram", {"direction"}),
    "belegsync_documents_in_progress": ("gauge", {"direction"}),
    "belegsync_sync_latency_seconds": ("histogram", {"direction"}),
    "belegsync_retries": ("counter", {"direction", "error_class"}),
    "belegsync_parked": ("counter", {"direction", "error_class"}),
    "belegsync_polls": ("counter", {"direction", "result"}),
    "belegsync_poll_seconds": ("histogram", {"direction"}),
    "belegsync_documents_detected": ("counter", {"direction"}),
    "belegsync_last_successful_poll_timestamp_seconds": ("gauge", {"account"}),
    "belegsync_poll_interval_seconds": ("gauge", {"account"}),
    "belegsync_api_requests": ("counter", {"api", "endpoint", "status_class"}),
    "belegsync_api_request_seconds": ("histogram", {"api"}),
    "belegsync_api_quota_remaining": ("gauge", {"api", "account"}),
    "belegsync_rate_limited": ("counter", {"api"}),
    "belegsync_backlog_documents": ("gauge", {"account"}),
    "belegsync_backlog_eta_seconds": ("gauge", {"account"}),
    "belegsync_queue_messages": ("gauge", {"queue", "role"}),
    "belegsync_queue_consumers": ("gauge", {"queue", "role"}),
    "belegsync_info": ("gauge", {"role", "version"}),
}


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(text) if n == name and lab == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_exposition_has_exactly_the_specified_families_types_and_labels(
    recorded_metrics: Metrics,
) -> None:
    families = {
        f.name: f
        for f in text_string_to_metric_families(exposition(recorded_metrics))
        if not f.name.endswith("_created")
    }
    assert set(families) == set(EXPECTED_FAMILIES)
    for name, (kind, labels) in EXPECTED_FAMILIES.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


def test_counters_end_in_total_and_histograms_measure_seconds(recorded_metrics: Metrics) -> None:
    for family in text_string_to_metric_families(exposition(recorded_metrics)):
        if family.type == "counter":
            for sample in family.samples:
                assert sample.name in (f"{family.name}_total", f"{family.name}_created"), sample
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_known_label_combinations_read_zero_before_anything_happens(metrics: Metrics) -> None:
    text = exposition(metrics)
    for direction in DIRECTIONS:
        for outcome in OUTCOMES:
            assert (
                value(
                    text,
                    "belegsync_documents_processed_total",
                    direction=direction,
                    outcome=outcome,
                )
                == 0
            )
        for error_class in ERROR_CLASSES:
            assert (
                value(text, "belegsync_retries_total", direction=direction, error_class=error_class)
                == 0
            )
            assert (
                value(text, "belegsync_parked_total", direction=direction, error_class=error_class)
                == 0
            )
        for result in POLL_RESULTS:
            assert value(text, "belegsync_polls_total", direction=direction, result=result) == 0
        assert value(text, "belegsync_sync_latency_seconds_count", direction=direction) == 0
        assert value(text, "belegsync_documents_detected_total", direction=direction) == 0
    for api in ("gmi", "billomat"):
        assert value(text, "belegsync_rate_limited_total", api=api) == 0
    assert value(text, "belegsync_info", role="consumer", version="1.2.3") == 1


def test_queue_gauges_appear_only_once_a_depth_was_measured(metrics: Metrics) -> None:
    # A 0 from a process that never asked the broker would hide a full queue.
    assert "belegsync_queue_messages{" not in exposition(metrics)


def test_parked_and_retried_outcomes_count_by_error_class_too(metrics: Metrics) -> None:
    metrics.observe_processed("import", "parked", 0.1, error_class="malformed")
    metrics.observe_processed("import", "retried", 0.1, error_class="rate_limited")
    metrics.observe_processed("import", "retried", 0.1, error_class="rate_limited")
    text = exposition(metrics)
    assert value(text, "belegsync_parked_total", direction="import", error_class="malformed") == 1
    assert (
        value(text, "belegsync_retries_total", direction="import", error_class="rate_limited") == 2
    )
    assert (
        value(text, "belegsync_documents_processed_total", direction="import", outcome="retried")
        == 2
    )
    assert value(text, "belegsync_processing_seconds_count", direction="import") == 3


def test_sync_latency_is_recorded_in_day_scale_buckets(metrics: Metrics) -> None:
    metrics.observe_processed("export", "synced", 0.5, sync_latency_s=3 * 3600)
    text = exposition(metrics)
    assert value(text, "belegsync_sync_latency_seconds_bucket", direction="export", le="1.0") == 0
    assert (
        value(text, "belegsync_sync_latency_seconds_bucket", direction="export", le="14400.0") == 1
    )
    assert (
        value(text, "belegsync_sync_latency_seconds_bucket", direction="export", le="86400.0") == 1
    )


def test_in_progress_gauge_returns_to_zero_even_when_handling_fails(metrics: Metrics) -> None:
    seen_inside: list[float] = []

    def handle() -> None:
        with metrics.in_progress("export"):
            text = exposition(metrics)
            seen_inside.append(value(text, "belegsync_documents_in_progress", direction="export"))
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        handle()
    assert seen_inside == [1]
    assert value(exposition(metrics), "belegsync_documents_in_progress", direction="export") == 0


def test_successful_poll_stamps_the_account_and_counts_detected_documents(metrics: Metrics) -> None:
    metrics.observe_poll(
        "import", "ok", 1.0, account="acme", detected=4, now=1_700_000_000.0, interval_s=600
    )
    metrics.observe_poll("import", "error", 1.0, account="broken")
    text = exposition(metrics)
    assert (
        value(text, "belegsync_last_successful_poll_timestamp_seconds", account="acme")
        == 1_700_000_000
    )
    assert 'account="broken"' not in text  # a failed poll is no success
    assert value(text, "belegsync_poll_interval_seconds", account="acme") == 600
    assert value(text, "belegsync_documents_detected_total", direction="import") == 4
    assert value(text, "belegsync_polls_total", direction="import", result="error") == 1


def test_forgetting_a_removed_account_drops_its_series(recorded_metrics: Metrics) -> None:
    recorded_metrics.forget_account("export-acme")
    recorded_metrics.forget_account("gmi-account")
    recorded_metrics.forget_account("never-seen")
    text = exposition(recorded_metrics)
    assert 'account="export-acme"' not in text
    assert 'account="gmi-account"' not in text
    assert 'account="import-acme"' in text


def test_queue_depths_are_labelled_by_name_without_prefix_and_role(
    recorded_metrics: Metrics,
) -> None:
    text = exposition(recorded_metrics)
    assert value(text, "belegsync_queue_messages", queue="export", role="work") == 7
    assert value(text, "belegsync_queue_messages", queue="retry.1", role="retry") == 3
    assert value(text, "belegsync_queue_messages", queue="parked", role="parked") == 2
    assert value(text, "belegsync_queue_consumers", queue="import", role="work") == 2
    assert "belegsync.export" not in text


@pytest.mark.parametrize(
    ("queue", "role"),
    [
        ("export", "work"),
        ("import", "work"),
        ("retry.1", "retry"),
        ("retry.12", "retry"),
        ("export.retry.3", "retry"),
        ("parked", "parked"),
        ("export.parked", "parked"),
    ],
)
def test_queue_role_follows_the_queue_name(queue: str, role: str) -> None:
    assert queue_role(queue) == role


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "2xx"),
        (201, "2xx"),
        (304, "3xx"),
        (404, "4xx"),
        (429, "4xx"),
        (503, "5xx"),
        (None, "error"),
        (99, "error"),
        (600, "error"),
    ],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


@pytest.mark.parametrize(
    ("endpoint", "template"),
    [
        ("GET /documents/{uid}", "GET /documents/{uid}"),
        ("GET /documents/4711", "GET /documents/{id}"),
        ("get /api/invoices/12/pdf?format=pdf", "GET /api/invoices/{id}/pdf"),
        (f"PUT /documents/{DOCUMENT_UID}", "PUT /documents/{id}"),
        ("POST /api/inbox-documents", "POST /api/inbox-documents"),
        ("GET /companies/a94f0c2b1d7e", "GET /companies/{id}"),
        ("GET /accounts/v3/documents", "GET /accounts/v3/documents"),
    ],
)
def test_endpoint_label_is_a_template_without_ids_or_query(endpoint: str, template: str) -> None:
    assert normalise_endpoint(endpoint) == template


def test_no_api_key_and_no_document_id_appears_in_the_exposition(recorded_metrics: Metrics) -> None:
    text = exposition(recorded_metrics)
    assert FAKE_API_KEY not in text
    assert FAKE_API_KEY[-8:] not in text
    assert DOCUMENT_ID not in text
    assert DOCUMENT_UID not in text
    # No label value other than bucket bounds and the version looks like an id.
    for name, labels, _ in samples(text):
        for key, label_value in labels.items():
            if key in ("le", "version"):
                continue
            assert not re.search(r"\d{3,}|[0-9a-f]{8}-", label_value), (name, key, label_value)


def test_unknown_label_values_are_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="direction"):
        metrics.observe_processed("sideways", "synced", 1.0)
    with pytest.raises(ValueError, match="outcome"):
        metrics.observe_processed("export", "lost", 1.0)
    with pytest.raises(ValueError, match="error_class"):
        metrics.observe_processed("export", "parked", 1.0)
    with pytest.raises(ValueError, match="result"):
        metrics.observe_poll("export", "maybe", 1.0, account="acme")
    with pytest.raises(ValueError, match="role"):
        Metrics(CollectorRegistry(), role="worker")


def test_api_hooks_never_raise_on_odd_input(metrics: Metrics) -> None:
    hooks = metrics.api_hooks("acme")
    hooks.on_response("GMI API!", "", None, -1.0)
    hooks.on_rate_limited("Weird Name")
    text = exposition(metrics)
    assert value(text, "belegsync_rate_limited_total", api="other") == 1


def test_api_hooks_match_the_shared_http_protocol(metrics: Metrics) -> None:
    from shared.http import ApiHooks

    hooks = metrics.api_hooks("acme")
    for name in ("on_response", "on_quota", "on_rate_limited"):
        expected = inspect.signature(getattr(ApiHooks, name))
        actual = inspect.signature(getattr(type(hooks), name))
        assert list(actual.parameters) == list(expected.parameters), name


def test_two_metrics_objects_in_one_process_do_not_collide() -> None:
    first = Metrics(role="producer")
    second = Metrics(role="consumer")
    first.observe_detected("export", 2)
    assert value(exposition(second), "belegsync_documents_detected_total", direction="export") == 0


def test_importing_the_modules_registers_nothing_globally() -> None:
    code = (
        "from prometheus_client import REGISTRY\n"
        "before = {m.name for m in REGISTRY.collect()}\n"
        "import shared.metrics, shared.health, shared.logs\n"
        "after = {m.name for m in REGISTRY.collect()}\n"
        "print(sorted(after - before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]"
    assert metrics_module.__doc__


def test_promtool_accepts_the_exposition(recorded_metrics: Metrics) -> None:
    promtool = require_tool("promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition(recorded_metrics),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unknown_eta_has_no_series_and_a_forgotten_account_no_backlog() -> None:
    metrics = Metrics(CollectorRegistry(), role="producer")
    metrics.set_backlog("acme", 40, 1200.0)
    text = exposition(metrics)
    assert value(text, "belegsync_backlog_documents", account="acme") == 40
    assert value(text, "belegsync_backlog_eta_seconds", account="acme") == 1200
    metrics.set_backlog("acme", 40, None)  # e.g. paused: when it is done is unknown
    text = exposition(metrics)
    assert value(text, "belegsync_backlog_documents", account="acme") == 40
    assert not [s for s in samples(text) if s[0] == "belegsync_backlog_eta_seconds"]
    metrics.forget_account("acme")
    assert not [s for s in samples(exposition(metrics)) if s[0].startswith("belegsync_backlog")]
