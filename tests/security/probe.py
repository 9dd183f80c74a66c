"""A hostile agent's HTTP client: the standard library only, no browser headers.

Run as a plain process (``python3 probe.py plan.json out.json [key-file]``), on the host or
inside an agent's container (which has the host's /usr, so the same python3). With a
key file (an agent's own ``/run/hive/web-key``), ``{own_key}`` in a header value is replaced
by what that file holds: the one credential the agent really has. The plan is a JSON
list of requests ``{"method", "url", "headers", "body"}``; the answer is one
``{"status", "body", "headers"}`` per request (``status`` 0 and ``error`` when the request
could not be made). A response that starts streaming is read for at most a few seconds.
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse
from typing import Any

READ_BYTES = 64 * 1024
TIMEOUT_SECONDS = 5.0


def one(request: dict[str, Any]) -> dict[str, Any]:
    """Send one request; what came back."""
    url = urllib.parse.urlsplit(request["url"])
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=TIMEOUT_SECONDS)
    target = url.path + (f"?{url.query}" if url.query else "")
    body = request.get("body")
    try:
        conn.request(
            request["method"],
            target,
            body=body.encode() if isinstance(body, str) else None,
            headers=request.get("headers") or {},
        )
        resp = conn.getresponse()
        try:
            data = resp.read(READ_BYTES)
        except (TimeoutError, OSError):  # an open stream: what arrived is enough
            data = b""
        return {
            "status": resp.status,
            "body": data.decode(errors="replace"),
            "headers": {k.lower(): v for k, v in resp.getheaders()},
        }
    except (OSError, http.client.HTTPException) as exc:
        return {"status": 0, "error": f"{type(exc).__name__}: {exc}", "body": "", "headers": {}}
    finally:
        conn.close()


def main() -> int:
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            own_key = f.read().strip()
        for request in plan:
            headers = request.get("headers") or {}
            for name, value in headers.items():
                headers[name] = value.replace("{own_key}", own_key)
    results = [one(r) for r in plan]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
    print(f"probed {len(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
