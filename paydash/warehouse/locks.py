"""Who may write at once, per engine: the writers in `sources/` ask for a lock by purpose and
this module decides what it is on each engine.

- PostgreSQL: advisory locks (per transaction for the marts' refresh, per session for a sync run).
- DuckDB: one process holds the file writable, so the marts need no lock; a sync run takes a
  `flock` on a file beside the database (`<file>.sync.lock`), which outlives crashed processes.
- ClickHouse: paydash does not write it incrementally (sync and webhooks refuse it; the demo
  rebuilds), so there is nothing to lock.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# SQLAlchemy dialect names whose transactions can take an advisory lock
_ADVISORY = frozenset({"postgresql"})


def lock_for_transaction(conn: Connection, key: int) -> None:
    """Serialise this transaction with others taking `key` (released at commit), where the
    engine has concurrent writers to serialise."""
    if conn.dialect.name in _ADVISORY:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


@contextmanager
def exclusive_run(wh, key: int, busy: Callable[[str], Exception]) -> Iterator[None]:  # noqa: ANN001
    """One run at a time per database (a sync): `busy(where)` is raised when another holds it."""
    if wh.dialect == "postgresql":
        with wh.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one()
            if not got:
                raise busy("this database")
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
        return
    path = wh.duckdb_path
    if path is None:
        yield
        return
    import fcntl

    with open(f"{path}.sync.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise busy(str(path)) from None
        yield
