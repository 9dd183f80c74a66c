"""A stand-in for the claude CLI, for the NixOS VM test only (checks/lifecycle.nix).

The VM has no network and no Anthropic account, so the agent's harness runs this instead
of claude (hyperhive.claudePackage). It speaks what the harness relies on:

- argv as the harness builds it (``--print --verbose --output-format stream-json
  --mcp-config <file> ...``), the prompt on stdin;
- the MCP servers of ``--mcp-config`` really started and called over stdio (newline
  delimited JSON-RPC: initialize, notifications/initialized, tools/call), so the reply
  goes through the agent's real socket and broker;
- stream-json on stdout: a ``system``/``init`` line, an ``assistant`` line with the
  ``tool_use``, a ``user`` line with its ``tool_result``, a closing ``assistant`` text and
  a ``result`` line, in the shapes claude 2.1.330 prints.

Its only "model": a prompt containing ``ping-<token>`` makes it send ``pong-<token>`` to
the operator with the hyperhive ``send`` tool; anything else gets a text-only turn.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

PROTOCOL_VERSION = "2025-06-18"


def emit(event: dict[str, Any]) -> None:
    """Write one stream-json line."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def option(argv: list[str], flag: str) -> str | None:
    """The value following `flag` in argv, if any."""
    if flag in argv:
        index = argv.index(flag)
        if index + 1 < len(argv):
            return argv[index + 1]
    return None


class McpClient:
    """Just enough of an MCP stdio client to call one tool."""

    def __init__(self, spec: dict[str, Any]) -> None:
        env = dict(os.environ)
        env.update(spec.get("env") or {})
        self.proc = subprocess.Popen(
            [spec["command"], *spec.get("args", [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.next_id = 0

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one JSON-RPC request and return its result (notifications are skipped)."""
        self.next_id += 1
        self._write({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
        raise RuntimeError(f"MCP server exited during {method}")

    def notify(self, method: str) -> None:
        """Send one JSON-RPC notification."""
        self._write({"jsonrpc": "2.0", "method": method})

    def close(self) -> None:
        """Close the server's stdin (its signal to exit) and wait for it."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()


def main() -> int:
    """Run one turn, as `claude --print --output-format stream-json` would."""
    argv = sys.argv[1:]
    prompt = sys.stdin.read()
    session = str(uuid.uuid4())
    model = option(argv, "--model") or "haiku"
    servers: dict[str, Any] = {}
    config_path = option(argv, "--mcp-config")
    if config_path:
        with open(config_path) as config:
            servers = json.load(config).get("mcpServers", {})

    emit(
        {
            "type": "system",
            "subtype": "init",
            "session_id": session,
            "model": model,
            "tools": ["Bash", "Edit", "Glob", "Grep", "Read", "Write"]
            + [f"mcp__{key}__send" for key in servers if key == "hyperhive"],
            "mcp_servers": [{"name": key, "status": "connected"} for key in servers],
            "claude_code_version": "2.1.330",
        }
    )

    match = re.search(r"ping-([0-9a-z]+)", prompt)
    text = "nothing to do"
    if match and "hyperhive" in servers:
        body = f"pong-{match.group(1)}"
        tool_id = "toolu_standin_" + uuid.uuid4().hex[:12]
        arguments = {"to": "operator", "body": body}
        emit(
            {
                "type": "assistant",
                "session_id": session,
                "parent_tool_use_id": None,
                "message": {
                    "id": "msg_standin",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [
                        {
                            "type": "tool_use",
                            "id": tool_id,
                            "name": "mcp__hyperhive__send",
                            "input": arguments,
                        }
                    ],
                },
            }
        )
        client = McpClient(servers["hyperhive"])
        client.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "stand-in-claude", "version": "2.1.330"},
            },
        )
        client.notify("notifications/initialized")
        result = client.request("tools/call", {"name": "send", "arguments": arguments})
        client.close()
        content = result.get("content", [])
        emit(
            {
                "type": "user",
                "session_id": session,
                "parent_tool_use_id": None,
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": tool_id,
                            "content": content,
                            "is_error": bool(result.get("isError")),
                        }
                    ],
                },
            }
        )
        text = f"sent {body} to operator"

    emit(
        {
            "type": "assistant",
            "session_id": session,
            "parent_tool_use_id": None,
            "message": {
                "id": "msg_standin",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
            },
        }
    )
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 1,
            "result": text,
            "session_id": session,
            "total_cost_usd": 0,
            "duration_ms": 1,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
