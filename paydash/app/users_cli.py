"""`paydash users add|remove|list`: the dashboard's named users, kept in the state store
(PAYDASH_STATE_URL) with argon2 hashes only."""

from __future__ import annotations

import sys

import typer

from paydash import jsonout
from paydash.errors import InvalidInput
from paydash.settings import load_settings
from paydash.state import open_state
from paydash.state.users import validate_password, validate_role, validate_username

users_app = typer.Typer(no_args_is_help=True, help="Manage the dashboard's named users (roles: viewer, admin), "
                                                   "kept in the state store (PAYDASH_STATE_URL).")


@users_app.command("add")
def add(
    username: str = typer.Argument(..., metavar="USERNAME", help="User name (lower-case letters, digits, . _ - @)."),
    role: str = typer.Option("viewer", "--role", help="viewer or admin."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input (for scripts)."),
) -> None:
    """Add a user, or set a new password and role for an existing one (which ends their open sessions)."""
    name = validate_username(username)
    validate_role(role)
    store = open_state(load_settings())
    store.ping()  # an unreachable store is said before the password is asked
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise InvalidInput("there is no terminal to type the password in; pipe it in with --password-stdin")
    else:
        password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    validate_password(password)
    existed = store.users.get(name) is not None
    store.users.add(name, password, role)
    typer.echo(f"{'updated' if existed else 'added'} {name} ({role}) in the state store {store.display_url}")


@users_app.command("remove")
def remove(username: str = typer.Argument(..., metavar="USERNAME", help="User name.")) -> None:
    """Remove a user; their open dashboard sessions end at once."""
    store = open_state(load_settings())
    store.users.remove(username)
    typer.echo(f"removed {username.strip().lower()} from the state store {store.display_url}")


@users_app.command("list")
def list_users(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The users, their roles and when they were added (never their hashes)."""
    store = open_state(load_settings())
    users = store.users.all()
    if as_json:
        listed = [{"username": u.username, "role": u.role, "created_at": u.created_at} for u in users.values()]
        typer.echo(jsonout.dumps({"state_store": store.display_url, "users": listed}))
        return
    if not users:
        typer.echo(f"no users in the state store {store.display_url}; the dashboard uses the team password "
                   "(PAYDASH_PASSWORD) if set")
        return
    width = max(len(u) for u in users)
    for user in users.values():
        typer.echo(f"{user.username:<{width}}  {user.role:<6}  {user.created_at}")
