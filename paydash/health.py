"""What the System page reports beside the warehouse's numbers: Redis health, versions,
the environment (secrets only as set / not set) and the downloadable system report.

Redis is checked with a few lines of its protocol (RESP) over a socket: AUTH when the URL
has a password, PING, INFO server. paydash uses nothing else of Redis, so no client
library is needed for it.
"""

from __future__ import annotations

import json
import platform
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlsplit

from paydash import jsonout
from paydash.settings import SETTINGS, Settings
from paydash.warehouse.engine import safe_url


# -- Redis -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RedisHealth:
    ok: bool
    ms: float | None
    version: str | None
    message: str  # what went wrong, or '' when ok
    where: str  # host:port/db, never the password


def redis_target(url: str) -> tuple[str, int, int, str | None, str | None, bool]:
    """(host, port, db, username, password, tls) of a redis:// or rediss:// URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"PAYDASH_REDIS_URL must start with redis:// or rediss:// (got {parts.scheme or 'nothing'}://)")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("the port of PAYDASH_REDIS_URL is not a number") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"the database of PAYDASH_REDIS_URL must be a number (redis://host:6379/0), not {path!r}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", port, int(path or 0), username, password, parts.scheme == "rediss"


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        data = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(reader) -> Any:  # noqa: ANN001 - a socket file
    line = reader.readline()
    if not line:
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise PermissionError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode(errors="replace")
    raise ConnectionError(f"unexpected Redis reply {line[:40]!r}")


def redis_health(url: str, timeout: float = 3.0) -> RedisHealth:
    """PING the Redis at `url`: whether it answers, in how many ms, and its version."""
    try:
        host, port, db, username, password, tls = redis_target(url)
    except ValueError as exc:
        return RedisHealth(False, None, None, str(exc), "")
    where = f"{host}:{port}/{db}"
    try:
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host) if tls else raw
            with sock, sock.makefile("rb") as reader:
                if password is not None:
                    sock.sendall(_command("AUTH", *([username] if username else []), password))
                    _reply(reader)
                if db:
                    sock.sendall(_command("SELECT", str(db)))
                    _reply(reader)
                sock.sendall(_command("PING"))
                pong = _reply(reader)
                ms = (time.perf_counter() - started) * 1000
                sock.sendall(_command("INFO", "server"))
                info = _reply(reader) or ""
        version = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("redis_version:")), None)
        if pong != "PONG":
            return RedisHealth(False, ms, version, f"Redis answered {pong!r} to PING", where)
        return RedisHealth(True, ms, version, "", where)
    except PermissionError as exc:
        return RedisHealth(False, None, None, f"Redis at {where} refused: {exc}; check the password in PAYDASH_REDIS_URL", where)
    except (OSError, ConnectionError, ValueError) as exc:
        return RedisHealth(False, None, None, f"cannot reach Redis at {where}: {exc}; check PAYDASH_REDIS_URL and that it runs", where)


# -- versions and environment ----------------------------------------------------------------
@lru_cache(maxsize=1)
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # fixed for the life of the process; reading package metadata costs a few ms each
    out = []
    for name in ("paydash", "streamlit", "duckdb", "SQLAlchemy", "psycopg", "pandas", "pyarrow"):
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def package_versions() -> dict[str, str]:
    return {"Python": platform.python_version(), "platform": platform.platform(terse=True), **dict(_installed_versions())}


def environment(settings: Settings) -> list[dict[str, str]]:
    """Every setting with its value; secrets only as 'set' / 'not set', URLs without passwords."""
    rows = []
    for s in SETTINGS:
        value = getattr(settings, s.name)
        if s.secret:
            shown = "set" if value not in (None, "") else "not set"
        elif s.name == "database_url":
            shown = safe_url(str(value)) if "://" in str(value) else str(value)
        else:
            shown = str(value)
        rows.append({"setting": s.env, "value": shown, "default": "yes" if s.name not in settings.values else "no"})
    return rows


# -- the report --------------------------------------------------------------------------------
def report_json(report: dict[str, Any]) -> str:
    """The report as JSON, written by the serialiser `paydash ... --json` uses (paydash.jsonout)."""
    return jsonout.dumps(report) + "\n"


def _md_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _md_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(r.get(h)) for h in header) + " |" for r in rows]
    return lines + [""]


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a heading and a table per section."""
    data = jsonout.jsonable(report)
    lines = ["# paydash system report", "", f"Generated {data.get('generated_at', '')} by {_md_cell(data.get('generated_by'))}.", ""]
    for key, value in data.items():
        if key in ("generated_at", "generated_by"):
            continue
        lines += [f"## {key.replace('_', ' ').capitalize()}", ""]
        if isinstance(value, dict):
            lines += _md_table([{"name": k, "value": v if not isinstance(v, (dict, list)) else json.dumps(v)} for k, v in value.items()])
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines += _md_table(value)
        elif isinstance(value, list):
            lines += ["(none)", ""] if not value else [f"- {_md_cell(v)}" for v in value] + [""]
        else:
            lines += [_md_cell(value), ""]
    return "\n".join(lines)

