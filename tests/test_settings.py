"""Settings: declared once, documented, and read with env > .env > secrets.toml > default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paydash.errors import ConfigError
from paydash.settings import BY_NAME, SETTINGS, Settings, load_settings, settings_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.env for s in SETTINGS])
def test_every_setting_is_documented(setting) -> None:
    assert DOC.is_file(), "docs/configuration.md is missing; write it from `paydash settings --markdown`"
    doc = _normalized(DOC.read_text())
    assert f"`{setting.env}`" in doc, f"{setting.env} is not documented in docs/configuration.md"
    assert _normalized(setting.help) in doc, (
        f"the help of {setting.env} in docs/configuration.md differs from paydash/settings.py; "
        "regenerate the table with `paydash settings --markdown`"
    )


def test_settings_are_declared_once_with_help() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for s in SETTINGS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", s.name) and s.env == "PAYDASH_" + s.name.upper()
        assert s.help.strip().endswith((".", ")")), f"{s.env}: help should be a sentence"
        if s.default not in (None, ""):
            assert s.parse(str(s.default)) == s.default, f"{s.env}: the default does not parse as its own value"
    for line in settings_markdown().splitlines()[2:]:
        assert line.startswith("| `PAYDASH_")
    assert len(settings_markdown().splitlines()) == 2 + len(SETTINGS)


def test_defaults() -> None:
    s = load_settings(cwd=Path("/nonexistent-dir"), environ={})
    for setting in SETTINGS:
        assert getattr(s, setting.name) == setting.default
    assert s.timezone == "UTC" and s.payments_table == "mart_stripe_payments"


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """A working directory with both a .env file and a .streamlit/secrets.toml."""
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        'PAYDASH_DATABASE_URL = "postgresql://secrets@db/x"\n'
        'PAYDASH_TIMEZONE = "Asia/Tokyo"\n'
        'PAYDASH_POOL_SIZE = 7\n'
        "[paydash]\n"
        'daily_table = "analytics.daily_from_secrets"\n'
        "statement_timeout = 11\n"
    )
    (tmp_path / ".env").write_text(
        "PAYDASH_DATABASE_URL=postgresql://dotenv@db/x\n"
        "PAYDASH_TIMEZONE=Europe/Berlin\n"
        "# a comment\n"
    )
    return tmp_path


def test_precedence_env_over_dotenv_over_secrets_over_default(layered: Path) -> None:
    s = load_settings(cwd=layered, environ={"PAYDASH_DATABASE_URL": "postgresql://env@db/x"})
    assert s.database_url == "postgresql://env@db/x"  # environment
    assert s.timezone == "Europe/Berlin"  # .env over secrets.toml
    assert s.pool_size == 7  # secrets.toml, top-level env name, parsed
    assert s.daily_table == "analytics.daily_from_secrets"  # secrets.toml [paydash] short name
    assert s.statement_timeout == 11
    assert s.payments_table == "mart_stripe_payments"  # default
    assert s.cache_ttl_overview == 300

    without_env = load_settings(cwd=layered, environ={})
    assert without_env.database_url == "postgresql://dotenv@db/x"
    (layered / ".env").unlink()
    assert load_settings(cwd=layered, environ={}).database_url == "postgresql://secrets@db/x"
    assert load_settings(cwd=layered, environ={}).timezone == "Asia/Tokyo"


def test_process_environment_is_the_default_source(layered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYDASH_CACHE_TTL_EXPLORER", "15")
    monkeypatch.chdir(layered)
    s = load_settings()
    assert s.cache_ttl_explorer == 15 and s.timezone == "Europe/Berlin"


def test_an_empty_value_means_unset(layered: Path) -> None:
    # docker-compose passes `PAYDASH_DATABASE_URL=` for an unset variable: it must not hide .env or secrets
    s = load_settings(cwd=layered, environ={"PAYDASH_DATABASE_URL": "", "PAYDASH_TIMEZONE": ""})
    assert s.database_url == "postgresql://dotenv@db/x"
    assert s.timezone == "Europe/Berlin"
    with (layered / ".env").open("a") as env_file:
        env_file.write("PAYDASH_POOL_SIZE=\n")
    assert load_settings(cwd=layered, environ={}).pool_size == 7  # from secrets.toml
    assert load_settings(cwd=Path("/nonexistent-dir"), environ={"PAYDASH_POOL_SIZE": ""}).pool_size == BY_NAME["pool_size"].default


@pytest.mark.parametrize(
    "env, value, message",
    [
        ("PAYDASH_POOL_SIZE", "0", "positive"),
        ("PAYDASH_POOL_SIZE", "many", "PAYDASH_POOL_SIZE"),
        ("PAYDASH_STATEMENT_TIMEOUT", "-3", "PAYDASH_STATEMENT_TIMEOUT"),
        ("PAYDASH_TIMEZONE", "Mars/Olympus", "IANA"),
        ("PAYDASH_PAYMENTS_TABLE", "mart; DROP TABLE x", "PAYDASH_PAYMENTS_TABLE"),
        ("PAYDASH_DAILY_TABLE", "a.b.c", "schema-qualified"),
    ],
)
def test_invalid_values_name_the_variable(env, value, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(cwd=Path("/nonexistent-dir"), environ={env: value})


def test_invalid_secrets_file(tmp_path: Path) -> None:
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="secrets.toml"):
        load_settings(cwd=tmp_path, environ={})


def test_replace() -> None:
    s = Settings().replace(timezone="Europe/Berlin", pool_size=None)
    assert s.timezone == "Europe/Berlin" and s.pool_size == BY_NAME["pool_size"].default
    assert Settings().timezone == "UTC"  # the original is unchanged
    with pytest.raises(AttributeError):
        Settings().replace(no_such_setting=1)
    with pytest.raises(AttributeError):
        Settings().no_such_setting  # noqa: B018
