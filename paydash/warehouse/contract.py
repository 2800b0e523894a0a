"""`paydash check`: does a database hold the data contract's marts?"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from paydash.errors import PaydashError
from paydash.warehouse.engine import Warehouse
from paydash.warehouse import load, rollup
from paydash.warehouse.id_sketch import SKETCH_COLUMNS, SKETCH_SEARCH_DIALECTS, SKETCH_SQL
from paydash.warehouse.schema import DAILY_REQUIRED_COLUMNS, OPTIONAL_PAYMENT_COLUMNS, PAYMENT_COLUMNS, display_name


@dataclass
class TableReport:
    name: str
    setting: str
    present: bool = False
    missing_columns: list[str] = field(default_factory=list)
    rows: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.present and not self.missing_columns and self.error is None


@dataclass
class ContractReport:
    database: str
    reachable: bool
    seconds: float | None = None
    error: str | None = None
    tables: list[TableReport] = field(default_factory=list)
    # what works without but is better with: optional columns, indexes (the contract is still met)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and all(t.ok for t in self.tables)

    def lines(self) -> list[str]:
        if not self.reachable:
            return [f"database {self.database}: NOT REACHABLE", f"  {self.error}"]
        out = [f"database {self.database}: reachable ({self.seconds * 1000:.0f} ms)"]
        for t in self.tables:
            if not t.present:
                out.append(f"{t.name}: MISSING. Set {t.setting} to the table's name, or run `paydash demo --no-serve`.")
            elif t.missing_columns:
                out.append(f"{t.name}: missing columns {', '.join(t.missing_columns)} (see docs/data-contract.md)")
            elif t.error:
                out.append(f"{t.name}: cannot be read: {t.error}")
            else:
                out.append(f"{t.name}: ok ({t.rows:,} rows)")
        out += [f"note: {note}" for note in self.notes]
        out.append("the data contract is met" if self.ok else "the data contract is NOT met")
        return out


def check_contract(wh: Warehouse) -> ContractReport:
    report = ContractReport(database=wh.display_url, reachable=False)
    try:
        report.seconds = wh.ping()
        report.reachable = True
    except PaydashError as exc:
        report.error = str(exc)
        return report
    present = wh.table_names()
    specs = (
        (wh.marts.payments, "PAYDASH_PAYMENTS_TABLE", [n for n, _ in PAYMENT_COLUMNS]),
        (wh.marts.daily, "PAYDASH_DAILY_TABLE", [n for n, _ in DAILY_REQUIRED_COLUMNS]),
    )
    for table, setting, required in specs:
        tr = TableReport(display_name(table), setting)
        report.tables.append(tr)
        tr.present = display_name(table) in present
        if not tr.present:
            continue
        columns = wh.columns_of(table)
        tr.missing_columns = [c for c in required if c not in columns]
        if tr.missing_columns:
            continue
        try:
            with wh.read() as conn:
                tr.rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        except PaydashError as exc:
            tr.error = str(exc)
        if table is wh.marts.payments:
            report.notes += _search_notes(wh, columns)
            report.notes += _speed_notes(wh)
    return report


def _speed_notes(wh: Warehouse) -> list[str]:
    """What would spare the pages a scan of the charge mart: the rollup marts (paydash builds them
    beside its own marts; dbt marts can add them as models), and on PostgreSQL the charge mart's
    range and aggregate indexes."""
    notes = []
    if not wh.has_rollup(max_age=0):
        r, h, f = wh.marts.rollups
        adjusted = {"with_refunds": wh.has_table(wh.marts.refunds), "with_disputes": wh.has_table(wh.marts.disputes),
                    "with_first_failures": wh.has_table(wh.marts.first_failures)}
        with wh.read() as conn:
            def sql(stmt) -> str:  # noqa: ANN001
                return " ".join(str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})).split())
            models = "; ".join(f"{display_name(t)} AS {sql(stmt)}" for t, stmt in (
                (r, rollup.rollup_select(wh.marts)), (f, rollup.failures_select(wh.marts)),
                (h, rollup.hourly_select(wh.marts, **adjusted))))
        notes.append(
            f"no rollup marts ({display_name(r)}, {display_name(f)}, {display_name(h)}): the Overview in another timezone than "
            "the reporting one, the failure breakdown, the explorer's counts with filters beyond funnel and status, "
            "and its filter options read the charge mart. paydash builds them beside its own marts; on dbt marts add "
            "them as models (PAYDASH_ROLLUP_TABLE names the first; docs/data-contract.md), rebuilt with the charge mart: "
            + models)
    try:
        indexes = load.missing_scan_indexes(wh)
    except PaydashError as exc:
        return notes + [f"could not read the indexes of {display_name(wh.marts.payments)}: {exc}"]
    if indexes:
        notes.append(f"{display_name(wh.marts.payments)} lacks the indexes paydash gives its own marts for date ranges "
                     "and the Overview's aggregates (index-only scans); add (e.g. as dbt post-hooks): " + "; ".join(indexes))
    return notes


def _search_notes(wh: Warehouse, columns: dict[str, str]) -> list[str]:
    """What the explorer's search would gain: the optional card_last4 column, fragment indexes."""
    p = wh.marts.payments
    notes = []
    for name, _ in OPTIONAL_PAYMENT_COLUMNS:
        if name not in columns:
            notes.append(f"{display_name(p)} has no {name} (optional): the search's last4: cannot work; add it "
                         "from payment_method_details.card.last4 (docs/data-contract.md)")
    sketches = [column for column in SKETCH_COLUMNS.values() if column not in columns]
    if sketches and wh.dialect in SKETCH_SEARCH_DIALECTS:
        expression = SKETCH_SQL[wh.dialect]
        adds = [f"{expression.format(c=column.removesuffix('_sketch'))} AS {column}" for column in sketches]
        notes.append(f"a search for part of an id compares every id of {display_name(p)}: it has no id sketches "
                     "(paydash's own marts do; docs/performance.md). Add them to the model: " + ", ".join(adds))
    try:
        missing = load.missing_fragment_indexes(wh)
    except PaydashError as exc:
        return notes + [f"could not read the indexes of {display_name(p)}: {exc}"]
    if missing:
        with wh.read() as conn:
            table = conn.dialect.identifier_preparer.format_table(p)
        statements = load.fragment_index_statements(wh.dialect, table, tuple(missing), p.name)
        notes.append(f"a search for part of an id reads all of {display_name(p)}: no trigram index on "
                     f"{', '.join(missing)}. Add (e.g. as dbt post-hooks): " + "; ".join(statements))
    return notes
