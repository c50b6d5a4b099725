"""Driver failures are translated at the boundary: what was sent decides ``ambiguous``."""

from __future__ import annotations

import socket

import pytest
import requests

from shared.auth import SecretHeaderAuth
from shared.billomat import BillomatClient
from shared.errors import ConfigurationError, TransientError
from shared.gmi import GmiClient, GmiUpload
from shared.http import build_session

from .conftest import RecordingHooks
from .fakes import FakeGmi, Reply

KEY = "WXYZ-1111-2222-3333-4444-5555-6666-7777"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def client(fake_gmi: FakeGmi, hooks: RecordingHooks) -> GmiClient:
    fake_gmi.add_account(KEY)
    return GmiClient(KEY, base_url=fake_gmi.base_url, hooks=hooks, timeout=(2.0, 0.3))


def test_refused_connection_is_transient_and_not_ambiguous_even_for_a_write(
    hooks: RecordingHooks,
) -> None:
    client = GmiClient(KEY, base_url=f"http://127.0.0.1:{closed_port()}/v3", hooks=hooks)
    with pytest.raises(TransientError) as info:
        client.upload_document(GmiUpload("a.pdf", b"%PDF-1", "MISC"))
    assert not info.value.ambiguous
    assert info.value.status is None
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert hooks.responses == [("gmi", "POST /documents", None)]


def test_read_timeout_after_a_write_is_ambiguous(fake_gmi: FakeGmi, client: GmiClient) -> None:
    fake_gmi.script(Reply(200, {"success": True, "documentUid": 1}, delay=1.0))
    with pytest.raises(TransientError, match=r"no answer within 0.3s") as info:
        client.upload_document(GmiUpload("a.pdf", b"%PDF-1", "MISC"))
    assert info.value.ambiguous
    assert isinstance(info.value.__cause__, requests.ReadTimeout)


def test_read_timeout_on_a_read_is_transient_but_not_ambiguous(
    fake_gmi: FakeGmi, client: GmiClient
) -> None:
    fake_gmi.script(Reply(200, {}, delay=1.0))
    with pytest.raises(TransientError) as info:
        client.account()
    assert not info.value.ambiguous


def test_connection_dropped_after_a_write_is_ambiguous_after_a_read_not(
    fake_gmi: FakeGmi, client: GmiClient, hooks: RecordingHooks
) -> None:
    fake_gmi.script(Reply(drop=True), Reply(drop=True))
    with pytest.raises(TransientError) as write:
        client.update_document(1, is_archived=True)
    with pytest.raises(TransientError) as read:
        client.account()
    assert write.value.ambiguous
    assert not read.value.ambiguous
    assert "connection lost" in str(write.value)
    assert [s for _, _, s in hooks.responses] == [None, None]


def test_malformed_base_url_is_a_configuration_error() -> None:
    client = GmiClient(KEY, base_url="api.getmyinvoices.com/accounts/v3")
    with pytest.raises(ConfigurationError, match="URL"):
        client.account()


def test_an_injected_session_is_used_and_left_open(fake_gmi: FakeGmi) -> None:
    fake_gmi.add_account(KEY)
    session = requests.Session()
    client = GmiClient(KEY, base_url=fake_gmi.base_url, session=session)
    client.account()
    client.close()
    client.account()  # still usable: the caller owns the session
    session.close()


def test_built_session_pools_connections_and_never_retries_by_itself() -> None:
    session = build_session(pool_size=7)
    adapter = session.get_adapter("https://api.getmyinvoices.com/")
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == 7
    assert adapter.max_retries.total == 0


def test_auth_repr_names_headers_but_never_values() -> None:
    auth = SecretHeaderAuth({"X-API-KEY": KEY, "X-AppSecret": "app-secret-value"})
    assert KEY not in repr(auth)
    assert "app-secret-value" not in repr(auth)
    assert "X-API-KEY" in repr(auth)


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BillomatClient("acme", KEY, timeout=(0, 10))
