"""Shared pieces of the agency CSV mappings: bounded, header-checked reading and row problems.

Pure: the input is bytes already read by the caller. Nothing here ever puts a cell value
(personal data) into an exception or a problem: messages name the line, the field and
what is wrong with it, never the value.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from mash_broker.contracts.errors import InputFileError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
MAX_CELL_CHARS = 10_000  # longer than any column allows: a longer cell is its row's problem, not the file's

_NEWLINES = re.compile(r"\r\n?")


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one field of one row. ``line`` is the physical line (header = 1)."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field}: {self.reason}"


def read_csv(
    data: bytes,
    expected_header: tuple[str, ...],
    *,
    source: str,
    problems: list[RowProblem],
) -> Iterator[tuple[int, dict[str, str]]]:
    """Check the whole file, then iterate ``(line, row)`` over the rows with the right cell count.

    Raises ``InputFileError`` (``record=source``) when the file cannot be used at all: too big,
    not UTF-8, empty, wrong header, too many rows, or broken CSV quoting. A row with the wrong
    number of cells (field ``row``) or a cell over ``MAX_CELL_CHARS`` (its column) is appended to
    ``problems`` and not yielded; an over-long cell that spans lines (a quote left open) names
    them. Blank lines are
    skipped. ``line`` is the physical line where the row starts, so rows after a quoted
    multi-line cell are numbered as an editor shows them.
    """
    if len(data) > MAX_FILE_BYTES:
        raise InputFileError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB", record=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(
            f"not UTF-8: undecodable byte at offset {exc.start} (line {line})", record=source
        ) from None
    if not text.strip():
        raise InputFileError("file is empty (expected a header line)", record=source)

    if csv.field_size_limit() < MAX_FILE_BYTES:  # the reader's own limit (128 KiB) would refuse the file
        csv.field_size_limit(MAX_FILE_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, int, list[str]]] = []
    try:
        header = next(reader)
        _check_header([cell.strip() for cell in header], expected_header, source)
        start = reader.line_num + 1
        for cells in reader:
            if cells:
                rows.append((start, reader.line_num, cells))
                if len(rows) > MAX_ROWS:
                    raise InputFileError(f"file has more than {MAX_ROWS} rows", record=source)
            start = reader.line_num + 1
    except csv.Error:
        # Typically an unbalanced quote that swallowed the rest of the file into one huge cell.
        raise InputFileError(
            f"broken CSV at line {reader.line_num}: unbalanced quote or over-long cell", record=source
        ) from None
    return _rows(rows, expected_header, problems)


def _rows(
    rows: list[tuple[int, int, list[str]]], expected: tuple[str, ...], problems: list[RowProblem]
) -> Iterator[tuple[int, dict[str, str]]]:
    for line, last_line, cells in rows:
        found = [
            RowProblem(line, expected[i] if i < len(expected) else f"cell {i + 1}", _too_long(line, last_line))
            for i, cell in enumerate(cells)
            if len(cell) > MAX_CELL_CHARS
        ]
        if len(cells) != len(expected):
            found.append(RowProblem(line, "row", f"has {len(cells)} cells, expected {len(expected)}"))
        if found:
            problems.extend(found)
            continue
        yield line, dict(zip(expected, cells, strict=True))


def _too_long(line: int, last_line: int) -> str:
    reason = f"longer than {MAX_CELL_CHARS} characters"
    if last_line > line:
        reason += f" (the row runs over lines {line} to {last_line}: is a quote left open?)"
    return reason


def _check_header(found: list[str], expected: tuple[str, ...], source: str) -> None:
    """Refuse any header but exactly ``expected``. Unknown header cells are shown by position only:
    a file without its header has a row of personal data on line 1."""
    if tuple(found) == expected:
        return
    if not set(found) & set(expected):
        raise InputFileError(
            f"line 1 is not the expected header (none of its {len(found)} cells is a known column);"
            f" expected: {','.join(expected)}",
            record=source,
        )
    parts: list[str] = []
    missing = [name for name in expected if name not in found]
    if missing:
        parts.append(f"missing columns: {', '.join(missing)}")
    unexpected = [str(i + 1) for i, name in enumerate(found) if name not in expected]
    if unexpected:
        parts.append(f"unexpected columns at positions: {', '.join(unexpected)}")
    repeated = sorted({name for name in found if name in expected and found.count(name) > 1})
    if repeated:
        parts.append(f"repeated columns: {', '.join(repeated)}")
    if not parts:
        parts.append("columns out of order")
    raise InputFileError(f"wrong header: {'; '.join(parts)}; expected: {','.join(expected)}", record=source)


def clean_text(value: str, *, max_length: int, multiline: bool = False) -> tuple[str, str | None]:
    """NFC-normalise and strip ``value``; return it with the reason it is unacceptable, if any.

    Control characters are refused (newline and tab too, unless ``multiline``; CR and CRLF are
    turned into newlines first). Length is counted after normalisation and is never truncated.
    """
    value = unicodedata.normalize("NFC", value)
    if multiline:
        value = _NEWLINES.sub("\n", value)
    value = value.strip()
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        return value, "contains control characters"
    if len(value) > max_length:
        return value, f"longer than {max_length} characters"
    return value, None


def matches(pattern: re.Pattern[str], value: str) -> bool:
    """Whole-string match (``$`` alone would accept a trailing newline)."""
    return pattern.fullmatch(value) is not None
