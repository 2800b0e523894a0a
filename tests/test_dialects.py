"""Dialect snapshots: the odd cases of the one query layer, compiled for DuckDB, PostgreSQL and
ClickHouse, compared with the SQL text each engine is meant to get (warehouse/dialects.py and
warehouse/expressions.py hold the spellings). A change of spelling shows here as a diff; the
engine-parametrised suite checks what the SQL computes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import paydash.warehouse.dialects  # noqa: F401 - ClickHouse's compile hooks
from paydash.errors import ConfigError
from paydash.queries.operations import percentile
from paydash.queries.sql import local_date
from paydash.warehouse.expressions import icontains, istarts_with, iso_utc, keyset_before, local_timestamp

DIALECTS = {
    "duckdb": sa.create_engine("duckdb:///:memory:").dialect,  # no connection is made
    "postgresql": postgresql.psycopg.dialect(),
    "clickhouse": sa.create_engine("clickhousedb://localhost").dialect,
}
p = sa.table("p", sa.column("created_at", sa.DateTime), sa.column("charge_id", sa.Text),
             sa.column("amount_usd", sa.Numeric(12, 2)))
CASES = {
    "timezone_day": lambda: sa.select(local_date(p.c.created_at, "America/New_York")),
    "percentile": lambda: sa.select(percentile(p.c.amount_usd, 0.95)),
    "keyset_seek": lambda: sa.select(p.c.charge_id).where(
        keyset_before((p.c.created_at, p.c.charge_id), (datetime(2024, 3, 1, 12), "ch_x"))),
    "like_escape": lambda: sa.select(p.c.charge_id).where(icontains(p.c.charge_id, "50%"), istarts_with(p.c.charge_id, "a_b")),
    "iso_utc": lambda: sa.select(iso_utc(p.c.created_at)),
    "interval": lambda: sa.select(p.c.created_at + timedelta(hours=-5), sa.extract("epoch", p.c.created_at - p.c.created_at)),
}
EXPECTED = {
    "timezone_day": {
        "duckdb": "SELECT CAST(timezone('America/New_York', timezone('UTC', p.created_at)) AS DATE) AS local_timestamp_1 FROM p",
        "postgresql": "SELECT CAST(timezone('America/New_York', timezone('UTC', p.created_at)) AS DATE) AS local_timestamp_1 FROM p",
        "clickhouse": "SELECT CAST(toTimeZone(`p`.`created_at`, 'America/New_York') AS DATE) AS `local_timestamp_1` FROM `p`",
    },
    "percentile": {
        "duckdb": 'SELECT percentile_cont($1) WITHIN GROUP (ORDER BY p.amount_usd) AS percentile_cont_1 FROM p',
        "postgresql": 'SELECT percentile_cont(%(percentile_cont_2)s) WITHIN GROUP (ORDER BY p.amount_usd) AS percentile_cont_1 FROM p',
        "clickhouse": 'SELECT quantileExactInclusiveOrNull(%(percentile_cont_2)s)(`p`.`amount_usd`) AS `percentile_cont_1` FROM `p`',
    },
    "keyset_seek": {
        "duckdb": 'SELECT p.charge_id FROM p WHERE p.created_at <= $1 AND (p.created_at, p.charge_id) < ($1, $2)',
        "postgresql": 'SELECT p.charge_id FROM p WHERE p.created_at <= %(param_1)s::TIMESTAMP WITHOUT TIME ZONE AND (p.created_at, p.charge_id) < (%(param_1)s::TIMESTAMP WITHOUT TIME ZONE, %(param_2)s::VARCHAR)',
        "clickhouse": 'SELECT `p`.`charge_id` FROM `p` WHERE `p`.`created_at` <= %(param_1)s AND (`p`.`created_at`, `p`.`charge_id`) < (%(param_1)s, %(param_2)s)',
    },
    "like_escape": {
        "duckdb": "SELECT p.charge_id FROM p WHERE p.charge_id ILIKE $1 ESCAPE '\\' AND (p.charge_id ILIKE $2 ESCAPE '\\')",
        "postgresql": "SELECT p.charge_id FROM p WHERE p.charge_id ILIKE %(charge_id_1)s::VARCHAR ESCAPE '\\' AND (lower(p.charge_id) LIKE %(param_1)s::VARCHAR ESCAPE '\\')",
        "clickhouse": 'SELECT `p`.`charge_id` FROM `p` WHERE `p`.`charge_id` ILIKE %(charge_id_1)s AND (`p`.`charge_id` ILIKE %(param_1)s)',
    },
    "iso_utc": {
        "duckdb": "SELECT strftime(p.created_at, '%Y-%m-%dT%H:%M:%SZ') AS iso_utc_1 FROM p",
        "postgresql": 'SELECT to_char(p.created_at, \'YYYY-MM-DD"T"HH24:MI:SS"Z"\') AS iso_utc_1 FROM p',
        "clickhouse": "SELECT concat(replaceOne(toString(toDateTime(`p`.`created_at`, 'UTC')), ' ', 'T'), 'Z') AS `iso_utc_1` FROM `p`",
    },
    "interval": {
        "duckdb": 'SELECT p.created_at + $1 AS anon_1, EXTRACT(epoch FROM p.created_at - p.created_at) AS anon_2 FROM p',
        "postgresql": 'SELECT p.created_at + %(created_at_1)s AS anon_1, EXTRACT(epoch FROM p.created_at - p.created_at) AS anon_2 FROM p',
        "clickhouse": "SELECT addMicroseconds(`p`.`created_at`, toUnixTimestamp64Micro(toDateTime64(%(created_at_1)s, 6, 'UTC'))) AS `anon_1`, (toUnixTimestamp64Micro(toDateTime64(toDateTime64(toDateTime64(`p`.`created_at`, 6, 'UTC') - toDateTime64(`p`.`created_at`, 6, 'UTC'), 6, 'UTC'), 6, 'UTC')) / 1000000.0) AS `anon_2` FROM `p`",
    },
}


@pytest.mark.parametrize("dialect", list(DIALECTS))
@pytest.mark.parametrize("case", list(CASES))
def test_the_odd_cases_compile_to_each_engines_sql(case: str, dialect: str) -> None:
    sql = " ".join(str(CASES[case]().compile(dialect=DIALECTS[dialect])).split())
    assert sql == EXPECTED[case][dialect]


@pytest.mark.parametrize("zone", ["America/New_York'; DROP TABLE p; --", "Mars/Olympus", "", "../etc/passwd"])
def test_a_zone_becomes_sql_text_only_when_it_is_a_real_zone_name(zone: str) -> None:
    with pytest.raises(ConfigError, match="timezone"):
        local_timestamp(p.c.created_at, zone)
