"""Pages declared in configuration (docs/pages.md): validation, the queries on every engine, `paydash query
page` and `paydash serve` as the user starts them, a viewer kept from an admin-only page.

The worked example of docs/pages.md (the admin board's Appointments page) is read from the doc itself
and run against tests/fixtures/appointments.csv, loaded into each engine.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from builders import SUBPROCESS_ON_CHDB, not_on_clickhouse
from paydash.declared_pages import (
    PageQuery,
    check_columns,
    filter_args,
    load_pages,
    parse_pages,
    query_from_params,
    query_to_params,
)
from paydash.errors import ConfigError, InvalidInput
from paydash.queries import declared
from paydash.settings import Settings
from paydash.warehouse.reflect import column_type, read_columns, table_of
from serve_process import clean_env, run_page, sign_in, start_serve

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "appointments.csv"


def doc_example() -> str:
    """The TOML of docs/pages.md's worked example, exactly as the doc shows it."""
    text = (REPO / "docs" / "pages.md").read_text()
    return re.search(r"## Worked example.*?```toml\n(.*?)```", text, re.S).group(1)


def fixture_rows() -> list[dict]:
    with open(FIXTURE, newline="") as f:
        return list(csv.DictReader(f))


def example_page(table: str):  # noqa: ANN201
    (page,) = parse_pages(doc_example(), "docs/pages.md")
    return replace(page, table=table)


# -- the appointments table on each engine -------------------------------------------------------
DDL = {
    "duckdb": ("CREATE TABLE {t} (appointment_id TEXT, title TEXT, end_user TEXT, status TEXT, booking_source TEXT, "
               "starts_at TIMESTAMP, extra TEXT)"),
    "postgres": ("CREATE TABLE {t} (appointment_id TEXT, title TEXT, end_user TEXT, status TEXT, booking_source TEXT, "
                 "starts_at TIMESTAMP, extra TEXT)"),
    "clickhouse": ("CREATE TABLE {t} (appointment_id String, title String, end_user String, status String, "
                   "booking_source String, starts_at Nullable(DateTime64(6)), extra Nullable(String)) "
                   "ENGINE = MergeTree ORDER BY appointment_id"),
}


def _literal(value: str | None) -> str:
    return "NULL" if value in (None, "") else "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def load_appointments(db, name: str = "appointments") -> str:  # noqa: ANN001
    """The fixture loaded into `db` as `name`; the table's qualified name."""
    table = db.qualified(name)
    values = ", ".join(
        "(" + ", ".join(_literal(r[c]) for c in ("appointment_id", "title", "end_user", "status", "booking_source",
                                                  "starts_at", "extra")) + ")"
        for r in fixture_rows())
    if db.kind == "postgres":
        values = values.replace("%", "%%")  # psycopg reads % as a placeholder even without parameters
    db.execute(DDL[db.kind].format(t=table), f"INSERT INTO {table} VALUES {values}")
    return table


@pytest.fixture(scope="module")
def board(module_databases):  # noqa: ANN001, ANN201
    """(warehouse, page, table) of the Appointments example over the fixture table."""
    db = module_databases.new()
    name = load_appointments(db)
    wh = module_databases.track(db.warehouse())
    columns = read_columns(wh, name)
    page = example_page(name)
    check_columns(page, columns)
    return wh, page, table_of(name, columns)


def ids(result) -> list[str]:  # noqa: ANN001
    return [r["appointment_id"] for r in result.rows]


def run_query(board, query: PageQuery, page_size: int = declared.PAGE_SIZE):  # noqa: ANN001, ANN201
    wh, page, table = board
    with wh.read() as conn:
        return declared.page_rows(conn, page, table, query, "UTC", page_size)


# -- the queries, on every engine ------------------------------------------------------------------
def test_the_table_is_read_with_its_types(board) -> None:  # noqa: ANN001
    _wh, page, table = board
    assert declared.date_filters(page, table) == {"starts_at"}
    assert list(table.c.keys()) == ["appointment_id", "title", "end_user", "status", "booking_source", "starts_at", "extra"]


def test_everything_in_the_declared_order(board) -> None:  # noqa: ANN001
    result = run_query(board, PageQuery())
    assert (result.total, result.page, result.pages) == (7, 1, 1)
    assert ids(result) == ["apt_07", "apt_06", "apt_05", "apt_04", "apt_03", "apt_02", "apt_01"]  # starts_at desc
    assert list(result.rows[0]) == ["appointment_id", "title", "end_user", "status", "booking_source", "starts_at"]
    assert result.rows[0]["starts_at"] == datetime(2026, 3, 10, 12, 0)


@pytest.mark.parametrize("text, expected", [
    ("ANNA", ["apt_06", "apt_01"]),  # any case, end user
    ("haircut", ["apt_06", "apt_03", "apt_01"]),  # title
    ("100%", ["apt_04"]),  # % is literal
    ("_", ["apt_04"]),  # so is _
    ("müller", ["apt_05"]),
    ("nobody", []),
])
def test_search_matches_any_search_column_by_substring(board, text: str, expected: list[str]) -> None:  # noqa: ANN001
    assert ids(run_query(board, PageQuery(search=text))) == expected


def test_a_search_column_of_another_type_is_searched_as_its_text(board) -> None:  # noqa: ANN001
    wh, page, table = board
    by_start = (wh, replace(page, search=("starts_at",)), table)
    assert ids(run_query(by_start, PageQuery(search="2026-03-02"))) == ["apt_02", "apt_01"]


def test_choice_and_date_range_filters_combine(board) -> None:  # noqa: ANN001
    assert ids(run_query(board, PageQuery(filters=(("status", "booked"),)))) == ["apt_07", "apt_04", "apt_01"]
    both = PageQuery(filters=(("status", "booked"), ("booking_source", "web")))
    assert ids(run_query(board, both)) == ["apt_04", "apt_01"]
    march_2_to_5 = PageQuery(filters=(("starts_at", (date(2026, 3, 2), date(2026, 3, 5))),))
    assert ids(run_query(board, march_2_to_5)) == ["apt_05", "apt_04", "apt_03", "apt_02", "apt_01"]
    open_end = PageQuery(search="haircut", filters=(("starts_at", (date(2026, 3, 3), None)),))
    assert ids(run_query(board, open_end)) == ["apt_06", "apt_03"]


def test_stats_and_filter_choices_come_from_the_database(board) -> None:  # noqa: ANN001
    wh, page, table = board
    with wh.read() as conn:
        counts = declared.value_counts(conn, page, table, PageQuery(), "UTC")
        options = declared.filter_options(conn, page, table)
        narrowed = declared.value_counts(conn, page, table, PageQuery(search="anna"), "UTC")
    assert counts["status"] == [("booked", 3), ("completed", 2), ("cancelled", 1), ("no_show", 1)]
    assert counts["booking_source"] == [("web", 3), ("app", 2), ("partner", 1), ("phone", 1)]
    assert narrowed["status"] == [("booked", 1), ("completed", 1)]
    assert options == {"status": ["booked", "cancelled", "completed", "no_show"],
                       "booking_source": ["app", "partner", "phone", "web"]}


def test_paging_happens_in_the_database(board) -> None:  # noqa: ANN001
    pages = [run_query(board, PageQuery(page=n), page_size=3) for n in (1, 2, 3, 4)]
    assert [(p.total, p.pages) for p in pages] == [(7, 3)] * 4
    assert [ids(p) for p in pages] == [["apt_07", "apt_06", "apt_05"], ["apt_04", "apt_03", "apt_02"], ["apt_01"], []]


def test_the_detail_has_every_column(board) -> None:  # noqa: ANN001
    wh, page, table = board
    with wh.read() as conn:
        row = declared.row_by_key(conn, page, table, "apt_04")
        assert declared.row_by_key(conn, page, table, "apt_99") is None
    assert row["title"] == "Colour 100% organic"
    assert json.loads(row["extra"]) == {"stylist": "Lea", "products": ["henna"]}


def test_export_is_the_whole_filtered_result_formula_safe(board) -> None:  # noqa: ANN001
    wh, page, table = board
    buffer = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, declared.export_select(page, table, PageQuery(filters=(("booking_source", "app"),)), "UTC"),
                    buffer.write)
    rows = list(csv.reader(io.StringIO(buffer.getvalue().decode())))
    assert rows[0] == ["appointment_id", "title", "end_user", "status", "booking_source", "starts_at"]
    assert [r[0] for r in rows[1:]] == ["apt_05", "apt_02"]
    assert rows[1][1] == "'=HYPERLINK(\"http://x\")"  # a spreadsheet shows it, never runs it
    assert rows[1][5] == "2026-03-05T16:00:00Z"
    whole = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, declared.export_select(page, table, PageQuery(page=2), "UTC"), whole.write)
    assert len(whole.getvalue().decode().splitlines()) == 1 + 7  # every row, whatever page is open


def test_a_shipped_page_reads_the_disputes_mart(module_databases) -> None:  # noqa: ANN001
    """The Disputes page over a disputes mart at the configured name: the disputes awaiting evidence
    first, due soonest first; then the rest newest first, whatever their (past) due date."""
    db = module_databases.new()
    name = db.qualified("my_disputes")
    due = {"duckdb": "TIMESTAMP", "postgres": "TIMESTAMP", "clickhouse": "Nullable(DateTime64(6))"}[db.kind]
    money = {"duckdb": "DECIMAL(12,2)", "postgres": "NUMERIC(12,2)", "clickhouse": "Decimal(12, 2)"}[db.kind]
    text = "String" if db.kind == "clickhouse" else "TEXT"
    tail = " ENGINE = MergeTree ORDER BY dispute_id" if db.kind == "clickhouse" else ""
    db.execute(
        f"CREATE TABLE {name} (dispute_id {text}, charge_id {text}, payment_intent_id {text}, amount_usd {money}, "
        f"currency {text}, status {text}, reason {text}, created_at {due}, evidence_due_by {due}){tail}",
        f"INSERT INTO {name} VALUES ('dp_1', 'ch_1', 'pi_1', 10.50, 'usd', 'lost', 'fraudulent', '2026-01-01 00:00:00', NULL),"
        " ('dp_2', 'ch_2', 'pi_2', 20.00, 'usd', 'needs_response', 'duplicate', '2026-01-02 00:00:00', '2026-01-20 00:00:00'),"
        " ('dp_3', 'ch_3', 'pi_3', 30.00, 'eur', 'needs_response', 'fraudulent', '2026-01-03 00:00:00', '2026-01-10 00:00:00'),"
        " ('dp_4', 'ch_4', 'pi_4', 40.00, 'usd', 'won', 'fraudulent', '2026-01-04 00:00:00', '2026-01-05 00:00:00')",
    )
    pages = load_pages(Settings({"disputes_table": name}))
    page = pages["disputes"]
    assert page.table == name and page.shipped
    wh = module_databases.track(db.warehouse())
    table = table_of(name, read_columns(wh, name))
    check_columns(page, read_columns(wh, name))
    with wh.read() as conn:
        result = declared.page_rows(conn, page, table, PageQuery(), "UTC")
        fraud = declared.page_rows(conn, page, table, PageQuery(filters=(("reason", "fraudulent"),)), "UTC")
    assert [r["dispute_id"] for r in result.rows] == ["dp_3", "dp_2", "dp_4", "dp_1"]
    assert [r["dispute_id"] for r in fraud.rows] == ["dp_3", "dp_4", "dp_1"]
    # the CSV export runs the same order (its `when ... in (...)` list of values) through the engine's own copy
    exported = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, declared.export_select(page, table, PageQuery(), "UTC"), exported.write)
    assert [line.split(",")[0].strip('"') for line in exported.getvalue().decode().splitlines()[1:]] == \
        ["dp_3", "dp_2", "dp_4", "dp_1"]
    assert str(result.rows[0]["amount_usd"]) == "30.00"


# -- refusals: one line naming the file, the page, the key and the fix ----------------------------
GOOD = '''
[[page]]
name = "calls"
title = "Calls"
table = "call_logs"
search = ["caller"]
filters = ["status"]
order_by = ["started_at desc"]
key = "call_id"
'''


@pytest.mark.parametrize("change, page, key, fix", [
    ('colour = "red"', "calls", "colour", "remove it"),
    (None, "calls", "order_by", "add it"),  # missing
    ('order_by = ["started_at desc when status in (a, )"]', "calls", "order_by", "lists an empty value"),
    ('name = "Call Logs"', "Call Logs", "name", "lower-case letters"),
    ('name = "payments"', "payments", "name", "choose another name"),
    ('name = "healthz"', "healthz", "name", "a path `paydash serve` answers itself; choose another name"),
    ('links = { caller = "people" }', "calls", "links", "name a declared page"),
    ('roles = ["superuser"]', "calls", "roles", "use viewer or admin"),
    ('order_by = ["started_at sideways"]', "calls", "order_by", "write e.g. order_by"),
    ('order_by = []', "calls", "order_by", "write e.g. order_by"),
    ('search = "caller"', "calls", "search", "must be a list"),
    ('columns = [{ name = "caller", format = "shiny" }]', "calls", "columns", "use one of"),
])
def test_a_bad_declaration_is_refused_in_one_line(tmp_path: Path, change, page, key, fix) -> None:  # noqa: ANN001
    text = GOOD
    if change is None:
        text = text.replace('order_by = ["started_at desc"]\n', "")
    else:
        name = change.split(" = ")[0]
        text = re.sub(rf"^{name} = .*$\n", "", text, flags=re.M) + change + "\n"
    path = tmp_path / "pages.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_pages(Settings({"pages_file": str(path)}))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: page {page!r}")
    assert f"key {key!r}" in message or f"key {key!r}" in message.replace("unknown key", "key")
    assert fix in message


def test_query_page_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pages.toml"
    path.write_text(GOOD.replace('key = "call_id"', 'key = "call_id"\nroles = ["owner"]'))
    done = paydash(tmp_path, "query", "page", "calls", "--db", str(tmp_path / "none.duckdb"),
                   env={"PAYDASH_PAGES_FILE": str(path)})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: {path}: page 'calls': key 'roles' 'owner' is not a role; use viewer or admin\n"


def test_two_pages_of_one_name_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pages.toml"
    path.write_text(GOOD + GOOD)
    with pytest.raises(ConfigError, match=r"page 'calls': key 'name' is used by two pages; give each page its own"):
        load_pages(Settings({"pages_file": str(path)}))


def test_a_page_of_the_same_name_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "pages.toml"
    path.write_text(GOOD.replace('"calls"', '"refunds"').replace('"Calls"', '"Our refunds"'))
    pages = load_pages(Settings({"pages_file": str(path)}))
    assert pages["refunds"].title == "Our refunds" and not pages["refunds"].shipped
    assert {"disputes", "checkout_sessions", "invoices"} <= set(pages)


def test_a_column_the_table_lacks_is_refused() -> None:
    (page,) = parse_pages(GOOD, "pages.toml")
    check_columns(page, None)  # a missing table: only its page says so
    with pytest.raises(ConfigError, match=r"^pages.toml: page 'calls': key 'search' names column 'caller', which "
                                          r"table call_logs does not have; use one of call_id, status, started_at$"):
        check_columns(page, {"call_id": "TEXT", "status": "TEXT", "started_at": "TIMESTAMP"})


def test_the_url_holds_the_view() -> None:
    page = example_page("appointments")
    query = PageQuery("anna", (("status", "booked"), ("starts_at", (date(2026, 3, 1), None))), 2, "apt_01")
    params = query_to_params(query)
    assert params == {"q": "anna", "status": "booked", "starts_at": "2026-03-01..", "page": "2", "key": "apt_01"}
    assert query_from_params(page, {"starts_at"}, params) == (query, [])
    back, notes = query_from_params(page, {"starts_at"}, {"starts_at": "yesterday", "page": "-1", "colour": "red"})
    assert back == PageQuery() and len(notes) == 2
    with pytest.raises(InvalidInput, match="page 'appointments' has no filter 'colour'; its filters are status"):
        filter_args(page, ["colour=red"])


def test_types_of_every_engine_are_mapped() -> None:
    import sqlalchemy as sa

    for name, kind in [("TIMESTAMP", sa.DateTime), ("timestamp without time zone", sa.DateTime),
                       ("Nullable(DateTime64(6))", sa.DateTime), ("DATE", sa.Date), ("Date32", sa.Date),
                       ("DECIMAL(12,2)", sa.Numeric), ("Decimal(12, 2)", sa.Numeric), ("BIGINT", sa.BigInteger),
                       ("Nullable(Int64)", sa.BigInteger), ("UInt8", sa.BigInteger), ("boolean", sa.Boolean),
                       ("Bool", sa.Boolean), ("double precision", sa.Float), ("VARCHAR", sa.Text),
                       ("LowCardinality(String)", sa.Text), ("character varying", sa.Text),
                       ("timestamp with time zone", sa.DateTime), ("jsonb", sa.types.NullType),
                       ("uuid", sa.types.NullType)]:
        assert isinstance(column_type(name), kind), name
    assert column_type("timestamp with time zone").timezone and not column_type("TIMESTAMP").timezone


# -- what the user starts: `paydash query page`, `paydash serve` ------------------------------------
def paydash(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paydash.cli", *args], cwd=workdir, env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def served_board(engine_kind, databases, tmp_path: Path):  # noqa: ANN001, ANN201
    """(database, pages file) of the example over the fixture table, for subprocesses."""
    not_on_clickhouse(engine_kind, SUBPROCESS_ON_CHDB)
    db = databases.new()
    table = load_appointments(db)
    pages = tmp_path / "pages.toml"
    pages.write_text(doc_example().replace('table = "appointments"', f'table = "{table}"'))
    return db, pages


def test_query_page_prints_a_page_as_json(served_board, tmp_path: Path) -> None:  # noqa: ANN001
    db, pages = served_board
    env = {"PAYDASH_PAGES_FILE": str(pages)}
    done = paydash(tmp_path, "query", "page", "appointments", "--search", "ANNA", "--filter", "booking_source=web",
                   "--filter", "starts_at=2026-03-01..2026-03-06", "--json", "--db", db.url, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 1, "page": 1, "pages": 1, "rows": [{
        "appointment_id": "apt_01", "title": "Haircut", "end_user": "Anna Schmidt", "status": "booked",
        "booking_source": "web", "starts_at": "2026-03-02T09:00:00Z"}]}
    everything = json.loads(paydash(tmp_path, "query", "page", "appointments", "--json", "--db", db.url, env=env).stdout)
    assert (everything["total"], everything["pages"], len(everything["rows"])) == (7, 1, 7)
    for args, line in [
        (("--filter", "colour=red"), "error: page 'appointments' has no filter 'colour'; its filters are status, "
                                     "booking_source, starts_at\n"),
        (("--page", "2"), "error: --page 2 is past the last page, 1 (7 matching rows, 50 a page)\n"),
        (("--filter", "starts_at=March"), None),
    ]:
        done = paydash(tmp_path, "query", "page", "appointments", *args, "--db", db.url, env=env)
        assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
        assert line is None or done.stderr == line
    done = paydash(tmp_path, "query", "page", "meetings", "--db", db.url, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: no declared page 'meetings'; the pages are")


def test_export_page_writes_the_whole_filtered_result(served_board, tmp_path: Path) -> None:  # noqa: ANN001
    db, pages = served_board
    out = tmp_path / "app.csv"
    done = paydash(tmp_path, "export", "page", "appointments", "--out", str(out), "--filter", "booking_source=app",
                   "--db", db.url, env={"PAYDASH_PAGES_FILE": str(pages)})
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [r[0] for r in rows] == ["appointment_id", "apt_05", "apt_02"]
    assert rows[1][1] == "'=HYPERLINK(\"http://x\")"


def test_a_bad_declaration_stops_query_page_and_serve(served_board, tmp_path: Path) -> None:  # noqa: ANN001
    db, pages = served_board
    pages.write_text(pages.read_text().replace('stats = ["status", "booking_source"]', 'stats = ["status", "booking_channel"]'))
    env = {"PAYDASH_PAGES_FILE": str(pages), "PAYDASH_PASSWORD": "team-password-1"}
    expected = (f"error: {pages}: page 'appointments': key 'stats' names column 'booking_channel', which table "
                f"{db.qualified('appointments')} does not have; use one of appointment_id, title")
    done = paydash(tmp_path, "query", "page", "appointments", "--db", db.url, env=env)
    assert done.returncode == 1 and done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr
    served = start_serve(tmp_path / "serve", db.url, env=env, wait=False)
    try:
        served.process.wait(timeout=120)
    finally:
        served.stop()
    assert served.process.returncode == 1
    lines = served.output().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), served.output()


def test_a_missing_table_is_said_on_that_page_only(served_board, tmp_path: Path) -> None:  # noqa: ANN001
    db, pages = served_board
    pages.write_text(pages.read_text() + GOOD)  # calls: its table call_logs does not exist
    env = {"PAYDASH_PAGES_FILE": str(pages)}
    done = paydash(tmp_path, "query", "page", "calls", "--db", db.url, env=env)
    assert done.returncode == 1 and "table call_logs of page 'calls' not found" in done.stderr
    assert done.stderr.count("\n") == 1
    assert paydash(tmp_path, "query", "page", "appointments", "--db", db.url, env=env).returncode == 0


def test_a_viewer_is_kept_from_an_admin_only_page_of_the_served_app(tmp_path: Path) -> None:
    """Roles do not depend on the engine: one served app, on a DuckDB file, for an admin and a viewer."""
    import duckdb

    db = tmp_path / "board.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE appointments AS SELECT appointment_id, title, end_user, status, booking_source, "
                    f"CAST(starts_at AS TIMESTAMP) AS starts_at, extra FROM read_csv('{FIXTURE}', all_varchar=true)")
    pages = tmp_path / "pages.toml"
    pages.write_text(doc_example())
    workdir = tmp_path / "serve"
    workdir.mkdir()
    for user, role in (("alice", "admin"), ("bob", "viewer")):
        done = subprocess.run([sys.executable, "-m", "paydash.cli", "users", "add", user, "--role", role,
                               "--password-stdin"], input=f"{user}-password-1\n", cwd=workdir, env=clean_env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    served = start_serve(workdir, str(db), env={"PAYDASH_PAGES_FILE": str(pages)})
    try:
        admin = run_page(served, sign_in(served, "alice-password-1", "alice"), "appointments")
        viewer = run_page(served, sign_in(served, "bob-password-1", "bob"), "appointments")
    finally:
        served.stop()
    assert b"Appointments" in admin and b"Anna Schmidt" in admin
    # the viewer's navigation has no such page: the app runs its default page, and nothing of the table
    assert b"Anna Schmidt" not in viewer and b"apt_0" not in viewer
    assert b"Overview" in viewer
    assert b"Appointments" not in viewer  # nor in the viewer's menu (the navigation message names every page)


def test_the_checkout_sessions_page_reads_the_syncs_raw_table(engine_kind, databases) -> None:  # noqa: ANN001
    """paydash's Checkout sessions page over the table `paydash sync` writes: `created` (seconds since 1970)
    filtered by days, the Stripe object in `data` for the detail."""
    not_on_clickhouse(engine_kind, "the Stripe sync and its raw tables are PostgreSQL/DuckDB only (docs/scaling.md)")
    from paydash.warehouse.stripe_objects import create_object_tables, object_tables_for

    db = databases.new()
    writer = db.warehouse(read_only=False)
    tables = object_tables_for(writer)
    loaded = datetime(2026, 3, 10)

    def session(n: int, day: int, status: str, paid: str) -> dict:
        created = int(datetime(2026, 3, day, 12, tzinfo=timezone.utc).timestamp())
        obj = {"id": f"cs_{n}", "object": "checkout.session", "status": status, "payment_status": paid, "created": created}
        return {"id": f"cs_{n}", "payment_intent_id": f"pi_{n}", "customer_id": "cus_1", "status": status,
                "payment_status": paid, "created": created, "state_ts": created, "state_rank": 1, "state_hash": str(n),
                "loaded_at": loaded, "data": json.dumps(obj)}

    try:
        with writer.write() as conn:
            create_object_tables(conn, tables)
            conn.execute(tables.checkout_sessions.insert(), [
                session(1, 1, "complete", "paid"), session(2, 2, "expired", "unpaid"), session(3, 3, "complete", "paid"),
                session(4, 9, "open", "unpaid")])
    finally:
        writer.dispose()
    page = load_pages(db.settings)["checkout_sessions"]
    wh = databases.track(db.warehouse())
    columns = read_columns(wh, page.table)
    check_columns(page, columns)
    table = table_of(page.table, columns)
    assert declared.date_filters(page, table) == {"created"}
    first_days = PageQuery(filters=(("created", (date(2026, 3, 2), date(2026, 3, 3))),))
    with wh.read() as conn:
        result = declared.page_rows(conn, page, table, first_days, "UTC")
        counts = declared.value_counts(conn, page, table, PageQuery(), "UTC")
        row = declared.row_by_key(conn, page, table, "cs_4")
    assert [r["id"] for r in result.rows] == ["cs_3", "cs_2"]
    assert counts["status"] == [("complete", 2), ("expired", 1), ("open", 1)]
    assert json.loads(row["data"])["status"] == "open"


def test_the_shipped_pages_on_the_demo(tmp_path: Path) -> None:
    """`paydash demo`'s refunds and disputes marts through `paydash query page` (no pages file): the rows
    the marts hold, disputes with their evidence due soonest first; Invoices (not in the demo) is said missing."""
    import duckdb

    db = tmp_path / "demo.duckdb"
    # disputes come 3 to 60 days after their charge, about 0.4 % of them: 3,000 charges over 30 days can have none
    done = paydash(tmp_path, "demo", "--no-serve", "--payments", "20000", "--days", "60", "--db", str(db))
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        refunds = con.execute("SELECT count(*) FROM mart_stripe_refunds").fetchone()[0]
        due = [r[0] for r in con.execute(
            "SELECT dispute_id FROM mart_stripe_disputes ORDER BY CASE WHEN status IN ('needs_response', "
            "'warning_needs_response') THEN evidence_due_by END ASC NULLS LAST, created_at DESC, dispute_id").fetchall()]
    assert refunds and due
    shown = json.loads(paydash(tmp_path, "query", "page", "refunds", "--json", "--db", str(db)).stdout)
    assert shown["total"] == refunds and shown["pages"] == -(-refunds // 50)
    disputes = json.loads(paydash(tmp_path, "query", "page", "disputes", "--json", "--db", str(db)).stdout)
    assert [r["dispute_id"] for r in disputes["rows"]] == due[:50]
    missing = paydash(tmp_path, "query", "page", "invoices", "--db", str(db))
    assert missing.returncode == 1 and missing.stderr.startswith("error: table stripe_invoices not found in ")
