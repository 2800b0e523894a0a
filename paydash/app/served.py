"""What `paydash serve` hands the dashboard it serves, in the same process.

`paydash serve` builds the whole `Settings` once (environment, `.env`, secrets.toml, then
its own flags such as `--db` and the demo's one-run password) and calls `configure()`
before the server starts. The pages read it through `app.data.settings()`; nothing rebuilds
settings from a hand-picked subset (the bug that once lost a setting between `paydash serve`
and the dashboard). Without `paydash serve` (AppTest, a bare `streamlit run`), there is
nothing configured and the app loads the settings itself.
"""

from __future__ import annotations

from paydash.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings


def current() -> Settings | None:
    return _settings


def reset() -> None:
    """For tests: forget what a server configured."""
    global _settings
    _settings = None
