"""The operator dashboard (SPEC §11): one server-rendered page, kept live over SSE."""

from hyperhive.dashboard.app import create_app, start_dashboard

__all__ = ["create_app", "start_dashboard"]
