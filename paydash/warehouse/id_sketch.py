"""Id sketches: a 64-bit summary of an id's trigrams, so a search for part of an id skips most rows.

The sketch of an id sets one bit (0-60) for each three consecutive bytes of the id, ASCII
letters lower-cased: bit (34 a + 41 b + c) mod 61 of bytes a, b, c. An id that contains a
text, ignoring case, holds every trigram of the text, so its sketch has every bit of the
text's sketch: `sketch & mask = mask` is a necessary condition, tested as an integer before
the ILIKE that decides (and an empty sketch, NULL, always passes: rows written by something
that does not fill it are compared as before). A 27-character Stripe id sets about a third
of the 61 bits, so a 6-character text (4 trigrams) leaves about 1 row in 80 for the ILIKE.

paydash's own charge marts carry one sketch per id column (SKETCH_COLUMNS), written with
the rows: `sketch` per row (the Stripe transform, the webhook receiver) and `sketch_array`
over a whole Arrow column (the demo generator); both give the same numbers. Only ASCII case
is folded: a text with other characters is not sketched (mask 0, every row is compared).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paydash.warehouse.schema import ID_SKETCH_COLUMNS

# id column -> its sketch column in the charge mart
SKETCH_COLUMNS: dict[str, str] = {name.removesuffix("_sketch"): name for name, _ in ID_SKETCH_COLUMNS}
# the dialects whose searches test the sketch first (PostgreSQL's trigram indexes serve the
# search instead: an extra condition in each OR arm would only get in their way)
SKETCH_SEARCH_DIALECTS = frozenset({"duckdb"})

BITS = 61
_A, _B = 34, 41  # trigram (a, b, c) -> bit (_A a + _B b + c) mod BITS

# The same sketch in SQL, for a warehouse that builds its own charge mart (dbt) and wants the
# faster search: `paydash check` prints it. Exact for ASCII ids (Stripe's are).
SKETCH_SQL: dict[str, str] = {
    "duckdb": (
        "list_reduce(list_transform(range(1, length({c}) - 1), lambda i: (1::BIGINT << (("
        f"{_A} * ascii(substr(lower({{c}}), i, 1)) + {_B} * ascii(substr(lower({{c}}), i + 1, 1)) "
        f"+ ascii(substr(lower({{c}}), i + 2, 1))) % {BITS}))), lambda a, b: a | b, 0::BIGINT)"
    ),
}


def _fold(data: bytes) -> bytes:
    return data.lower()  # bytes.lower folds ASCII letters only, as the numpy path does


def sketch(text: str | None) -> int | None:
    """The sketch of one id (None for None)."""
    if text is None:
        return None
    data = _fold(text.encode())
    bits = 0
    for i in range(len(data) - 2):
        bits |= 1 << ((_A * data[i] + _B * data[i + 1] + data[i + 2]) % BITS)
    return bits


def id_sketches(ids: dict[str, str | None]) -> dict[str, int | None]:
    """{sketch column: sketch} of a charge-mart row's ids ({"charge_id": ..., ...})."""
    return {column: sketch(ids.get(name)) for name, column in SKETCH_COLUMNS.items()}


def search_mask(text: str) -> int:
    """The bits every id containing `text` (ignoring case) has; 0 when that cannot be said
    (fewer than 3 characters, or characters outside ASCII whose case ILIKE may fold)."""
    if not text.isascii():
        return 0
    return sketch(text) or 0


if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def sketch_array(ids: "pa.Array | pa.ChunkedArray", chunk_rows: int = 500_000) -> "pa.Array":
    """`sketch` of every id of a string column, vectorised (nulls stay null)."""
    import numpy as np
    import pyarrow as pa

    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if pa.types.is_dictionary(ids.type):
        ids = ids.cast(ids.type.value_type)
    ids = ids.cast(pa.large_string())
    out = np.zeros(len(ids), dtype=np.int64)
    for start in range(0, len(ids), chunk_rows):
        part = ids.slice(start, chunk_rows)
        out[start:start + len(part)] = _sketch_chunk(part)
    valid = None if ids.null_count == 0 else np.asarray(ids.is_valid())
    return pa.array(out, type=pa.int64(), mask=None if valid is None else ~valid)


def _sketch_chunk(ids: "pa.Array") -> "np.ndarray":
    import numpy as np

    shifted = np.array([1 << b for b in range(BITS)], dtype=np.int64)
    lower = np.arange(256, dtype=np.int16)
    lower[ord("A"):ord("Z") + 1] += 32
    n = len(ids)
    offsets_buf, data_buf = ids.buffers()[1], ids.buffers()[2]
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[ids.offset:ids.offset + n + 1]
    begin, end = int(offsets[0]), int(offsets[-1])
    data = lower[np.frombuffer(data_buf, dtype=np.uint8, count=end, offset=0)[begin:end]] if data_buf else np.zeros(0, np.int16)
    starts = offsets[:-1] - begin
    stops = offsets[1:] - begin
    if len(data) < 3:
        return np.zeros(n, dtype=np.int64)
    h = (_A * data[:-2] + _B * data[1:-1] + data[2:]) % BITS  # int16: at most 76 * 255
    values = shifted[h]
    # the last two positions of each id start trigrams that run into the next id
    for back in (1, 2):
        tail = stops - back
        values[tail[(tail >= 0) & (tail < len(values))]] = 0
    values = np.append(values, 0)
    result = np.bitwise_or.reduceat(values, np.minimum(starts, len(values) - 1))
    result[stops - starts < 3] = 0
    return result
