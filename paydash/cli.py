"""The `paydash` command: wires settings, warehouse, sources and queries together.

Exit codes and output follow click's conventions:
- a usage error (unknown command or option, missing argument, a value of the wrong type)
  prints `Usage: ...` and `Error: ...` on stderr and exits 2;
- a real failure (bad value, unreachable database, missing table, ...) prints one line
  `error: ...` on stderr and exits 1; `--debug` (anywhere on the command line) shows the
  traceback instead;
- `paydash` or a command group without a command prints its help and exits 0.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from paydash import jsonout
from paydash.errors import InvalidInput, PaydashError
from paydash.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, help="paydash: a self-hosted dashboard for Stripe payments.")
query_app = typer.Typer(no_args_is_help=True, help="Compute the dashboard's numbers and print them.")
export_app = typer.Typer(no_args_is_help=True, help="Export data as CSV.")
app.add_typer(query_app, name="query")
app.add_typer(export_app, name="export")

from paydash.app.users_cli import users_app  # noqa: E402

app.add_typer(users_app, name="users")

from paydash.alerts.cli import MAX_INTERVAL, alerts_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")

DB_HELP = ("Database URL (postgresql://..., clickhouse://..., chdb:///path) or path of a DuckDB file. "
           "Default: PAYDASH_DATABASE_URL.")
DbOption = typer.Option(None, "--db", help=DB_HELP, show_default=False)
FromOption = typer.Option(None, "--from", help="First day, YYYY-MM-DD (default: 30 days before --to).")
ToOption = typer.Option(None, "--to", help="Last day, YYYY-MM-DD, included (default: today).")
FunnelOption = typer.Option(None, "--funnel", help="Only this funnel.")
TzOption = typer.Option(None, "--tz", help="Timezone of the days (default: PAYDASH_TIMEZONE).")
JsonOption = typer.Option(False, "--json", help="Print JSON.")


# -- the command itself: --version, --debug, shell completion (typer's options) ----------
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("paydash")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(not installed; run `make setup`)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"paydash {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print paydash's version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show an error's traceback (allowed anywhere on the command line)."),
) -> None:
    # --debug is taken off the command line by main(); it is declared here for --help
    pass


# -- helpers ---------------------------------------------------------------------------
def _settings() -> Settings:
    return load_settings()


OPENED_WAREHOUSES: list = []


def _warehouse(db: str | None, read_only: bool = True, **options):  # noqa: ANN202
    from paydash.warehouse.engine import Warehouse

    settings = _settings()
    wh = Warehouse(db or settings.database_url, settings, read_only=read_only, **options)
    OPENED_WAREHOUSES.append(wh)  # closed in main(), before the interpreter tears DuckDB down
    return wh


def _emit(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(jsonout.dumps(data))  # the serialiser the System report uses too
        return
    _print_human(jsonout.jsonable(data))


def _print_human(data: Any, indent: str = "") -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                typer.echo(f"{indent}{key}:")
                _print_human(value, indent + "  ")
            else:
                typer.echo(f"{indent}{key}: {_fmt(value)}")
    elif isinstance(data, list):
        if data and isinstance(data[0], dict):
            keys = list(data[0])
            typer.echo(indent + "  ".join(keys))
            for row in data:
                typer.echo(indent + "  ".join(_fmt(row.get(k)) for k in keys))
        else:
            for item in data:
                typer.echo(f"{indent}- {_fmt(item)}")
    else:
        typer.echo(f"{indent}{_fmt(data)}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


# the days --from and --to may name: any payment history, with room for a previous period
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2199, 12, 31)


def _day(text: str | None, option: str) -> str | None:
    """--from / --to checked: a YYYY-MM-DD day paydash can compute with (ISO text), or None."""
    from paydash.queries.dates import parse_date

    if text is None or not text.strip():
        return None
    day = parse_date(text, option)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput(f"{option} {day} is outside the days paydash handles ({FIRST_DAY} to {LAST_DAY})")
    return day.isoformat()


def _tz(tz: str | None) -> str:
    """--tz checked (an IANA timezone), else the reporting timezone PAYDASH_TIMEZONE."""
    if tz is None:
        return _settings().timezone
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"--tz {tz!r} is not a timezone; use an IANA name such as UTC, Europe/Berlin or "
                           "America/New_York") from None
    return tz


def _range(start: str | None, end: str | None, tz: str | None):  # noqa: ANN202
    from paydash.queries.dates import resolve_range

    return resolve_range(_day(start, "--from"), _day(end, "--to"), _tz(tz))


def _port(given: int | None, default: int) -> int:
    """--port, else $PORT (what Heroku-style platforms set), else `default`."""
    if given is not None:
        port, source = given, "--port"
    else:
        text = os.environ.get("PORT", "").strip()
        if not text:
            return default
        if not text.isdigit():
            raise InvalidInput(f"PORT={text!r} is not a port number; set it to e.g. 8501 or pass --port")
        port, source = int(text), "PORT"
    if not 0 <= port <= 65535:
        raise InvalidInput(f"{source} {port} is not a port number (0-65535)")
    return port


# -- commands ----------------------------------------------------------------------------
MAX_DEMO_PAYMENTS = 100_000_000
MAX_DEMO_DAYS = 3_650


@app.command()
def demo(
    payments: int = typer.Option(300_000, "--payments", help="Number of charge attempts to generate."),
    days: int = typer.Option(90, "--days", help="Days of history, ending today."),
    seed: int = typer.Option(42, "--seed", help="Random seed; the same seed gives the same data."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Only build the database; do not start the dashboard."),
    db: Optional[str] = DbOption,
    port: Optional[int] = typer.Option(None, "--port", help="Port of the dashboard when serving (default: $PORT, else 8501)."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address the dashboard listens on."),
) -> None:
    """Build a demo database of realistic payments, then serve the dashboard."""
    from paydash.sources.demo import DemoSpec, build_demo_database

    if not 0 < payments <= MAX_DEMO_PAYMENTS:
        raise InvalidInput(f"--payments must be 1 to {MAX_DEMO_PAYMENTS:,}")
    if not 0 < days <= MAX_DEMO_DAYS:
        raise InvalidInput(f"--days must be 1 to {MAX_DEMO_DAYS:,} (ten years)")
    if seed < 0:
        raise InvalidInput("--seed must be 0 or a positive whole number")
    wh = _warehouse(db, read_only=False)
    spec = DemoSpec(payments=payments, days=days, seed=seed, tz=_settings().timezone)
    summary = build_demo_database(wh, spec, show_progress=True)
    wh.dispose()
    typer.echo(
        f"demo database ready: {summary['payments']:,} payments and {summary.get('operations_events', 0):,} operations "
        f"events from {summary['start']} to {summary['end']} "
        f"in {wh.display_url} ({summary['seconds']} s)"
    )
    if not no_serve:
        from paydash.app.server import run_server

        run_server(port=_port(port, 8501), address=address, db=db, demo_login=True)


@app.command()
def check(db: Optional[str] = DbOption, as_json: bool = JsonOption) -> None:
    """Check a database against the data contract and print what is missing (exit 1 when it is not met)."""
    from paydash.warehouse.contract import check_contract

    report = check_contract(_warehouse(db))
    if as_json:
        data = jsonout.jsonable(report)
        data["tables"] = [{**table, "ok": t.ok} for table, t in zip(data["tables"], report.tables)]
        typer.echo(jsonout.dumps({**data, "ok": report.ok}))
    else:
        for line in report.lines():
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: $PORT, else 8501)."),
    address: str = typer.Option("0.0.0.0", "--address", help="Address to listen on."),
    db: Optional[str] = DbOption,
    demo_login: bool = typer.Option(False, "--demo-login", hidden=True),
    alerts: bool = typer.Option(False, "--alerts", help="Also evaluate the alert rules in this process (as `paydash "
                                "alerts watch` does): for an embedded DuckDB file the served receiver holds."),
    alerts_interval: int = typer.Option(60, "--alerts-interval", help="Seconds between alert evaluations (with --alerts)."),
) -> None:
    """Run the dashboard: pages, sign-in, /healthz and (with PAYDASH_STRIPE_WEBHOOK_SECRET) the Stripe receiver, on one port."""
    from paydash.app.server import run_server

    if alerts and not 0 < alerts_interval <= MAX_INTERVAL:
        raise InvalidInput(f"--alerts-interval must be 1 to {MAX_INTERVAL:,} seconds (a day)")
    run_server(port=_port(port, 8501), address=address, db=db, demo_login=demo_login,
               alerts_interval=alerts_interval if alerts else None)


@app.command()
def webhooks(
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: $PORT, else 8502)."),
    address: str = typer.Option("0.0.0.0", "--address", help="Address to listen on."),
    db: Optional[str] = DbOption,
) -> None:
    """Receive Stripe webhooks (POST /webhooks/stripe) apart from the dashboard (`paydash serve` also serves them on its port)."""
    from paydash.sources.stripe.webhooks import run

    run(db=db, address=address, port=_port(port, 8502))


@app.command("rebuild-marts")
def rebuild_marts(db: Optional[str] = DbOption) -> None:
    """Recompute the marts from the raw Stripe tables (after changing PAYDASH_FX_RATES, the metadata keys or the timezone)."""
    from paydash.sources.stripe.transform import TransformOptions, prepare_database, rebuild_from_raw

    from paydash.warehouse.engine import require_incremental_writes

    require_incremental_writes(db or _settings().database_url, "`paydash rebuild-marts`")
    wh = _warehouse(db, read_only=False, hold_duckdb_file=False)
    raw = prepare_database(wh)
    with wh.write() as conn:
        written = rebuild_from_raw(conn, wh.marts, raw, TransformOptions.from_settings(_settings()))
    typer.echo(f"rebuilt the marts of {wh.display_url} from the raw tables: {written:,} charge-mart rows")


sync_app = typer.Typer(help="Load the Stripe account through its API; `paydash sync status` shows how complete the data is.")
app.add_typer(sync_app, name="sync")


@sync_app.callback(invoke_without_command=True)
def sync(
    ctx: typer.Context,
    api_key: Optional[str] = typer.Option(None, "--api-key", show_default=False,
                                          help="Stripe API key (default: PAYDASH_STRIPE_API_KEY, which keeps it out of `ps`)."),
    since: Optional[str] = typer.Option(None, "--since", help="Read objects created from this day on (YYYY-MM-DD, UTC) again."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Stripe API address (default: https://api.stripe.com)."),
    reconcile: Optional[bool] = typer.Option(
        None, "--reconcile/--no-reconcile", show_default=False,
        help="--reconcile: only catch up through the Events API (last 30 days); --no-reconcile: only the list "
             "endpoints. Default: both, the events when the key may read them."),
    db: Optional[str] = DbOption,
) -> None:
    """Load the Stripe account through its API (backfill, then incremental), catch up changes through
    its events, and build the marts. `paydash sync status` shows how the last runs went."""
    if ctx.invoked_subcommand is not None:
        if api_key is not None or since is not None or api_base is not None or reconcile is not None:
            raise InvalidInput("--api-key, --since, --api-base and --reconcile belong to `paydash sync` itself, not to "
                               f"`paydash sync {ctx.invoked_subcommand}`; give --db after the subcommand")
        ctx.obj = {"db": db}
        return
    from paydash.cli_sync import run_sync

    run_sync(db=db, api_key=api_key, since=since, api_base=api_base, reconcile=reconcile)


@sync_app.command("status")
def sync_status(
    ctx: typer.Context,
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    stale_after: str = typer.Option("26h", "--stale-after", help="Call the data stale when no sync completed and no "
                                    "webhook event arrived for this long (30m, 6h, 2d)."),
) -> None:
    """Sync health: problems first, then each run, each object type's cursor and stored rows, the webhooks.

    Exits 0 whatever the health (read the problems); on a database no sync has run against it
    prints one line saying so (--json: "present": false and the "message"), and exits 0 too.
    """
    from datetime import datetime, timezone

    from paydash.alerts.rules import parse_duration
    from paydash.queries.sync_health import SyncTables, Thresholds, scope_of, sync_health

    try:
        stale = parse_duration(stale_after)
    except ValueError as exc:
        raise InvalidInput(f"--stale-after: {exc}") from None
    wh = _warehouse(db or (ctx.obj or {}).get("db"))
    tables = SyncTables.of(wh)
    scope = scope_of(wh, tables)
    with wh.read() as conn:
        health = sync_health(conn, tables, scope, datetime.now(timezone.utc).replace(tzinfo=None),
                             Thresholds(stale_after=stale))
    if as_json:
        typer.echo(jsonout.dumps(health))
        return
    for line in sync_status_lines(health, wh.display_url):
        typer.echo(line)


def sync_status_lines(health: dict, where: str) -> list[str]:
    """`paydash sync status` for people: problems, runs, object types, webhooks."""
    h = jsonout.jsonable(health)
    if not h["present"]:
        return [f"{where}: {h['message']}"]
    lines = [f"Stripe sync health of {where} (as of {h['as_of']})",
             f"data known complete at: {_fmt(h['data_complete_at'])} (last complete sync: {_fmt(h['last_complete_at'])})", ""]
    if h["problems"]:
        lines.append("problems:")
        lines += [f"  {p['severity'].upper()}: {p['problem']}\n    fix: {p['fix']}" for p in h["problems"]]
    else:
        lines.append("problems: none")
    lines += ["", "runs (newest first):"]
    if not h["runs"]:
        lines.append("  none yet")
    width = max((len(r["run_id"]) for r in h["runs"]), default=0)
    for r in h["runs"]:
        read = ", ".join(f"{k} {v:,}" for k, v in r["objects"].items() if v) or "nothing read"
        events = "" if not r["reconciled"] else (f"; events read {r['events_read'] or 0:,}, applied "
                                                  f"{r['events_applied'] or 0:,}, never delivered {r['events_missing'] or 0:,}")
        lines.append(f"  {r['run_id']:<{width}}  {r['status']:<11}  started {_fmt(r['started_at'])}  finished "
                     f"{_fmt(r['finished_at'])}  {read}{events}")
        if r["error"]:
            lines.append(f"      error: {r['error'].splitlines()[0][:300]}")
    lines += ["", "object types:", f"  {'type':<18}  {'synced until':<20}  {'stored':>10}  updated"]
    for o in h["objects"]:
        stored = f"{o['stored']:,}" + ("" if o["stored_exact"] else " (est.)")
        window = f"  window in progress {o['window']['start']} .. {o['window']['end']}" if o["window"] else ""
        lines.append(f"  {o['object_type']:<18}  {_fmt(o['synced_until']):<20}  {stored:>10}  {_fmt(o['updated_at'])}{window}")
    if h["reconcile"]:
        rc = h["reconcile"]
        lines.append(f"  {'events (reconcile)':<18}  {_fmt(rc['synced_until']):<20}  {_fmt(rc['events']):>10}  "
                     f"{_fmt(rc['updated_at'])}")
    lines += ["", "webhooks:"]
    w = h["webhooks"]
    if not w or not w["newest"]:
        lines.append("  no webhook event delivered yet")
    else:
        n = w["newest"]
        lines.append(f"  newest: {n['id']} {n['type']} created {n['created']}, received {n['received_at']} "
                     f"(lag {_fmt(w['lag_seconds'])} s)")
        lines.append(f"  last hour: {w['events_last_hour']:,} events, median lag {_fmt(w['median_lag_seconds_last_hour'])} s; "
                     f"last 24 h: {w['events_last_24h']:,} events")
    u = h["undelivered"]
    if u["count"]:
        lines.append(f"  seen through the API but never delivered: {u['count']:,} ("
                     + ", ".join(f"{t} {c:,}" for t, c in u["by_type"].items()) + "); newest: "
                     + ", ".join(e["id"] for e in u["newest"]))
    return lines


def _range_command(name: str, doc: str, compute) -> None:  # noqa: ANN001
    """Register `paydash query NAME`: a date range and funnel in, `compute(conn, wh, range, funnel, as_json)` out."""

    def command(
        start: Optional[str] = FromOption,
        end: Optional[str] = ToOption,
        funnel: Optional[str] = FunnelOption,
        tz: Optional[str] = TzOption,
        as_json: bool = JsonOption,
        db: Optional[str] = DbOption,
    ) -> None:
        wh = _warehouse(db)
        rng = _range(start, end, tz)
        with wh.read() as conn:
            result = compute(conn, wh, rng, funnel, as_json)
        _emit(result, as_json)

    command.__doc__ = doc
    command.__name__ = f"query_{name}"
    query_app.command(name)(command)


def _overview(conn, wh, rng, funnel, as_json):  # noqa: ANN001, ANN202
    from datetime import datetime, timezone

    from paydash.queries.overview import overview

    # a range that holds today is today so far, compared with the same hours back then (as_of)
    return overview(conn, wh.marts, rng, funnel, mart_tz=wh.settings.timezone, now=datetime.now(timezone.utc),
                    with_refunds=wh.has_table(wh.marts.refunds), with_disputes=wh.has_table(wh.marts.disputes),
                    rollup=wh.has_rollup())


def _daily(conn, wh, rng, funnel, as_json):  # noqa: ANN001, ANN202
    from paydash.queries.overview import daily_series

    rows = daily_series(conn, wh.marts, rng, funnel, mart_tz=wh.settings.timezone, rollup=wh.has_rollup())
    return {"from": rng.start, "to": rng.end, "days": rows} if as_json else rows


def _failures(conn, wh, rng, funnel, as_json):  # noqa: ANN001, ANN202
    from paydash.queries.failures import failure_breakdown

    return failure_breakdown(conn, wh.marts, rng, funnel, rollup=wh.has_rollup())


def _recovery(conn, wh, rng, funnel, as_json):  # noqa: ANN001, ANN202
    from paydash.queries.recovery import recovery

    return recovery(conn, wh.marts, rng, funnel, precomputed=wh.has_table(wh.marts.first_failures),
                    mart_tz=wh.settings.timezone, rollup=wh.has_rollup())


_range_command("overview", "Revenue, attempts, failures and success rate of a range and of its previous period "
               "(a range ending today is compared up to the same time of day: as_of).", _overview)
_range_command("daily", "Revenue, attempts and success rate per day.", _daily)
_range_command("failures", "Failed attempts by category and by decline code, with the recommended action.", _failures)
_range_command("recovery", "Recovery rate, recovered revenue and payment-level acceptance, by day of first failure.", _recovery)


def _filters(start, end, tz, **values):  # noqa: ANN001, ANN202
    from paydash.queries.filters import filters_from_params

    start, end = _day(start, "--from"), _day(end, "--to")
    return filters_from_params({"from": start, "to": end, **values}, _tz(tz))


def _search_scope(wh):  # noqa: ANN001, ANN202
    """What the warehouse has that a search can use (the customers mart, card_last4)."""
    from paydash.queries.payments import SearchScope

    return SearchScope(customers=wh.has_table(wh.marts.customers), card_last4=wh.has_column(wh.marts.payments, "card_last4"),
                       id_sketches=wh.has_id_sketches(), amount_counts=wh.has_table(wh.marts.amount_counts),
                       rollup=wh.has_rollup())


StatusOption = typer.Option(None, "--status", help="succeeded, failed or pending.")
BrandOption = typer.Option(None, "--card-brand", help="visa, mastercard, ...")
SearchOption = typer.Option(None, "--search", help="An id or part of one (4+ characters), the start of an email or name, "
                            "and field terms: email: last4: amount:>100 currency: country: code: category: status:.")
PFromOption = typer.Option(None, "--from", help="First day, YYYY-MM-DD.")
PToOption = typer.Option(None, "--to", help="Last day, YYYY-MM-DD, included.")
CategoryOption = typer.Option(None, "--failure-category", help="card_declined, insufficient_funds, ... (docs/decline-codes.md).")
CodeOption = typer.Option(None, "--failure-code", help="A decline or failure code, e.g. insufficient_funds.")
CurrencyOption = typer.Option(None, "--currency", help="The charge's currency, e.g. eur.")
CountryOption = typer.Option(None, "--card-country", help="The card's country, e.g. DE.")
MinAmountOption = typer.Option(None, "--min-amount", help="Smallest amount in USD, included.")
MaxAmountOption = typer.Option(None, "--max-amount", help="Largest amount in USD, included.")


def _emit_page(result, page: int, noun: str, page_size: int, heading: str, as_json: bool) -> None:  # noqa: ANN001
    """A page of rows with its total (payments or a declared page's); a page past the last is an error."""
    if page > result.pages:
        raise InvalidInput(f"--page {page} is past the last page, {result.pages:,} ({result.total:,} matching "
                           f"{noun}{'' if result.total == 1 else 's'}, {page_size} a page)")
    if as_json:
        _emit(result.as_dict(), True)
    else:
        typer.echo(f"{heading}, page {result.page} of {result.pages}")
        _emit(result.rows, False)


@query_app.command("payments")
def query_payments(
    status: Optional[str] = StatusOption,
    funnel: Optional[str] = FunnelOption,
    card_brand: Optional[str] = BrandOption,
    search: Optional[str] = SearchOption,
    failure_category: Optional[str] = CategoryOption,
    failure_code: Optional[str] = CodeOption,
    currency: Optional[str] = CurrencyOption,
    card_country: Optional[str] = CountryOption,
    min_amount: Optional[str] = MinAmountOption,
    max_amount: Optional[str] = MaxAmountOption,
    start: Optional[str] = PFromOption,
    end: Optional[str] = PToOption,
    sort: str = typer.Option("created", "--sort", help="created (time) or amount."),
    asc: bool = typer.Option(False, "--asc", help="Oldest or smallest first (default: newest or largest first)."),
    page: int = typer.Option(1, "--page", help="Page number (50 payments a page)."),
    tz: Optional[str] = TzOption,
    as_json: bool = JsonOption,
    db: Optional[str] = DbOption,
) -> None:
    """A page of matching payments, newest first (or as --sort says), with the total count."""
    from paydash.queries.filters import sort_from_params
    from paydash.queries.payments import PAGE_SIZE, payments_page

    filters = _filters(start, end, tz, status=status, funnel=funnel, card_brand=card_brand, search=search,
                       failure_category=failure_category, failure_code=failure_code, currency=currency,
                       card_country=card_country, min_amount=min_amount, max_amount=max_amount)
    order = sort_from_params({"sort": sort, "asc": "1" if asc else ""})
    wh = _warehouse(db)
    scope = _search_scope(wh)
    with wh.read() as conn:
        result = payments_page(conn, wh.marts, filters, page, mart_tz=wh.settings.timezone, sort=order, scope=scope)
    _emit_page(result, page, "payment", PAGE_SIZE, f"{result.total:,} payments", as_json)


@query_app.command("payment")
def query_payment(
    charge_id: str = typer.Argument(..., metavar="CHARGE_ID", help="The charge id (ch_...)."),
    as_json: bool = JsonOption,
    db: Optional[str] = DbOption,
) -> None:
    """One payment's detail: the retry history, refunds and disputes of its payment intent, in one timeline."""
    from paydash.queries.payments import payment_detail
    wh = _warehouse(db)
    marts = wh.marts
    present = {"with_refunds": wh.has_table(marts.refunds), "with_disputes": wh.has_table(marts.disputes),
               "with_customer": wh.has_table(marts.customers)}
    rates = wh.conversion_rates()
    card_last4 = wh.has_column(marts.payments, "card_last4")
    with wh.read() as conn:
        detail = payment_detail(conn, marts, charge_id.strip(), fx_rates=rates, card_last4=card_last4, **present)
    if detail is None:
        raise InvalidInput(f"no payment with charge id {charge_id!r} in {wh.display_url}")
    _emit(detail, as_json)


def declared_pages(wh):  # noqa: ANN001, ANN201
    """The declared pages (paydash's and PAYDASH_PAGES_FILE's), each checked against its table when
    that exists: a bad declaration is refused in one line (docs/pages.md)."""
    from paydash.declared_pages import check_all, load_pages
    from paydash.warehouse.reflect import read_columns

    pages = load_pages(wh.settings)
    check_all(pages, lambda table: read_columns(wh, table))
    return pages


def _declared_query(wh, name: str, search: str | None, filters: list[str] | None, page: int = 1):  # noqa: ANN001, ANN202
    """(declaration, its table, the query) of declared page `name` asked by the CLI; one line on any mistake."""
    from paydash.declared_pages import check_columns, filter_args, missing_table, query_from_params
    from paydash.errors import TableMissing
    from paydash.queries import declared
    from paydash.warehouse.reflect import read_columns, table_of

    pages = declared_pages(wh)
    if name not in pages:
        raise InvalidInput(f"no declared page {name!r}; the pages are {', '.join(sorted(pages))} (declare more in "
                           "PAYDASH_PAGES_FILE, docs/pages.md)")
    decl = pages[name]
    columns = read_columns(wh, decl.table)
    if columns is None:
        raise TableMissing(missing_table(decl, wh.display_url))
    check_columns(decl, columns)  # paydash's own page on a mart of another shape
    table = table_of(decl.table, columns)
    params = {**filter_args(decl, filters or []), "q": search or "", "page": str(page)}
    query, _ = query_from_params(decl, declared.date_filters(decl, table), params, strict=True)
    return decl, table, query


PageSearchOption = typer.Option(None, "--search", help="Text any of the page's search columns contains (any case).")
PageFilterOption = typer.Option(None, "--filter", help="COLUMN=VALUE, one of the page's filters; a date column takes "
                                "FROM..TO (YYYY-MM-DD, either end may be left out). Repeat for several.")


@query_app.command("page")
def query_page(
    name: str = typer.Argument(..., metavar="NAME", help="The declared page (its URL path), e.g. disputes."),
    search: Optional[str] = PageSearchOption,
    filters: Optional[list[str]] = PageFilterOption,
    page: int = typer.Option(1, "--page", help="Page number (50 rows a page)."),
    as_json: bool = JsonOption,
    db: Optional[str] = DbOption,
) -> None:
    """A page of a declared page's rows (search, filters, its order) with the total: {total, page, pages, rows}."""
    from paydash.queries import declared

    wh = _warehouse(db)
    decl, table, query = _declared_query(wh, name, search, filters, page)
    with wh.read() as conn:
        result = declared.page_rows(conn, decl, table, query, wh.settings.timezone)
    _emit_page(result, query.page, "row", declared.PAGE_SIZE, f"{decl.title}: {result.total:,} rows", as_json)


@export_app.command("page")
def export_page(
    name: str = typer.Argument(..., metavar="NAME", help="The declared page (its URL path), e.g. disputes."),
    out: Path = typer.Option(..., "--out", help="CSV file to write ('-' for standard output)."),
    search: Optional[str] = PageSearchOption,
    filters: Optional[list[str]] = PageFilterOption,
    db: Optional[str] = DbOption,
) -> None:
    """A declared page's whole filtered result as CSV (formula-safe, in the page's order), streamed."""
    from paydash.queries import declared

    wh = _warehouse(db, duckdb_memory_limit="128MB")
    decl, table, query = _declared_query(wh, name, search, filters)
    _write_csv(wh, [declared.export_select(decl, table, query, wh.settings.timezone)], out)


def _open_out(out: Path):  # noqa: ANN202
    """--out opened for writing, or one line saying why it cannot be."""
    if out.is_dir():
        raise InvalidInput(f"--out {out} is a folder; name a file in it, e.g. --out {out / 'payments.csv'}")
    if not out.parent.is_dir():
        raise InvalidInput(f"--out {out}: the folder {out.parent} does not exist; create it or write elsewhere")
    try:
        return open(out, "wb")
    except OSError as exc:
        raise InvalidInput(f"--out {out} cannot be written: {exc.strerror}") from None


@export_app.command("payments")
def export_payments(
    out: Path = typer.Option(..., "--out", help="CSV file to write ('-' for standard output)."),
    status: Optional[str] = StatusOption,
    funnel: Optional[str] = FunnelOption,
    card_brand: Optional[str] = BrandOption,
    search: Optional[str] = SearchOption,
    failure_category: Optional[str] = CategoryOption,
    failure_code: Optional[str] = CodeOption,
    currency: Optional[str] = CurrencyOption,
    card_country: Optional[str] = CountryOption,
    min_amount: Optional[str] = MinAmountOption,
    max_amount: Optional[str] = MaxAmountOption,
    start: Optional[str] = PFromOption,
    end: Optional[str] = PToOption,
    tz: Optional[str] = TzOption,
    db: Optional[str] = DbOption,
) -> None:
    """The whole filtered result as CSV, newest first, streamed in chunks."""
    from paydash.queries.payments import export_selects

    filters = _filters(start, end, tz, status=status, funnel=funnel, card_brand=card_brand, search=search,
                       failure_category=failure_category, failure_code=failure_code, currency=currency,
                       card_country=card_country, min_amount=min_amount, max_amount=max_amount)
    wh = _warehouse(db, duckdb_memory_limit="128MB")
    scope = _search_scope(wh)
    _write_csv(wh, lambda conn: export_selects(conn, wh.marts, filters, mart_tz=wh.settings.timezone, scope=scope), out)


def _write_csv(wh, selects, out: Path) -> None:  # noqa: ANN001
    """The statements' results as one CSV (the first one's header) into --out, streamed; `selects` is a
    list, or a function of the read connection making it. A failed export leaves no partial file."""
    to_stdout = str(out) == "-"
    target = sys.stdout.buffer if to_stdout else _open_out(out)
    written = 0

    def write(data: bytes) -> None:
        nonlocal written
        written += len(data)
        target.write(data)

    done = False
    try:
        with wh.read() as conn:
            for index, stmt in enumerate(selects(conn) if callable(selects) else selects):
                wh.copy_csv(conn, stmt, write, header=index == 0)
        done = True
    finally:
        if not to_stdout:
            target.close()
            if not done:
                out.unlink(missing_ok=True)  # no half-written file that looks like a whole export
    if not to_stdout:
        typer.echo(f"wrote {written / 1e6:.1f} MB to {out}", err=True)


@app.command("settings")
def show_settings(
    markdown: bool = typer.Option(False, "--markdown", help="Print the reference table."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: each setting's variable and its current value."),
) -> None:
    """Every setting with its current value (secrets hidden)."""
    from paydash.settings import SETTINGS, settings_markdown
    from paydash.warehouse.engine import safe_url

    if markdown and as_json:
        raise InvalidInput("--markdown and --json are two formats; choose one")
    if markdown:
        typer.echo(settings_markdown())
        return
    current = _settings()
    shown = {}
    for s in SETTINGS:
        value = getattr(current, s.name)
        shown[s.env] = "***" if s.secret and value else (safe_url(value) if s.name == "database_url" else value)
    if as_json:
        typer.echo(jsonout.dumps(shown))
        return
    for env, value in shown.items():
        typer.echo(f"{env}={value}")


def _context_of(args: list[str]):  # noqa: ANN202
    """The context of the (sub)command that `args` name, for the usage line of an error raised
    without one; None if even that fails (the error is then shown without it)."""
    from typer.main import get_command

    try:
        ctx = get_command(app).make_context("paydash", [], resilient_parsing=True)
        for arg in args:
            if arg.startswith("-"):
                continue
            sub = ctx.command.get_command(ctx, arg) if hasattr(ctx.command, "get_command") else None
            if sub is None:
                break
            ctx = sub.make_context(arg, [], parent=ctx, resilient_parsing=True)
        return ctx
    except Exception:  # noqa: BLE001 - a usage line is a nicety; the error itself is shown regardless
        return None


def main(argv: list[str] | None = None) -> None:
    # typer vendors click (typer._click) and exports none of these; the pinned version is tested
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    code = 0
    try:
        result = app(args=args, prog_name="paydash", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except PaydashError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        code = 1
    except NoArgsIsHelpError as exc:
        # `paydash` or `paydash query` alone: the help was asked for (rich prints it itself; plain
        # click puts it in the message)
        if exc.format_message():
            typer.echo(exc.format_message())
        code = 0
    except ClickException as exc:
        # usage errors as click shows them: `Usage: ...`, `Try ... --help`, `Error: ...`, exit 2
        if isinstance(exc, UsageError) and exc.ctx is None:
            exc.ctx = _context_of(args)  # typer's parser raises some (an option without its value) bare
        exc.show()
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt, EOFError):
        typer.echo("aborted", err=True)
        code = 130
    except BrokenPipeError:
        # the reader went away (`paydash export payments --out - | head`): nothing left to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's last flush is quiet
        code = 1
    except OSError as exc:
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        code = 1
    except Exception as exc:  # noqa: BLE001 - the user gets one line, --debug gets the rest
        if debug:
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (a bug in paydash; run again with --debug for the "
                   "traceback)", err=True)
        code = 1
    finally:
        for wh in OPENED_WAREHOUSES:
            wh.dispose()
        OPENED_WAREHOUSES.clear()
    sys.exit(code)


if __name__ == "__main__":
    main()
