"""Ask for an apply_commit on the manager's socket, as hm1nd's MCP server would (VM test).

Identity is the socket: whoever talks to /run/hyperhive/manager/mcp.sock is the manager,
so root on the host can stand in for the manager's claude. Prints the one response line.
"""

from __future__ import annotations

import json
import socket
import sys


def main() -> int:
    """Send one request_apply_commit and print the daemon's answer."""
    agent, commit_ref = sys.argv[1], sys.argv[2]
    request = {
        "cmd": "request_apply_commit",
        "agent": agent,
        "commit_ref": commit_ref,
        "description": "VM test: add a marker file",
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect("/run/hyperhive/manager/mcp.sock")
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = sock.makefile("r", encoding="utf-8").readline()
    print(reply.strip())
    return 1 if json.loads(reply).get("kind") == "err" else 0


if __name__ == "__main__":
    sys.exit(main())
