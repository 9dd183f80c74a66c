"""The per-agent web UI (SPEC §12), served by the harness: live view, state, inbox, prompt."""
