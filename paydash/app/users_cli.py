"""`paydash users add|remove|list`: the dashboard's named users (argon2 hashes in a JSON file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from paydash.app import auth
from paydash.errors import InvalidInput
from paydash.settings import load_settings

users_app = typer.Typer(no_args_is_help=True, help="Manage the dashboard's named users (roles: viewer, admin).")

FileOption = typer.Option(None, "--file", help="Users file (default: PAYDASH_USERS_FILE, data/users.json).", show_default=False)


def _path(file: Path | None) -> Path:
    return file or Path(load_settings().users_file)


@users_app.command("add")
def add(
    username: str = typer.Argument(..., help="User name (lower-case letters, digits, . _ - @)."),
    role: str = typer.Option("viewer", "--role", help="viewer or admin."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input (for scripts)."),
    file: Optional[Path] = FileOption,
) -> None:
    """Add a user, or set a new password and role for an existing one."""
    name = auth.validate_username(username)
    if role not in auth.ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(auth.ROLES)}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    path = _path(file)
    existed = name in auth.load_users(path)
    auth.add_user(path, name, password, role)
    typer.echo(f"{'updated' if existed else 'added'} {name} ({role}) in {path}")


@users_app.command("remove")
def remove(
    username: str = typer.Argument(..., help="User name."),
    file: Optional[Path] = FileOption,
) -> None:
    """Remove a user; their open dashboard sessions end at their next click."""
    path = _path(file)
    auth.remove_user(path, username)
    typer.echo(f"removed {auth.normalize_username(username)} from {path}")


@users_app.command("list")
def list_users(file: Optional[Path] = FileOption) -> None:
    """The users, their roles and when they were added (never their hashes)."""
    path = _path(file)
    users = auth.load_users(path)
    if not users:
        typer.echo(f"no users in {path}; the dashboard uses the team password (PAYDASH_PASSWORD) if set")
        return
    width = max(len(u) for u in users)
    for user in sorted(users.values(), key=lambda u: u.username):
        typer.echo(f"{user.username:<{width}}  {user.role:<6}  {user.created_at}")
