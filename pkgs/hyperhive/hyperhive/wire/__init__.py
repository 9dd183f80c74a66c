"""The socket protocol: JSON lines, requests tagged by `cmd`, responses by `kind` (SPEC §4).

What crosses the container boundary is spelled here; what the agent side may import is the
container-boundary invariant, stated once in docs/architecture.md ("Invariants").
"""
