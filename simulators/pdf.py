"""Small valid PDFs for seeded documents, and the byte sniffing both simulators need.

``make_pdf`` writes one A4 page with a title and lines of Helvetica text, a correct xref table,
and, when asked for a minimum size, an unreferenced binary stream as padding so that multi-MB
documents are still well-formed PDFs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

_PAGE_RE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def _pdf_text(text: str) -> bytes:
    # Helvetica with WinAnsiEncoding covers German umlauts; anything else becomes "?".
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _assemble(objects: Sequence[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def make_pdf(title: str, lines: Sequence[str] = (), *, min_size: int = 0) -> bytes:
    """A one-page PDF showing ``title`` and ``lines``, at least ``min_size`` bytes long.

    The bytes are deterministic for the same arguments and differ between titles, so seeded
    documents never collide in GMI's duplicate check by accident.
    """
    ops = [b"BT", b"/F1 18 Tf", b"56 780 Td", b"(" + _pdf_text(title) + b") Tj", b"/F1 11 Tf"]
    for line in lines:
        ops += [b"0 -18 Td", b"(" + _pdf_text(line) + b") Tj"]
    ops.append(b"ET")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        _stream(b"\n".join(ops)),
        b"<< /Title (" + _pdf_text(title) + b") /Producer (belegsync simulators) >>",
    ]
    document = _assemble(objects)
    if len(document) >= min_size:
        return document
    rng = random.Random(f"{title}\n" + "\n".join(lines))
    padding = min_size - len(document)
    while True:
        padded = _assemble([*objects, _stream(rng.randbytes(padding))])
        if len(padded) >= min_size:
            return padded
        padding += min_size - len(padded)


def is_pdf(data: bytes) -> bool:
    """PDF readers accept the header anywhere in the first KiB."""
    return b"%PDF-" in data[:1024]


def count_pages(data: bytes) -> int:
    """Pages of a PDF by counting page objects; 1 for anything else (an image is one page)."""
    if not is_pdf(data):
        return 1
    return max(1, len(_PAGE_RE.findall(data)))


def sniff_mimetype(data: bytes) -> str | None:
    """The media type from magic bytes, for the types Billomat's inbox takes (PDF and images)."""
    if is_pdf(data):
        return "application/pdf"
    signatures = (
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"II*\x00", "image/tiff"),
        (b"MM\x00*", "image/tiff"),
    )
    for magic, mimetype in signatures:
        if data.startswith(magic):
            return mimetype
    return None


_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")


def looks_like_eml(data: bytes) -> bool:
    """An RFC 822 message starts with header lines ``Name: value``."""
    first = data.lstrip(b"\r\n")[:1000].split(b"\n", 1)[0]
    return bool(_HEADER_LINE.match(first))
