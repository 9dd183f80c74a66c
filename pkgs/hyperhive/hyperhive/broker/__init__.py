"""Messages between agents, the manager and the operator (SPEC §5)."""
