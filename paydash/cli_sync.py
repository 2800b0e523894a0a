"""`paydash sync`'s wiring: settings, a progress line per object type while it runs, a summary."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timezone

import typer

from paydash.settings import load_settings

from paydash.sources.stripe.api import StripeReader, check_api_base, check_api_key, parse_since
from paydash.sources.stripe.sync import STOP, SyncReport, Syncer
from paydash.sources.stripe.transform import TransformOptions
from paydash.warehouse.engine import Warehouse, require_incremental_writes


def _interrupted(signum, frame) -> None:  # noqa: ANN001
    # stop at the next page boundary: raising here could land inside a database call
    STOP.set()


def reconcile_mode(reconcile: bool | None) -> str:
    """--reconcile: only the Events API walk (the key must read events); --no-reconcile: only the
    incremental pass; neither: both, the walk when the key may read events."""
    return {None: "auto", True: "only", False: "no"}[reconcile]


def run_sync(db: str | None, api_key: str | None, since: str | None, api_base: str | None,
             reconcile: bool | None = None) -> SyncReport:
    settings = load_settings()
    require_incremental_writes(db or settings.database_url, "`paydash sync`")
    key = check_api_key(api_key or settings.stripe_api_key)
    base = check_api_base(api_base)
    since_ts = parse_since(since)
    mode = reconcile_mode(reconcile)
    if mode == "only" and since_ts is not None:
        raise typer.BadParameter("--since re-reads the list endpoints; --reconcile reads only events. Use one.")
    # SIGTERM (a platform stopping the process) ends the run as interrupted, like Ctrl-C
    signal.signal(signal.SIGTERM, _interrupted)
    wh = Warehouse(db or settings.database_url, settings, read_only=False, hold_duckdb_file=False)
    shown: dict[str, float] = {}

    def progress(name: str, count: int, start: int, end: int) -> None:
        now = time.monotonic()
        if now - shown.get(name, 0.0) >= 1.0:
            shown[name] = now
            day = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
            typer.echo(f"  {name}: {count:,} objects (created {day(start)} .. {day(end)})", err=True)

    what = "reconciling Stripe events" if mode == "only" else "syncing Stripe"
    typer.echo(f"{what} ({base}) into {wh.display_url}", err=True)
    syncer = Syncer(wh, StripeReader(key, base), TransformOptions.from_settings(settings), since=since_ts,
                    lookback=settings.stripe_sync_lookback, progress=progress, reconcile=mode)
    try:
        report = syncer.run()
    finally:
        wh.dispose()
    for name, count in report.objects.items():
        typer.echo(f"  {name}: {count:,}")
    if report.reconciled:
        typer.echo(f"  events: {report.events_read:,} read, {report.events_missing:,} never delivered by a webhook "
                   f"and now applied")
        for event_type, count in sorted(report.missing.items(), key=lambda kv: (-kv[1], kv[0])):
            typer.echo(f"    {event_type}: {count:,}")
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"sync complete: {sum(report.objects.values()) + report.events_read:,} objects in {report.requests:,} "
               f"requests ({report.retries} retried), {report.charges_in_mart:,} charge-mart rows rewritten, "
               f"{report.seconds} s (API {report.timings['api']} s, writing pages {report.timings['pages']} s, "
               f"marts {report.timings['marts']} s)")
    return report



