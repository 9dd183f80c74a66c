"""A tiny MCP stdio server for the stand-in tests: one tool ``add`` that logs its calls.

Each call appends ``a+b`` to the file named by ``ADDER_LOG``, so a test can prove claude
really called the tool (not that the stand-in merely claimed so).
"""

from __future__ import annotations

import os
from pathlib import Path

from mcp.server.fastmcp import FastMCP

server = FastMCP("adder")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    with Path(os.environ["ADDER_LOG"]).open("a") as log:
        log.write(f"{a}+{b}\n")
    return a + b


if __name__ == "__main__":
    server.run()
