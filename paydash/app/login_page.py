"""The sign-in page's HTML: server-rendered, no script, no external asset (inline CSS only)."""

from __future__ import annotations

from html import escape

# ?ended=<code> on /auth/login: a fixed message per code (never text from the URL)
MESSAGES = {
    "idle": "Your session ended after a while without activity; please sign in again.",
    "expired": "Your session reached its time limit; please sign in again.",
    "ended": "Your session has ended; please sign in again.",
    "changed": "Your account has changed; please sign in again.",
    "signed_out": "You are signed out.",
}

# the page itself: nothing but its own inline style and a form posting to itself
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'self'; "
            "base-uri 'none'")

_STYLE = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f6f7f9;color:#1f2328}
main{width:100%;max-width:22rem;margin:1rem;padding:2rem;background:#fff;border:1px solid #d8dde3;border-radius:.5rem}
h1{font-size:1.5rem;margin:0 0 .25rem}
p.sub{margin:0 0 1.5rem;color:#59636e}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input{width:100%;padding:.55rem .6rem;font-size:1rem;border:1px solid #b8c0c8;border-radius:.35rem}
input:focus{outline:2px solid #5b6cf0;border-color:#5b6cf0}
button,a.button{display:block;width:100%;margin-top:1.25rem;padding:.6rem;font-size:1rem;font-weight:600;
text-align:center;border-radius:.35rem;cursor:pointer;text-decoration:none}
button{border:0;background:#4051d9;color:#fff}
a.button{border:1px solid #b8c0c8;color:#1f2328;background:#fff}
.msg{padding:.6rem .75rem;border-radius:.35rem;margin-bottom:1rem}
.error{background:#fdecec;border:1px solid #f3b4b4;color:#8a1c1c}
.info{background:#eef3fd;border:1px solid #bcd0f5;color:#1d3f7a}
.or{text-align:center;color:#59636e;margin:1.25rem 0 0}
"""


def render(*, next_path: str, show_username: bool, show_password: bool, oidc_name: str | None = None,
           error: str = "", info: str = "", username: str = "") -> str:
    """The sign-in page. `error`/`info` are plain text (escaped here)."""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="same-origin">',
        "<title>Sign in · paydash</title>",
        f"<style>{_STYLE}</style>",
        "</head><body><main>",
        "<h1>paydash</h1>",
        '<p class="sub">Sign in to the payments dashboard.</p>',
    ]
    if error:
        parts.append(f'<div class="msg error" role="alert">{escape(error)}</div>')
    if info:
        parts.append(f'<div class="msg info" role="status">{escape(info)}</div>')
    if show_password:
        parts += [
            '<form method="post" action="/auth/login">',
            f'<input type="hidden" name="next" value="{escape(next_path)}">',
        ]
        if show_username:
            parts += [
                '<label for="username">User name</label>',
                f'<input id="username" name="username" autocomplete="username" required autofocus value="{escape(username)}">',
            ]
        parts += [
            '<label for="password">Password</label>',
            f'<input id="password" name="password" type="password" autocomplete="current-password" required'
            f'{"" if show_username else " autofocus"}>',
            '<button type="submit">Sign in</button>',
            "</form>",
        ]
    if oidc_name:
        from urllib.parse import quote

        if show_password:
            parts.append('<p class="or">or</p>')
        parts.append(f'<a class="button" href="/auth/oidc/login?next={escape(quote(next_path, safe=""))}">'
                     f"Sign in with {escape(oidc_name)}</a>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
