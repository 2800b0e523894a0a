"""`paydash alerts run|watch|replay|rules` (hooked into paydash/cli.py)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Optional

import typer

from paydash.errors import InvalidInput

alerts_app = typer.Typer(no_args_is_help=True, help="Evaluate the alert rules and notify PagerDuty, Slack and Opsgenie.")

DbOption = typer.Option(None, "--db", help="Database URL or DuckDB file (default: PAYDASH_DATABASE_URL).", show_default=False)
JsonOption = typer.Option(False, "--json", help="Print JSON.")
MAX_INTERVAL = 86_400  # seconds between evaluations: at most a day
MAX_LIMIT = 10_000  # state changes `alerts status` shows


def _setup_logging() -> None:
    logger = logging.getLogger("paydash.alerts")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ"))
        logging.Formatter.converter = __import__("time").gmtime
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _context(db: str | None):  # noqa: ANN202
    """(settings, rules, read-only warehouse that never holds a DuckDB file between evaluations)."""
    from paydash.alerts.rules import load_rules
    from paydash.cli import OPENED_WAREHOUSES
    from paydash.settings import load_settings
    from paydash.warehouse.engine import Warehouse

    settings = load_settings()
    rules, _source = load_rules(settings)
    wh = Warehouse(db or settings.database_url, settings, read_only=True, hold_duckdb_file=False)
    OPENED_WAREHOUSES.append(wh)
    return settings, rules, wh


def _sender(settings):  # noqa: ANN001, ANN202
    from paydash.alerts.channels import Sender

    return Sender(timeout=float(settings.alert_http_timeout))


def parse_time(text: str, option: str) -> datetime:
    """'2026-11-20', '2026-11-20T10:00', '2026-11-20 10:00:00Z', '...+01:00' -> naive UTC (naive input is UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a time; write e.g. 2026-11-20T10:00 (UTC) or "
                           "2026-11-20T11:00+01:00") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00
            parsed = datetime.min
    if not 1970 <= parsed.year <= 2199:
        raise InvalidInput(f"{option} {text} is outside the times paydash handles (the years 1970 to 2199)")
    return parsed.replace(microsecond=0)


def _print_result(result, as_json: bool) -> None:  # noqa: ANN001
    from paydash.jsonout import jsonable as to_jsonable

    if as_json:
        typer.echo(json.dumps(to_jsonable({
            "at": result.at,
            "values": {name: {"value": v.value, "volume": v.volume} for name, v in result.values.items()},
            "transitions": [t.__dict__ for t in result.transitions],
            "notifications": [{"rule": n.rule, "channel": n.channel, "action": n.action, "dedup_key": n.dedup_key}
                              for n in result.notifications],
            "delivered": result.delivered,
            "problems": result.problems,
        }), indent=2))
        return
    typer.echo(f"evaluated at {result.at:%Y-%m-%d %H:%M:%S} UTC")
    for name, value in result.values.items():
        shown = "no data" if value.value is None else f"{value.value:.4g}"
        typer.echo(f"  {name}: {shown} (volume {value.volume})")
    for t in result.transitions:
        typer.echo(f"  {t.rule}: {t.from_state} -> {t.to_state}")
    if result.delivered:
        typer.echo("  delivery: " + ", ".join(f"{k} {v}" for k, v in result.delivered.items()))


@alerts_app.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="Evaluate the rules once and deliver (required: use `watch` to loop)."),
    as_json: bool = JsonOption,
    db: Optional[str] = DbOption,
) -> None:
    """Evaluate every rule now, update the state store and send the notifications."""
    from paydash.alerts.runner import run_once
    from paydash.state import open_state

    if not once:
        raise InvalidInput("`paydash alerts run` needs --once; use `paydash alerts watch` to evaluate on a schedule")
    _setup_logging()
    settings, rules, wh = _context(db)
    sender = _sender(settings)
    try:
        _print_result(run_once(wh, rules, open_state(settings).alerts, settings, sender), as_json)
    finally:
        sender.close()


@alerts_app.command("watch")
def watch(
    interval: int = typer.Option(60, "--interval", help="Seconds between evaluations."),
    db: Optional[str] = DbOption,
) -> None:
    """Evaluate the rules every --interval seconds until stopped (Ctrl-C)."""
    from paydash.alerts.channels import channel_configured
    from paydash.alerts.runner import watch as watch_loop
    from paydash.state import open_state

    if not 0 < interval <= MAX_INTERVAL:
        raise InvalidInput(f"--interval must be 1 to {MAX_INTERVAL:,} seconds (a day)")
    _setup_logging()
    settings, rules, wh = _context(db)
    log = logging.getLogger("paydash.alerts")
    for channel in sorted({r.channel for r in rules}):
        if not channel_configured(channel, settings):
            from paydash.alerts.channels import SETTING_OF_CHANNEL

            log.warning("alerts: rules route to %s but %s is not set; their notifications will wait in the outbox",
                        channel, SETTING_OF_CHANNEL[channel])
    store = open_state(settings)
    log.info("alerts: watching %d rules every %d s (state in %s)", len(rules), interval, store.display_url)
    sender = _sender(settings)
    try:
        watch_loop(wh, rules, store.alerts, settings, sender, interval,
                   report=lambda r: [log.info("alerts: %s %s -> %s", t.rule, t.from_state, t.to_state)
                                     for t in r.transitions])
    finally:
        sender.close()


@alerts_app.command("replay")
def replay(
    start: str = typer.Option(..., "--from", help="First evaluation time, UTC unless an offset is given (2026-11-20T10:00)."),
    end: str = typer.Option(..., "--to", help="Last evaluation time, included."),
    step: str = typer.Option("1m", "--step", help="Time between evaluations (30s, 1m, 5m...)."),
    dry_run: bool = typer.Option(True, "--dry-run", help="Only print (always: replay never sends nor touches the state store)."),
    as_json: bool = JsonOption,
    db: Optional[str] = DbOption,
) -> None:
    """Evaluate the rules over history as if run at each step; print every notification they would send."""
    from paydash.alerts.rules import parse_duration
    from paydash.alerts.runner import replay as replay_rules
    from paydash.jsonout import jsonable as to_jsonable

    try:
        every = parse_duration(step)
    except ValueError as exc:
        raise InvalidInput(f"--step: {exc}") from None
    settings, rules, wh = _context(db)
    notifications, problems = replay_rules(wh, rules, settings, parse_time(start, "--from"), parse_time(end, "--to"), every)
    for problem in problems:
        typer.echo(f"warning: {problem}", err=True)
    if as_json:
        typer.echo(json.dumps(to_jsonable(notifications), indent=2))
        return
    if not notifications:
        typer.echo("no notifications")
    for n in notifications:
        typer.echo(f"{n['at']:%Y-%m-%d %H:%M:%S}  {n['action']:<8} {n['channel']:<9} {n['rule']}  ({n['dedup_key']})")


@alerts_app.command("rules")
def show_rules(as_json: bool = JsonOption) -> None:
    """Print the effective rules and where they come from."""
    from paydash.alerts.channels import channel_configured
    from paydash.alerts.rules import load_rules
    from paydash.settings import load_settings

    settings = load_settings()
    rules, source = load_rules(settings)
    if as_json:
        typer.echo(json.dumps({"source": source, "rules": [r.as_dict() for r in rules]}, indent=2))
        return
    typer.echo(f"rules from {source}")
    for r in rules:
        d = r.as_dict()
        extra = f", min volume {r.min_volume}" if r.min_volume else ""
        extra += f", baseline {d['baseline']}" if "baseline" in d else ""
        configured = "" if channel_configured(r.channel, settings) else " (channel not configured)"
        typer.echo(f"  {r.name}: {r.metric} {r.comparison} {r.threshold:g} over {d['window']} for {d['for']}"
                   f"{extra} -> {r.channel} [{r.severity}]{configured}")


@alerts_app.command("status")
def status(
    limit: int = typer.Option(20, "--limit", help="How many recent state changes to show."),
    as_json: bool = JsonOption,
) -> None:
    """Each rule's state and the latest state changes, from the state store (PAYDASH_STATE_URL)."""
    from paydash.settings import load_settings
    from paydash.state import open_state

    if not 0 < limit <= MAX_LIMIT:
        raise InvalidInput(f"--limit must be 1 to {MAX_LIMIT:,}")
    store = open_state(load_settings())
    states, changes = store.alerts.current_states(), store.alerts.history(limit)
    if as_json:
        typer.echo(json.dumps({"states": states, "history": changes}, indent=2))
        return
    if not states:
        typer.echo(f"no alert state in {store.display_url} yet; run `paydash alerts run --once` or `paydash alerts watch`")
        return
    for s in states:
        typer.echo(f"{s['state']:<9} {s['rule']}  since {s['since'] or '-'}  value {s['value']}")
    if changes:
        typer.echo("recent changes:")
    for h in changes:
        sent = f"  [{h['channel']} {h['action']}: {h['delivery']}]" if h["channel"] else ""
        typer.echo(f"  {h['at']}  {h['rule']}: {h['from_state']} -> {h['to_state']}{sent}")
