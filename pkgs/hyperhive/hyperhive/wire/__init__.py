"""The socket protocol: JSON lines, requests tagged by `cmd`, responses by `kind` (SPEC §4).

Architecture Invariant: this package is the container boundary. The harness and the MCP
server import only wire/ (plus settings and errors), never the daemon's packages.
"""
