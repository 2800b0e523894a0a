"""The System page's "Stripe sync health" section: the problems first, then runs, object types and webhooks."""

from __future__ import annotations

import shutil
from pathlib import Path

from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse
from sync_states import fill_troubled, sync_database


class _Db:
    def __init__(self, path: Path) -> None:
        self.path = path

    def warehouse(self, read_only: bool = True) -> Warehouse:
        return Warehouse(str(self.path), Settings(), read_only=read_only)


def frame(at, column: str):  # noqa: ANN001, ANN201
    """The page's dataframe holding `column` (dataframes without on_select carry no key in AppTest)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    return found[0] if found else None


def test_system_page_shows_the_sync_health_problems_first(page, env, dashboard_db: Path, tmp_path: Path) -> None:  # noqa: ANN001
    synced = tmp_path / "synced.duckdb"
    shutil.copy(dashboard_db, synced)  # the dashboard's marts, and a troubled sync beside them
    wh, _ = sync_database(_Db(synced))
    fill_troubled(wh)
    wh.dispose()
    env.setenv("PAYDASH_DATABASE_URL", str(synced))
    at = page("system").run()
    assert not at.exception
    headers = [h.value for h in at.header]
    assert headers[:3] == ["Health", "Stripe sync health", "Tables"]
    errors, warnings = [e.value for e in at.error], [w.value for w in at.warning]
    assert any("the last sync \\(run\\_failed" in e and "Stripe answered 500" in e and "**Fix:**" in e for e in errors), errors
    assert any("recorded as running but has made no progress" in w for w in warnings), warnings
    assert any("3 events were read through the Events API but never delivered" in w for w in warnings), warnings
    # the problems come before the tables of the section
    assert [i.value for i in at.info if "never populated" in i.value]
    runs = frame(at, "Never delivered")
    assert list(runs["Run"]) == ["run_dead", "run_failed", "run_complete"]
    assert list(runs["Status"]) == ["running", "failed", "complete"]
    assert runs.iloc[2]["Objects read"] == "charges 2, refunds 1" and int(runs.iloc[2]["Never delivered"]) == 3
    objects = frame(at, "Window in progress").set_index("Object type")
    assert int(objects.loc["charges", "Stored"]) == 2 and objects.loc["charges", "Synced until"] == "2026-12-04 08:00:00 UTC"
    assert objects.loc["refunds", "Window in progress"] == "2026-12-02 12:00:00 UTC to 2026-12-03 12:00:00 UTC"
    undelivered = frame(at, "Event type")
    assert dict(zip(undelivered["Event type"], undelivered["Events"])) == {"charge.dispute.closed": 2, "charge.refunded": 1}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Newest webhook event"] == "Dec 04 11:55 UTC"


def test_system_page_without_a_sync_says_how_to_start_one(page) -> None:  # noqa: ANN001
    at = page("system").run()
    assert not at.exception and not at.error
    [info] = [i.value for i in at.info if "Stripe sync" in i.value]
    assert info.startswith("No Stripe sync has run against this database") and "paydash sync" in info
