"""The access gate: one ASGI layer in front of every route the server has.

``--gradio-auth`` and ``--api-auth`` name the people who may use this server. Both the page's
backend (Gradio's ``/gradio_api/...`` routes, which generate and change settings) and the
A1111 API can do everything, so a login for one is a login for all: a request gets in with the
page's login cookie or with HTTP Basic credentials (RFC 7617) of any configured user. Without
either, a visitor gets only the login form at ``/`` and Gradio's ``POST /login`` that checks it;
every other path (API, docs, Gradio internals, files, extension routes) answers 401. Before
login nothing about the app is served: Gradio's own page shell would embed its API description.

The gate sits outside Gradio and FastAPI, so a route added later (an extension's) is covered
without knowing about it.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from starlette.requests import HTTPConnection

Credentials = tuple[tuple[str, str], ...]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
LOGIN_PATHS = ("/login", "/login/")


@dataclass(frozen=True)
class AccessPolicy:
    users: Credentials  # every (user, password) that may use the server

    @property
    def open(self) -> bool:
        return not self.users

    @classmethod
    def from_flags(cls, gradio_auth: Credentials, api_auth: Credentials) -> "AccessPolicy":
        return cls(tuple(dict.fromkeys((*gradio_auth, *api_auth))))


def page_users(gradio_auth: Credentials, api_auth: Credentials) -> Credentials:
    """Who the page's login form accepts: the page's own users, else the API's (so that
    ``--api-auth`` alone also guards the page, which can do all the API can)."""
    return gradio_auth or api_auth


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header, or None."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def credentials_match(given: tuple[str, str], allowed: Credentials) -> bool:
    """Every pair is compared, so the time taken does not reveal which user name exists."""
    matched = False
    for user, password in allowed:
        user_ok = secrets.compare_digest(given[0].encode("utf-8"), user.encode("utf-8"))
        password_ok = secrets.compare_digest(given[1].encode("utf-8"), password.encode("utf-8"))
        matched |= user_ok and password_ok
    return matched


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in</title><style>
body{{font-family:system-ui,sans-serif;display:flex;justify-content:center;margin-top:15vh;
background:#fafafa;color:#222}}@media (prefers-color-scheme:dark){{body{{background:#0b0f19;color:#eee}}}}
form{{display:flex;flex-direction:column;gap:.6em;min-width:18em}}input,button{{font-size:1em;padding:.45em}}
#login-error{{color:#c00;min-height:1.2em}}</style></head>
<body><form id="login-form"><h2>{message}</h2>
<label>Username<br><input type="text" name="username" autocomplete="username" required></label>
<label>Password<br><input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Login</button><div id="login-error" role="alert"></div></form>
<script>
document.getElementById("login-form").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const answer = await fetch("login", {{method: "POST", body: new URLSearchParams(new FormData(event.target))}});
  if (answer.ok) {{ location.reload(); return; }}
  document.getElementById("login-error").textContent = "Incorrect username or password.";
}});
</script></body></html>
"""


class AccessGate:
    """ASGI middleware enforcing an AccessPolicy. ``logged_in(connection)`` tells whether a
    request carries the page's login cookie (Gradio keeps those sessions)."""

    def __init__(self, app: Callable, policy: AccessPolicy, logged_in: Callable[[HTTPConnection], bool],
                 login_message: str):
        self.app = app
        self.policy = policy
        self.logged_in = logged_in
        self.login_page = LOGIN_PAGE.format(message=html.escape(login_message)).encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.policy.open or self.allowed(HTTPConnection(scope)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        method, path = scope.get("method", "GET"), scope.get("path", "")
        if path in LOGIN_PATHS and method == "POST":
            await self.app(scope, receive, send)  # the login form's own check
        elif path == "/" and method in ("GET", "HEAD"):
            await respond(send, 200, self.login_page, "text/html; charset=utf-8")
        else:
            body = json.dumps({"detail": "Not authenticated: log in, or send HTTP Basic credentials"})
            await respond(send, 401, body.encode("utf-8"), "application/json",
                          [(b"www-authenticate", b"Basic")])

    def allowed(self, connection: HTTPConnection) -> bool:
        given = basic_credentials(connection.headers.get("authorization"))
        if given is not None and credentials_match(given, self.policy.users):
            return True
        return self.logged_in(connection)


async def respond(send: Send, status: int, body: bytes, content_type: str,
                  headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode("ascii")),
                            (b"content-length", str(len(body)).encode("ascii")), *headers]})
    await send({"type": "http.response.body", "body": body})
