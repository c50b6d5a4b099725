"""Every text the console shows has its German, and language negotiation picks sensibly."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.web import i18n

WEB = Path(i18n.__file__).resolve().parent
# _("text") / _('text') in templates; the views pass texts as "message"/"title"/notices.
_TEMPLATE_TEXT = re.compile(r"""_\(\s*(?:"([^"]+)"|'([^']+)')""")


def template_texts() -> set[str]:
    texts: set[str] = set()
    for path in (WEB / "templates").glob("*.html"):
        for double, single in _TEMPLATE_TEXT.findall(path.read_text()):
            texts.add(double or single)
    return texts


def view_texts() -> set[str]:
    """String constants the views hand to templates for translation."""
    texts: set[str] = set()
    for path in (WEB / "views").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value in ("title", "message", "error")
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        texts.add(value.value)
    return texts


def test_every_console_text_has_a_german_entry() -> None:
    texts = (
        template_texts()
        | view_texts()
        | {"Too many failed logins. Try again in {seconds} seconds."}
    )
    assert len(texts) > 100
    missing = sorted(t for t in texts if t not in i18n.GERMAN)
    assert missing == []


def test_every_document_state_has_both_names() -> None:
    from shared.domain import DocState

    assert {s.value for s in DocState} == set(i18n.STATES)


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
        (None, "en-US,en;q=0.9,de;q=0.8", "en"),
        (None, "fr-FR,de;q=0.5", "de"),
        (None, "fr-FR", "en"),
        (None, None, "en"),
        (None, "de;q=0", "en"),
        ("de", "en-US", "de"),
        ("xx", "de", "de"),
    ],
)
def test_language_negotiation(cookie: str | None, header: str | None, expected: str) -> None:
    assert i18n.negotiate(cookie, header) == expected


def test_a_reset_later_today_is_shown_as_a_clock_time_and_another_day_in_full() -> None:
    now = datetime(2026, 12, 3, 18, 40, tzinfo=UTC)
    assert i18n.clock("2026-12-03T19:15:00+00:00", now) == "19:15"
    assert i18n.clock("2026-12-04T00:00:00+01:00", now) == "23:00"  # still today in UTC
    assert i18n.clock("2026-12-04T01:00:00+00:00", now) == "2026-12-04 01:00 UTC"
    assert i18n.clock(None, now) == "–"
