"""CSV of small in-memory tables (the same rules as the warehouse's streamed export):
ISO 8601 times, numbers as numbers, and no text cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Iterator, Sequence

from paydash.warehouse.expressions import FORMULA_STARTS


def csv_cell(value: Any) -> Any:
    """One value as it should be written: text neutralised, times in ISO 8601, numbers untouched."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        # created_at is naive UTC in the marts
        return value.isoformat(timespec="seconds") + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_chunks(header: Sequence[str], chunks: Iterable[Sequence[Sequence[Any]]]) -> Iterator[str]:
    """CSV text, one piece per chunk of rows (the header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([csv_cell(v) for v in row] for row in rows)
        yield buffer.getvalue()
