"""The daemon's view of which agents exist: the agents table, cached in memory.

Architecture Invariant: the cache changes only after the database write committed, so
the broker never routes to an agent that a crash would forget.

A hive on PostgreSQL spans hosts: every host caches every agent (routing is hive-wide),
each row says which host runs it, and a host re-reads a row when another host announces a
change to it (the `hive_agents` notification), or all rows after the listener reconnects.
"""

from __future__ import annotations

import dataclasses
import time

from hyperhive.agents import store
from hyperhive.agents.names import MANAGER
from hyperhive.agents.store import AgentRecord, AgentState
from hyperhive.db.connection import AGENTS, Database
from hyperhive.errors import NotFound
from hyperhive.hub import Hub
from hyperhive.wire.roles import Role


class Registry:
    """Known agents by name (the manager included, under the name `manager`)."""

    def __init__(self, db: Database, hub: Hub, host: str = "") -> None:
        self._db = db
        self._hub = hub
        self.host = host
        """This daemon's host: agents whose row names it are the ones it runs."""
        self._agents = {a.name: a for a in db.read(store.list_agents)}
        db.subscribe(AGENTS, self._changed_elsewhere)
        db.on_resync(self.reload)

    @property
    def shared(self) -> bool:
        """Whether other hosts share this hive (`Database.shared`)."""
        return self._db.shared

    async def claim_unhosted(self) -> int:
        """Make rows without a host this host's; on a store no other host shares (whose
        host name may have changed) all rows. See `store.claim_agents`; how many changed."""
        host, every = self.host, not self._db.shared
        count = await self._db.write(lambda conn: store.claim_agents(conn, host, every=every))
        if count:
            self.reload()
        return count

    def reload(self) -> None:
        """Re-read every row (another host may have changed any while we did not hear)."""
        fresh = {a.name: a for a in self._db.read(store.list_agents)}
        changed = [r for n, r in fresh.items() if self._agents.get(n) != r]
        gone = [n for n in self._agents if n not in fresh]
        self._agents = fresh
        for record in changed:
            self._hub.publish("agent", record.as_json())
        for name in gone:
            self._hub.publish("agent", {"name": name, "purged": True})

    def _changed_elsewhere(self, name: str, mine: bool) -> None:
        if mine:
            return  # this host changed it and cached it already
        record = self._db.read(lambda conn: store.find_agent(conn, name))
        if record is None:
            if self._agents.pop(name, None) is not None:
                self._hub.publish("agent", {"name": name, "purged": True})
        elif self._agents.get(name) != record:
            self._agents[name] = record
            self._hub.publish("agent", record.as_json())

    def is_local(self, record: AgentRecord) -> bool:
        """Whether this host runs `record`'s agent."""
        return record.host == self.host

    def local(self) -> list[AgentRecord]:
        """Every agent this host runs, tombstones included, by name."""
        return [a for a in self.all() if a.host == self.host]

    async def claim_manager(self) -> AgentRecord:
        """The manager's row: created for this host unless another host holds it."""
        record = AgentRecord(
            name=MANAGER,
            role=Role.MANAGER,
            state=AgentState.SPAWNING,
            created_at=int(time.time()),
            host=self.host,
        )
        held = await self._db.write(lambda conn: store.claim_manager(conn, record))
        self._agents[MANAGER] = held
        self._hub.publish("agent", held.as_json())
        return held

    def find(self, name: str) -> AgentRecord | None:
        """The agent called `name`, or None."""
        return self._agents.get(name)

    def get(self, name: str) -> AgentRecord:
        """The agent called `name`, or NotFound."""
        agent = self._agents.get(name)
        if agent is None:
            raise NotFound(f"no agent named {name!r}")
        return agent

    def all(self) -> list[AgentRecord]:
        """Every agent, tombstones included, by name."""
        return sorted(self._agents.values(), key=lambda a: a.name)

    def live_names(self) -> list[str]:
        """Names that can receive messages now."""
        return sorted(a.name for a in self._agents.values() if a.live)

    async def save(self, record: AgentRecord) -> AgentRecord:
        """Write `record`, then cache it."""
        await self._db.write(lambda conn: store.upsert_agent(conn, record))
        self._agents[record.name] = record
        self._hub.publish("agent", record.as_json())
        return record

    async def claim_spawn(self, record: AgentRecord) -> AgentRecord:
        """Write the row of a spawn (`store.spawn_agent`: Conflict if the name is taken
        in the database, whatever this cache says), then cache it."""
        await self._db.write(lambda conn: store.spawn_agent(conn, record))
        return self.remember(record)

    def remember(self, record: AgentRecord) -> AgentRecord:
        """Cache and publish a record the caller already committed in its own transaction."""
        self._agents[record.name] = record
        self._hub.publish("agent", record.as_json())
        return record

    def touch(self, name: str) -> None:
        """Publish `name`'s record again, unchanged: something the pages derive from it at
        each render (its login) changed, and a live page must redraw its row."""
        self._hub.publish("agent", self.get(name).as_json())

    async def add(
        self, name: str, role: Role, allowed_recipients: list[str] | None = None
    ) -> AgentRecord:
        """Register a new (or revived) agent in state spawning."""
        record = AgentRecord(
            name=name,
            role=role,
            state=AgentState.SPAWNING,
            created_at=int(time.time()),
            allowed_recipients=list(allowed_recipients or []),
            host=self.host,
        )
        return await self.save(record)

    async def set_state(self, name: str, state: AgentState) -> AgentRecord:
        """Record a state change."""
        record = dataclasses.replace(self.get(name), state=state)
        if state is AgentState.DESTROYED:
            record.destroyed_at = int(time.time())
        elif record.destroyed_at is not None:
            record.destroyed_at = None
        return await self.save(record)

    async def set_allowed_recipients(self, name: str, recipients: list[str]) -> AgentRecord:
        """Replace an agent's allow-list (empty = anyone)."""
        record = dataclasses.replace(self.get(name), allowed_recipients=list(recipients))
        return await self.save(record)

    async def forget(self, name: str) -> None:
        """Delete the agent's row (purge)."""
        await self._db.write(lambda conn: store.delete_agent(conn, name))
        self._agents.pop(name, None)
        self._hub.publish("agent", {"name": name, "purged": True})
