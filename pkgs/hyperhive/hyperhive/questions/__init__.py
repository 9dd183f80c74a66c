"""Questions agents ask the operator (SPEC §9)."""
