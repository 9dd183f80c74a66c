"""Static files shared by the dashboard and the per-agent web UI (no Python here)."""

from pathlib import Path

DIR = Path(__file__).parent
