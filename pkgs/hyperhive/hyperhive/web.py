"""One web layer for the dashboard and every agent's page (docs/security.md).

Both apps are made by `create_web_app`, which installs, in this order, for every request:

1. the Host policy: only IP literals, ``localhost``, ``*.localhost`` and this machine's own
   name (anything else is DNS rebinding) — 403;
2. authentication: every route but the app's public paths (its static shell pages) and
   ``/static/*`` needs ``Authorization: Bearer <key>``; the key is checked in constant time
   by the app's `KeyCheck` — 401 with ``WWW-Authenticate: Bearer``;
3. the Origin policy: a request that changes state (not GET/HEAD) must come from this
   page's own origin when a browser says where it comes from — 403;
4. errors as JSON, ``{"ok": false, "error": "..."}`` with the error's status, rendered once;
5. security headers on every response: a CSP without inline script, no framing, no
   referrer, ``nosniff``, same-origin opener and resource policies, ``no-store`` on all but
   static files; never a CORS header.

No credential of ours is ever a cookie: cookies ignore ports, so one set by the dashboard
would travel to a page a hostile agent serves on its own port.

Architecture Invariant: this module imports nothing from the daemon's packages; the
per-agent web UI (inside a container) uses it too.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from hyperhive.errors import Forbidden, HyperhiveError

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KeyCheck = Callable[[str], bool]
"""Whether a presented bearer key is valid now (constant-time inside)."""

KEY_CHECK: web.AppKey[KeyCheck] = web.AppKey("key_check")
PUBLIC: web.AppKey[frozenset[str]] = web.AppKey("public")
LOGIN_HINT: web.AppKey[str] = web.AppKey("login_hint")
APP_NAME: web.AppKey[str] = web.AppKey("app_name")
CHECK_HOST: web.AppKey[bool] = web.AppKey("check_host")

SAFE_METHODS = frozenset({"GET", "HEAD"})
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
SSE_PING_SECONDS = 15.0
SECURITY_HEADERS = {
    # Only our own script, style and connections; no framing, so a two-click DESTR0Y
    # cannot be clickjacked; no inline script, so injected markup cannot run.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'; connect-src 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # A page an agent serves and that this page opened (or that opened it) gets no handle
    # on this window; other origins cannot embed our responses as scripts or images.
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# -- policies ------------------------------------------------------------------------------


@functools.cache
def machine_names() -> frozenset[str]:
    """This machine's own names, which a browser may use in the Host header."""
    # Not getfqdn(): it asks DNS, which may hang in a container without one.
    return frozenset({"localhost", socket.gethostname().lower()})


def trusted_host(host: str) -> bool:
    """Whether a Host header names this machine (an IP, localhost, or its own hostname).

    Anything else is a DNS-rebinding attempt: a foreign site resolving its name to
    127.0.0.1 would otherwise be "same-origin" with this page.
    """
    try:
        name = (urlsplit(f"//{host}").hostname or "").lower()
    except ValueError:  # e.g. an unbalanced "[" in the Host header
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name in machine_names() or name.endswith(".localhost")
    return True


def cross_origin(request: web.Request) -> str | None:
    """Why `request` looks cross-origin, or None when it is same-origin (or not a browser)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in SAFE_FETCH_SITES:
        return f"Sec-Fetch-Site is {site[:40]!r}"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        netloc = ""
    # Host and port only: a TLS proxy in front changes the scheme, not who the page is.
    if origin == "null" or netloc != request.host.lower():
        return f"Origin {origin[:100]!r} is not this page's"
    return None


def bearer(request: web.Request) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, if any."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def is_public(request: web.Request) -> bool:
    """Static files and the app's shell pages need no key (they hold no hive data)."""
    path = request.path
    return path.startswith("/static/") or (
        request.method in SAFE_METHODS and path in request.app[PUBLIC]
    )


class Unauthorized(HyperhiveError):
    """No valid operator key with the request."""

    status = 401


# -- middleware ----------------------------------------------------------------------------


def error_response(status: int, message: str) -> web.Response:
    """The JSON error every route of both apps answers with."""
    response = web.json_response({"ok": False, "error": message}, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="hyperhive"'
    return response


@web.middleware
async def policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host, key and Origin checks, then the handler; errors rendered as JSON once."""
    app = request.app
    try:
        if app[CHECK_HOST] and not trusted_host(request.host):
            raise Forbidden(
                f"unknown Host {request.host[:100]!r} refused (DNS rebinding guard): open the"
                " page by IP address, localhost or this machine's hostname"
            )
        if not is_public(request):
            key = bearer(request)
            if key is None or not app[KEY_CHECK](key):
                raise Unauthorized(app[LOGIN_HINT])
        if request.method not in SAFE_METHODS and (why := cross_origin(request)):
            raise Forbidden(f"cross-origin request refused ({why}): use the page itself")
        return await handler(request)
    except HyperhiveError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"request body too large ({exc.text}): send less")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # a request boundary: log it, answer 500, keep serving
        logger.exception("%s: request %s %s failed", app[APP_NAME], request.method, request.path)
        return error_response(500, f"internal error: see the {app[APP_NAME]} log")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    for cors in [h for h in response.headers if h.lower().startswith("access-control-")]:
        del response.headers[cors]
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"


def create_web_app(
    *,
    name: str,
    key_check: KeyCheck,
    public: Iterable[str],
    login_hint: str,
    client_max_size: int = 1024 * 1024,
    check_host: bool = True,
) -> web.Application:
    """An aiohttp app with the policy above; the caller adds its routes.

    `name` names the app in logs and 500 errors ("hive-c0re", "web UI"); `public` is the
    set of GET paths served without a key (shell pages with no hive data); `login_hint`
    is the 401 message: how the operator gets a key. `check_host=False` (a dashboard bound
    beyond loopback on purpose) accepts any Host: the key still guards every route.
    """
    app = web.Application(middlewares=[policy], client_max_size=client_max_size)
    app[KEY_CHECK] = key_check
    app[PUBLIC] = frozenset(public)
    app[LOGIN_HINT] = login_hint
    app[APP_NAME] = name
    app[CHECK_HOST] = check_host
    app.on_response_prepare.append(_security_headers)
    return app


# -- SSE -----------------------------------------------------------------------------------


async def open_sse(
    request: web.Request, ping_seconds: float = SSE_PING_SECONDS
) -> EventSourceResponse:
    """A prepared SSE response (aiohttp-sse) that pings every `ping_seconds`."""
    response = EventSourceResponse(sep="\n")
    response.ping_interval = ping_seconds
    await response.prepare(request)
    return response
