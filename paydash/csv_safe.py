"""CSV that spreadsheets show, not run: Python's side of `warehouse.expressions.formula_safe`.

For tables built in Python (the audit log, saved-query results, the System page's tables);
exports straight from the warehouse use the SQL version inside the database.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, Iterator, Sequence

from paydash.warehouse.expressions import FORMULA_STARTS


def safe_cell(value: Any) -> Any:
    """A text cell starting with a formula character gets a leading quote; other values pass."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    if isinstance(value, (bool, int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    text = value.hex() if isinstance(value, (bytes, bytearray, memoryview)) and not isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]], chunk_rows: int = 5_000) -> Iterator[bytes]:
    """The CSV (header first) as byte chunks of about `chunk_rows` rows, every cell formula-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe_cell(h) for h in header])
    n = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        n += 1
        if n % chunk_rows == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    return b"".join(csv_chunks(header, rows))
