"""Every text the console shows has its German, and language negotiation picks sensibly."""

from __future__ import annotations

import ast
import re
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
