"""What the pipeline would record: every metric observed at least once, with ids and a key."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from shared.http import Quota
from shared.metrics import DIRECTIONS, Metrics, QueueDepth

FAKE_API_KEY = "gmi_live_6c1f0e3b9a7d4c2e8f5a"
DOCUMENT_ID = "418276"
DOCUMENT_UID = "0b1e7f0c-4d2a-4c4e-9a55-2f1d7e3c9b10"


def record_everything(metrics: Metrics) -> None:
    """Observe every metric at least once, the way the pipeline would."""
    for direction in DIRECTIONS:
        metrics.observe_processed(direction, "synced", 1.5, sync_latency_s=42.0)
        metrics.observe_processed(direction, "duplicate_avoided", 0.2)
        metrics.observe_processed(direction, "retried", 3.0, error_class="transient")
        metrics.observe_processed(direction, "parked", 0.4, error_class="permanent")
        metrics.observe_poll(
            direction, "ok", 0.8, account=f"{direction}-acme", detected=3, interval_s=900
        )
        metrics.observe_poll(
            direction, "rate_limited", 0.1, account=f"{direction}-acme", interval_s=900
        )
        metrics.observe_detected(direction, 1)
        with metrics.in_progress(direction):
            pass
    # An account whose last success lies 4,000 s back: the "stale polls" panel shows it.
    metrics.observe_poll(
        "export", "ok", 0.5, account="stale-gmbh", now=time.time() - 4000, interval_s=900
    )
    for api in ("gmi", "billomat"):
        hooks = metrics.api_hooks(f"{api}-account")
        hooks.on_response(api, f"GET /documents/{DOCUMENT_ID}?api_key={FAKE_API_KEY}", 200, 0.3)
        hooks.on_response(api, f"POST /documents/{DOCUMENT_UID}", 503, 1.2)
        hooks.on_response(api, "POST /api/inbox-documents", 429, 0.1)
        hooks.on_response(api, "GET /documents", None, 5.0)
        hooks.on_quota(api, Quota(remaining=250, reset_at=datetime.now(UTC) + timedelta(minutes=9)))
        hooks.on_rate_limited(api)
    # One account draining a held backlog, one whose ETA is unknown (no series for the ETA).
    metrics.set_backlog("export-acme", 1840, 5520.0)
    metrics.set_backlog("import-acme", 12, None)
    metrics.set_queue_depths(
        {
            "belegsync.export": QueueDepth(messages=7, consumers=2),
            "belegsync.import": QueueDepth(messages=0, consumers=2),
            "belegsync.retry.1": QueueDepth(messages=3, consumers=0),
            "belegsync.retry.2": QueueDepth(messages=1, consumers=0),
            "belegsync.parked": QueueDepth(messages=2, consumers=0),
        },
        prefix="belegsync",
    )
