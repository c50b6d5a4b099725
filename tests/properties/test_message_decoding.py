"""The bus's edge under generated input: bodies and headers of any shape decode or are refused
with one line — no other exception, and nothing out of the ledger's range gets through."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import amqp.serialization
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consumers.intake import redeliveries
from shared.deliveries import Delivery
from shared.domain import BILLOMAT_KINDS, Direction
from shared.messages import (
    DB_INT_MAX,
    DELIVERY_COUNT_HEADER,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MalformedMessage,
    SyncMessage,
    carry_headers,
    decode_message,
    header_int,
    header_text,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- generators -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# What py-amqp can hand us as a header value (AMQP 0-9-1 field types, as it decodes them).
amqp_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.text(max_size=60)
    | st.binary(max_size=60)
    | st.datetimes()
)
amqp_values = st.recursive(
    amqp_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
amqp_headers = st.dictionaries(
    st.text(max_size=30) | st.binary(max_size=8), amqp_values, max_size=8
)

directions = st.sampled_from(list(Direction))
ids = st.integers(min_value=1, max_value=DB_INT_MAX)
printable_ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1)


@st.composite
def valid_messages(draw: st.DrawFn) -> SyncMessage:
    direction = draw(directions)
    kinds = ["documents"] if direction is Direction.EXPORT else list(BILLOMAT_KINDS)
    return SyncMessage(
        direction=direction,
        account_id=draw(ids),
        account=draw(st.text(min_size=1, max_size=100)),
        document_id=draw(ids),
        source_kind=draw(st.sampled_from(kinds)),
        source_id=draw(printable_ids.filter(lambda s: len(s) <= 64)),
        detected_at=draw(
            st.datetimes(
                min_value=datetime(1971, 1, 1),
                max_value=datetime(9998, 1, 1),
                timezones=st.just(UTC),
            )
        ),
        message_id=draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        document_type=draw(st.none() | st.text(max_size=40)),
        document_number=draw(st.none() | st.text(max_size=200)),
        document_date=draw(st.none() | st.dates(min_value=date(1, 1, 1))),
        details=draw(
            st.dictionaries(
                st.sampled_from(["status", "currency_code", "title"]), st.text(max_size=100)
            )
            | st.fixed_dictionaries(
                {
                    "total_net": st.decimals(
                        places=2, min_value=-(10**9), max_value=10**9, allow_nan=False
                    ).map(str)
                }
            )
        ),
    )


def check_in_bounds(msg: SyncMessage) -> None:
    """What a decoded message promises the consumer (and the database)."""
    assert 1 <= msg.account_id <= DB_INT_MAX
    assert 1 <= msg.document_id <= DB_INT_MAX
    assert msg.source_kind in (
        ["documents"] if msg.direction is Direction.EXPORT else BILLOMAT_KINDS
    )
    assert 1 <= len(msg.account) <= 100
    assert 1 <= len(msg.source_id) <= 64
    assert msg.source_id.isprintable()
    assert 1 <= len(msg.message_id) <= 32
    assert msg.detected_at.tzinfo is not None
    assert len(msg.details) <= 32
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in msg.details.items())


def check_refusal(refused: MalformedMessage) -> None:
    assert refused.reason
    assert "\n" not in refused.reason
    assert len(refused.reason) <= 600


def decode_or_refuse(body: Any) -> SyncMessage | None:
    try:
        msg = decode_message(body)
    except MalformedMessage as e:
        check_refusal(e)  # one line, bounded, whatever the body
        return None
    check_in_bounds(msg)
    return msg


# -- bodies -----------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=2000))
@example(b"")
@example(b"\xff\xfe{")
@example(b"null")
@example(b'{"schema": true}')
@example(b'"\\ud800"')
def test_any_bytes_decode_or_are_refused_with_one_line(body: bytes) -> None:
    decode_or_refuse(body)


@PROPERTY
@given(json_values)
def test_any_json_decodes_or_is_refused_with_one_line(value: Any) -> None:
    decode_or_refuse(json.dumps(value).encode())


@PROPERTY
@given(valid_messages())
def test_a_message_within_bounds_survives_the_round_trip(msg: SyncMessage) -> None:
    assert decode_message(msg.to_json()) == msg


@PROPERTY
@given(
    valid_messages(),
    st.sampled_from(
        sorted(
            json.loads(
                SyncMessage(
                    Direction.EXPORT, 1, "a", 1, "documents", "1", datetime.now(UTC)
                ).to_json()
            )
        )
    ),
    json_values,
)
def test_any_field_replaced_by_anything_decodes_within_bounds_or_is_refused(
    msg: SyncMessage, name: str, value: Any
) -> None:
    data = json.loads(msg.to_json())
    data[name] = value
    decoded = decode_or_refuse(json.dumps(data).encode())
    if decoded is not None and name == "document_id":
        assert decoded.document_id == value


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("document_id", 10**30, "document_id: Input should be less than or equal to 2147483647"),
        ("account_id", 0, "account_id: Input should be greater than or equal to 1"),
        ("document_id", "7", "document_id: Input should be a valid integer"),
        ("document_id", True, "document_id: Input should be a valid integer"),
        ("direction", "sideways", "direction: Input should be 'export' or 'import'"),
        ("source_kind", "invoices", "is not a kind of the export direction"),
        ("message_id", "x" * 33, "message_id: String should have at most 32 characters"),
        ("detected_at", 1700000000, "detected_at: expected an ISO-8601 string"),
        ("detected_at", "2024-01-01T00:00:00", "detected_at: timestamp has no time zone"),
        ("details", {"total_net": "1E+999999999"}, "total_net is not a decimal amount"),
        ("schema", 2, "unsupported schema version 2"),
    ],
)
def test_out_of_range_and_wrong_types_are_refused_by_name(
    name: str, value: Any, reason: str
) -> None:
    data = json.loads(
        SyncMessage(Direction.EXPORT, 1, "a", 1, "documents", "1", datetime.now(UTC)).to_json()
    )
    data[name] = value
    with pytest.raises(MalformedMessage) as refused:
        decode_message(json.dumps(data).encode())
    assert reason in refused.value.reason


def test_huge_and_deep_bodies_are_refused_before_any_parser_runs() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(MalformedMessage, match="exceeds 65536 bytes") as refused:
        decode_message(deep)
    assert refused.value.raw == deep
    assert refused.value.size == 200_000
    with pytest.raises(MalformedMessage, match="exceeds 65536 bytes"):
        decode_message(b"x" * (5 * 1024 * 1024))
    # deep but small: the nesting bound, not the size, refuses it
    small_deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    assert len(small_deep) < MAX_BODY_BYTES
    with pytest.raises(MalformedMessage, match=f"nested deeper than {MAX_DEPTH} levels"):
        decode_message(small_deep)
    # brackets inside strings do not nest
    msg = SyncMessage(
        Direction.EXPORT, 1, "[[[[[[[[[[", 1, "documents", "1", datetime.now(UTC),
        document_number="{{{{{{{{{{{{\"[[[[",
    )  # fmt: skip
    assert decode_message(msg.to_json()) == msg


# -- headers ----------------------------------------------------------------------------------


@PROPERTY
@given(amqp_headers, amqp_values)
@example({}, "many")
@example({}, float("inf"))
@example({}, b"\xff")
@example({}, -5)
@example({}, Decimal("1E+30"))
def test_any_header_value_reads_as_a_count_or_text(headers: dict[Any, Any], value: Any) -> None:
    headers = {**headers, DELIVERY_COUNT_HEADER: value}
    count = header_int(headers, DELIVERY_COUNT_HEADER)
    assert isinstance(count, int)
    assert 0 <= count <= 1_000_000
    text = header_text(headers, DELIVERY_COUNT_HEADER)
    assert text is None or ("\n" not in text and len(text) <= 300)
    first = Delivery(b"{}", headers, "export", "q", 1, redelivered=False)
    assert redeliveries(first) == 0  # a sender's count is not believed on a first delivery
    again = Delivery(b"{}", headers, "export", "q", 1, redelivered=True)
    assert redeliveries(again) == count


@PROPERTY
@given(amqp_headers)
def test_headers_carried_to_a_republished_message_always_encode(headers: dict[Any, Any]) -> None:
    carried = carry_headers(headers)
    assert all(isinstance(k, str) for k in carried)
    assert not any(k.startswith(("x-death", DELIVERY_COUNT_HEADER, "compression")) for k in carried)
    amqp.serialization.dumps("F", [carried])  # what py-amqp does when we publish them


def test_broker_bookkeeping_and_kombus_decompression_switch_are_not_carried() -> None:
    headers = {
        "x-death": [{"count": 1}],
        DELIVERY_COUNT_HEADER: 5,
        "compression": "application/x-gzip",
        "x-belegsync-attempt": 2,
        "sender": "producer 0.9",
        "blob": b"\x00\x01",
        "when": datetime(2024, 1, 1),
    }
    assert carry_headers(headers) == {"x-belegsync-attempt": 2, "sender": "producer 0.9"}


def test_timestamps_far_from_now_are_refused() -> None:
    data = json.loads(
        SyncMessage(Direction.EXPORT, 1, "a", 1, "documents", "1", datetime.now(UTC)).to_json()
    )
    for moment in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"):
        data["detected_at"] = moment
        with pytest.raises(MalformedMessage, match="timestamp out of range"):
            decode_message(json.dumps(data).encode())
    data["detected_at"] = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert decode_message(json.dumps(data).encode()).detected_at.tzinfo is not None
