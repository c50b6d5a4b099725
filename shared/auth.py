"""Secrets on the wire: header auth that never shows its values, and a redactor for server text.

A server may echo a key in an error body; every text that came from one passes the redactor
before it reaches an exception, a log line or a metric.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import requests
from requests.auth import AuthBase


class Redactor:
    """Removes known secrets from text that may have come from a server (which can echo them)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first so that a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


_BAD_SECRET_RE = re.compile(r"^\s|\s$|[\x00-\x1f\x7f]")


class SecretHeaderAuth(AuthBase):
    """Sends secrets in request headers; its repr names the headers, never their values.

    Values are checked here because ``requests`` would reject a bad one with an exception
    that quotes it.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            if not value or _BAD_SECRET_RE.search(value):
                raise ValueError(f"the {name} value is empty or has whitespace/control characters")
        self._headers = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(headers={sorted(self._headers)!r}, values=***)"

    def secrets(self) -> list[str]:
        return list(self._headers.values())
