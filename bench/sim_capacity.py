"""Simulator capacity: requests per second the GMI and Billomat simulators sustain.

The simulators run in this process, as they do in the end-to-end benchmarks and the tests; the
load comes from P worker processes (default 1 and 2), each sending requests one after another
on a keep-alive ``requests.Session`` for a few seconds. Scenarios:

- ``GMI GET document``: ``GET /documents/{uid}?includeDocument=false`` (metadata, ~1 KB).
- ``Billomat GET invoice``: ``GET /api/invoices/{id}`` as JSON (~1 KB).
- ``GMI upload 3 MB``: ``POST /documents`` with a 3 MB PDF (4 MB of base64 JSON).
- ``Billomat upload 3 MB``: ``POST /api/inbox-documents`` with a 3 MB PDF; the answer echoes
  the file back, as Billomat's does.

Each upload is deleted again right away (not timed) so memory stays flat; only the timed
requests count. The workers are started once per row and run ``--repeat`` windows one after
another. Reported: requests/s over all workers, latency p50/p95, and the simulator's CPU per
timed request (this process's CPU time over the window / timed requests; for uploads the
delete that follows each is included) — compare that with the consumers' CPU per document in
``export_throughput``/``import_throughput``.

    .venv/bin/python -m bench.sim_capacity [--workers 1 2] [--seconds 3] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import statistics
import time
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event
from typing import Any

import requests

from bench.harness import (
    BILLOMAT_ID,
    BILLOMAT_KEY,
    GMI_KEY,
    MachineNote,
    Spread,
    common_arguments,
    emit_json,
    load_average,
    own_cpu_seconds,
    percentile,
    print_table,
    progress,
    simulators,
)
from simulators import make_pdf

SCENARIOS = ("GMI GET document", "Billomat GET invoice", "GMI upload 3 MB", "Billomat upload 3 MB")
UPLOAD_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class Job:
    scenario: str
    worker: int
    seconds: float
    gmi_base: str
    billomat_base: str
    gmi_uid: int
    invoice_id: int


def _upload_body(job: Job) -> str:
    pdf = make_pdf(f"capacity worker {job.worker}", min_size=UPLOAD_BYTES)
    return base64.b64encode(pdf).decode("ascii")


def work(job: Job, ready: Any, windows: list[Event], results: Any) -> None:
    """One load-generating process: for each window, requests back to back until time is up."""
    session = requests.Session()
    gmi_headers = {"X-API-KEY": GMI_KEY, "Content-Type": "application/json"}
    bm_headers = {
        "X-BillomatApiKey": BILLOMAT_KEY,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    content = _upload_body(job) if "upload" in job.scenario else ""

    def gmi_get() -> None:
        r = session.get(
            f"{job.gmi_base}/documents/{job.gmi_uid}",
            params={"includeDocument": "false"},
            headers=gmi_headers,
            timeout=30,
        )
        r.raise_for_status()

    def billomat_get() -> None:
        r = session.get(
            f"{job.billomat_base}/invoices/{job.invoice_id}", headers=bm_headers, timeout=30
        )
        r.raise_for_status()

    def gmi_upload() -> tuple[str, dict[str, str]]:
        r = session.post(
            f"{job.gmi_base}/documents",
            json={
                "fileName": f"capacity-{job.worker}.pdf",
                "fileContent": content,
                "documentType": "INCOMING_INVOICE",
            },
            headers=gmi_headers,
            timeout=60,
        )
        r.raise_for_status()
        return f"{job.gmi_base}/documents/{r.json()['documentUid']}", gmi_headers

    def billomat_upload() -> tuple[str, dict[str, str]]:
        r = session.post(
            f"{job.billomat_base}/inbox-documents",
            json={"inbox-document": {"base64file": content, "filename": "capacity.pdf"}},
            headers=bm_headers,
            timeout=60,
        )
        r.raise_for_status()
        return f"{job.billomat_base}/inbox-documents/{r.json()['inbox-document']['id']}", (
            bm_headers
        )

    timed_calls = {
        "GMI GET document": gmi_get,
        "Billomat GET invoice": billomat_get,
        "GMI upload 3 MB": gmi_upload,
        "Billomat upload 3 MB": billomat_upload,
    }
    call = timed_calls[job.scenario]

    def once() -> float:
        started = time.perf_counter()
        created = call()
        seconds = time.perf_counter() - started
        if created is not None:
            url, headers = created
            session.delete(url, headers=headers, timeout=30).raise_for_status()
        return seconds

    try:
        once()  # warm the connection; not counted
        for go in windows:
            latencies: list[float] = []
            ready.put(job.worker)
            go.wait()
            end = time.perf_counter() + job.seconds
            while time.perf_counter() < end:
                latencies.append(once())
            results.put(latencies)
    except Exception as e:  # the parent reports it and stops
        ready.put(job.worker)
        results.put(f"worker {job.worker}: {e!r}")
    finally:
        session.close()


def run_windows(scenario: str, workers: int, seconds: float, repeat: int) -> list[dict[str, Any]]:
    """Start the workers once, then measure ``repeat`` load windows one after another."""
    rows: list[dict[str, Any]] = []
    with simulators() as sims:
        uid = sims.gmi.seed_document(GMI_KEY, document_number="CAP-1")
        invoice = sims.billomat.add_document(BILLOMAT_ID, "invoices", number="CAP-1")
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        windows = [ctx.Event() for _ in range(repeat)]
        jobs = [
            Job(
                scenario,
                i,
                seconds,
                sims.gmi_base_url,
                sims.billomat.api_url(BILLOMAT_ID),
                uid,
                invoice,
            )
            for i in range(workers)
        ]
        processes = [ctx.Process(target=work, args=(job, ready, windows, results)) for job in jobs]
        for process in processes:
            process.start()
        try:
            for attempt, go in enumerate(windows):
                progress(f"capacity: {scenario}, {workers} worker(s), run {attempt + 1}/{repeat}")
                for _ in processes:
                    ready.get(timeout=60)
                load = load_average()
                cpu_before = own_cpu_seconds()
                go.set()
                latencies: list[float] = []
                for _ in processes:
                    answer = results.get(timeout=seconds + 120)
                    if isinstance(answer, str):
                        raise RuntimeError(answer)
                    latencies.extend(answer)
                cpu = own_cpu_seconds() - cpu_before
                count = len(latencies)
                rows.append(
                    {
                        "scenario": scenario,
                        "workers": workers,
                        "requests": count,
                        "per_s": count / seconds,
                        "p50_ms": percentile(latencies, 50) * 1000,
                        "p95_ms": percentile(latencies, 95) * 1000,
                        "sim_cpu_ms_per_request": cpu * 1000 / count if count else float("nan"),
                        "load_at_start": load,
                    }
                )
        finally:
            for process in processes:
                process.join(30)
                if process.is_alive():
                    process.kill()
                    process.join(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Requests per second the simulators sustain.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="client processes")
    parser.add_argument("--seconds", type=float, default=3.0, help="load window per run")
    parser.add_argument(
        "--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), metavar="SCENARIO"
    )
    common_arguments(parser, repeat=3)
    args = parser.parse_args()

    note = MachineNote()
    results: list[dict[str, Any]] = []
    for scenario in args.scenarios:
        for workers in args.workers:
            results.extend(run_windows(scenario, workers, args.seconds, args.repeat))
    note.finish()

    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["workers"]), []).append(r)
    if args.json:
        summary = [
            {
                "scenario": scenario,
                "workers": workers,
                "per_s": asdict(Spread.of([r["per_s"] for r in runs])),
                "p95_ms": statistics.median(r["p95_ms"] for r in runs),
                "sim_cpu_ms_per_request": statistics.median(
                    r["sim_cpu_ms_per_request"] for r in runs
                ),
            }
            for (scenario, workers), runs in groups.items()
        ]
        emit_json("sim_capacity", note, vars(args), {"summary": summary, "runs": results})
        return

    print(f"# simulator capacity, {args.repeat} run(s) of {args.seconds:.0f} s per row")
    print(f"# machine: {note.describe()}")
    print_table(
        "requests/s: median (min–max); latency and CPU: median of runs",
        [
            "scenario",
            "workers",
            "requests/s",
            "MB/s in",
            "p50 ms",
            "p95 ms",
            "sim CPU ms/req",
            "load(1m)",
        ],
        [
            [
                scenario,
                str(workers),
                Spread.of([r["per_s"] for r in runs]).show("{:.0f}"),
                f"{statistics.median(r['per_s'] for r in runs) * UPLOAD_BYTES / 1e6:.0f}"
                if "upload" in scenario
                else "-",
                f"{statistics.median(r['p50_ms'] for r in runs):.1f}",
                f"{statistics.median(r['p95_ms'] for r in runs):.1f}",
                f"{statistics.median(r['sim_cpu_ms_per_request'] for r in runs):.2f}",
                Spread.of([r["load_at_start"] for r in runs]).show("{:.2f}"),
            ]
            for (scenario, workers), runs in groups.items()
        ],
    )


if __name__ == "__main__":
    main()
