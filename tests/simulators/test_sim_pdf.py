"""make_pdf writes structurally valid PDFs: header, trailer, and an xref that points at objects."""

from __future__ import annotations

import re

import pytest

from simulators.pdf import count_pages, make_pdf, sniff_mimetype


def _check_structure(pdf: bytes) -> int:
    """Assert the cross-reference table is exact; returns the number of objects."""
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.rstrip().endswith(b"%%EOF")
    startxref = int(re.findall(rb"startxref\n(\d+)\n%%EOF", pdf)[-1])
    assert pdf[startxref:].startswith(b"xref\n")
    header = re.match(rb"xref\n0 (\d+)\n", pdf[startxref:])
    assert header is not None
    count = int(header.group(1))
    entries_at = startxref + header.end()
    entries = [pdf[entries_at + 20 * i : entries_at + 20 * (i + 1)] for i in range(count)]
    assert entries[0] == b"0000000000 65535 f \n"
    for number, entry in enumerate(entries[1:], start=1):
        assert re.fullmatch(rb"\d{10} 00000 n \n", entry), entry
        offset = int(entry[:10])
        assert pdf[offset:].startswith(b"%d 0 obj\n" % number)
    trailer = pdf[entries_at + 20 * count :]
    assert trailer.startswith(b"trailer\n<< /Size %d /Root 1 0 R" % count)
    return count - 1


def test_small_pdf_has_exact_xref_offsets_and_shows_its_text() -> None:
    pdf = make_pdf("Rechnung RE-0001 (Müller & Söhne)", ["Netto: 100,00 EUR", r"Pfad C:\x"])

    assert _check_structure(pdf) == 6
    assert b"(Rechnung RE-0001 \\(M\xfcller & S\xf6hne\\)) Tj" in pdf
    assert b"(Pfad C:\\\\x) Tj" in pdf
    length = int(re.search(rb"5 0 obj\n<< /Length (\d+) >>", pdf).group(1))  # type: ignore[union-attr]
    stream_start = pdf.index(b"stream\n", pdf.index(b"5 0 obj")) + len(b"stream\n")
    assert pdf[stream_start + length :].startswith(b"\nendstream")
    assert count_pages(pdf) == 1
    assert sniff_mimetype(pdf) == "application/pdf"


@pytest.mark.parametrize("min_size", [5_000, 3 * 1024 * 1024])
def test_padded_pdf_reaches_the_minimum_size_and_stays_valid(min_size: int) -> None:
    pdf = make_pdf("Jahresabrechnung", ["Anlagen"], min_size=min_size)

    assert min_size <= len(pdf) < min_size + 200
    assert _check_structure(pdf) == 7
    assert count_pages(pdf) == 1


def test_pdfs_are_deterministic_and_differ_by_title() -> None:
    assert make_pdf("A", min_size=10_000) == make_pdf("A", min_size=10_000)
    assert make_pdf("A") != make_pdf("B")
    assert make_pdf("A", min_size=10_000) != make_pdf("B", min_size=10_000)
