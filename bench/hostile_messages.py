"""What hostile messages cost: decoding at the edge, and draining them into the parking queue.

Part 1, no services: CPU time of ``shared.messages.decode_message`` per body, median over
``--repeat`` rounds of a loop long enough to take ~0.2 s — a real message (accepted), the
largest accepted size (64 KiB), and what is refused: random bytes, a wrong-typed field, JSON
nested 100,000 levels (200 KB), deep but small (60 KB), a 5 MB body.  For scale, ``json.loads``
of the real message alone.

Part 2, RabbitMQ and SQLite: ``--messages`` undecodable or foreign messages (a mix: random
bytes, out-of-range ids, rows of another account, empty bodies) published to the export work
queue, then one in-process ``Consumer`` with prefetch 1 and 10 parks them.  Timed: from the
consumer's start until the parking queue holds them all (polled every 20 ms); messages parked
per second, each one a confirmed publish plus an ack.

    .venv/bin/python -m bench.hostile_messages [--messages 500] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

from app import bootstrap
from bench.harness import (
    MachineNote,
    Run,
    ScratchDatabases,
    Spread,
    common_arguments,
    emit_json,
    load_average,
    print_table,
    progress,
    require_services,
    simulators,
)
from shared.domain import Direction
from shared.messages import MAX_BODY_BYTES, MalformedMessage, SyncMessage, decode_message


def real_message() -> bytes:
    return SyncMessage(
        direction=Direction.EXPORT, account_id=1, account="acme-export", document_id=42,
        source_kind="documents", source_id="1234567", detected_at=datetime.now(UTC),
        document_type="INCOMING_INVOICE", document_number="RE-2026-0042",
        document_date=datetime.now(UTC).date(),
        details={"total_net": "100.00", "total_gross": "119.00", "currency_code": "EUR"},
    ).to_json()  # fmt: skip


def bodies() -> dict[str, bytes]:
    real = real_message()
    data = json.loads(real)
    padded = dict(data, padding="")
    padded["padding"] = "x" * (MAX_BODY_BYTES - len(json.dumps(padded).encode()))
    noise = random.Random(16)
    return {
        "real message (accepted)": real,
        "64 KiB, largest accepted": json.dumps(padded).encode(),
        "random bytes, 3 KB": noise.randbytes(3000),
        "document_id = 10**30": json.dumps(dict(data, document_id=10**30)).encode(),
        "100,000 levels deep": b"[" * 100_000 + b"]" * 100_000,
        "deep but small (60 KB)": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "5 MB body": noise.randbytes(5 * 1024 * 1024),
    }


def time_per_call(action: Any, repeat: int) -> Spread:
    """Microseconds per call: loops of ~0.2 s, ``repeat`` of them."""
    action()
    loops = 1
    while True:
        started = time.process_time()
        for _ in range(loops):
            action()
        spent = time.process_time() - started
        if spent >= 0.2:
            break
        loops *= 4
    rounds = [spent / loops]
    for _ in range(repeat - 1):
        started = time.process_time()
        for _ in range(loops):
            action()
        rounds.append((time.process_time() - started) / loops)
    return Spread.of([r * 1e6 for r in rounds])


def decode_costs(repeat: int) -> list[dict[str, Any]]:
    results = []
    for label, body in bodies().items():
        progress(f"decode: {label}")

        def decode(body: bytes = body) -> None:
            with contextlib.suppress(MalformedMessage):
                decode_message(body)

        results.append({"body": label, "bytes": len(body), "us": time_per_call(decode, repeat)})
    real = real_message()
    results.append(
        {
            "body": "json.loads of the real message",
            "bytes": len(real),
            "us": time_per_call(lambda: json.loads(real), repeat),
        }
    )
    return results


def hostile_mix(count: int, account_id: int, foreign_row: int) -> list[bytes]:
    noise = random.Random(7)
    real = json.loads(real_message())
    kinds = [
        lambda: noise.randbytes(noise.randint(1, 3000)),
        lambda: json.dumps(dict(real, account_id=account_id, document_id=10**30)).encode(),
        lambda: json.dumps(dict(real, account_id=account_id + 1, document_id=foreign_row)).encode(),
        lambda: b"",
    ]
    return [kinds[n % len(kinds)]() for n in range(count)]


def parking_rate(messages: int, repeat: int) -> list[dict[str, Any]]:
    results = []
    with ScratchDatabases("sqlite") as databases, simulators() as sims:
        for prefetch in (1, 10):
            for attempt in range(repeat):
                progress(f"park: {messages} messages, prefetch {prefetch}, run {attempt + 1}")
                with Run(databases, sims) as run:
                    account_id = run.add_export()
                    run.add_import()
                    broker = bootstrap.broker(run.settings)
                    broker.connect(retries=3)
                    try:
                        for body in hostile_mix(messages, account_id, foreign_row=1):
                            broker.publish_work(body, Direction.EXPORT)
                        consumer = bootstrap.build_consumer(run.settings, run.db, run.box, None)
                        consumer.broker.connect(retries=3)
                        thread = threading.Thread(
                            target=consumer.run, args=([Direction.EXPORT],),
                            kwargs={"prefetch": prefetch}, daemon=True,
                        )  # fmt: skip
                        load = load_average()
                        started = time.perf_counter()
                        thread.start()
                        parked = 0
                        while parked < messages and time.perf_counter() - started < 600:
                            time.sleep(0.02)
                            depths = broker.queue_depths()
                            parked = depths[("parked", "parked")].messages
                        seconds = time.perf_counter() - started
                        consumer.stop.set()
                        thread.join(30)
                        consumer.broker.close()
                        consumer.clients.close()
                        consumer.locks.close()
                    finally:
                        broker.close()
                results.append(
                    {
                        "prefetch": prefetch,
                        "messages": messages,
                        "parked": parked,
                        "seconds": seconds,
                        "per_s": parked / seconds,
                        "load_at_start": load,
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Decoding cost at the edge, and parking rate of hostile messages.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=500, help="hostile messages to park")
    common_arguments(parser, repeat=3)
    args = parser.parse_args()

    note = MachineNote()
    decode = decode_costs(args.repeat)
    require_services(["sqlite"])
    park = parking_rate(args.messages, args.repeat)
    note.finish()
    if args.json:
        emit_json(
            "hostile_messages",
            note,
            vars(args),
            {
                "decode": [dict(r, us=vars(r["us"])) for r in decode],
                "park": park,
            },
        )
        return
    print(f"# hostile messages, {args.repeat} run(s) each: median (min–max)")
    print(f"# machine: {note.describe()}")
    print_table(
        "decode_message: CPU µs per body",
        ["body", "bytes", "µs"],
        [[r["body"], f"{r['bytes']:,}", r["us"].show("{:.1f}")] for r in decode],
    )
    rows = []
    for prefetch in (1, 10):
        runs = [r for r in park if r["prefetch"] == prefetch]
        rows.append(
            [
                str(prefetch),
                str(args.messages),
                Spread.of([r["per_s"] for r in runs]).show("{:.0f}"),
                Spread.of([r["seconds"] for r in runs]).show("{:.2f}"),
                Spread.of([r["load_at_start"] for r in runs]).show("{:.2f}"),
            ]
        )
    print_table(
        "one consumer parking hostile messages (SQLite ledger, confirmed publish + ack each)",
        ["prefetch", "messages", "parked/s", "seconds", "load(1m)"],
        rows,
    )


if __name__ == "__main__":
    main()
