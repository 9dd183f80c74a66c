"""Operator approvals of spawns and config commits (SPEC §8)."""
