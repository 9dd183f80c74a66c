"""Static files shared by the dashboard and the per-agent web UI (no Python here)."""

from pathlib import Path

DIR = Path(__file__).parent
FAVICON = DIR / "favicon.ico"
"""The icon both apps answer ``/favicon.ico`` with (browsers ask for it on every load)."""
