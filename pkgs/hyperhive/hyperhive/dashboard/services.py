"""What the dashboard uses of the daemon, as an interface.

The daemon's `Hive` satisfies it; the dashboard never imports `hyperhive.daemon`. The binary's
composition root (`cli/c0re_serve.py`) starts the two and hands the one to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hyperhive.agents.registry import Registry
from hyperhive.approvals.service import Approvals
from hyperhive.broker.service import Broker
from hyperhive.credentials import OperatorSecret
from hyperhive.hub import Hub
from hyperhive.lifecycle.service import Lifecycle
from hyperhive.questions.service import QuestionService
from hyperhive.settings import Settings


class HiveServices(Protocol):
    """The services the dashboard's routes, snapshot and live stream call."""

    @property
    def settings(self) -> Settings:
        """The daemon's settings (the dashboard's bind, its page size)."""
        ...

    @property
    def hub(self) -> Hub:
        """The change feed the live stream follows."""
        ...

    @property
    def registry(self) -> Registry:
        """Who exists."""
        ...

    @property
    def broker(self) -> Broker:
        """Messages: the flow, the operator's inbox, T4LK's send."""
        ...

    @property
    def questions(self) -> QuestionService:
        """Operator questions."""
        ...

    @property
    def approvals(self) -> Approvals:
        """Pending approvals, their diffs and verdicts."""
        ...

    @property
    def lifecycle(self) -> Lifecycle:
        """The verbs, login and deployment state, the backend's journal."""
        ...

    @property
    def credentials(self) -> OperatorSecret:
        """The operator secret: the dashboard's key check and the agents' page keys."""
        ...

    @property
    def on_rotate(self) -> list[Callable[[], None]]:
        """Called after the operator secret changed (the dashboard closes its streams)."""
        ...
