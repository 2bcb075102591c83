"""One screen: its parameter store, its Scope servers and where their frames go.

A screen has one primary server and any number of standbys (``[[scope]]`` entries
with ``role = "standby"``). Each server gets its own client and supervisor, so
each has its own pipeline check, reconnect and backoff. All of them share the
screen's :class:`ParameterStore`: every change goes to every server (each
supervisor's sender ships the differences) and every new session is offered the
whole state, so a standby shows the same show. Only the primary writes back to
the store (its ``parameters_updated``, its asset paths).

With standbys, the frames pass through the screen's :class:`Failover`, which
shows one server's frames on the outputs; without, straight to the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from soundscape.scope.api import ScopeClient
from soundscape.scope.config import PipelineSection, SessionSection
from soundscape.scope.params import ParameterStore
from soundscape.scope.supervisor import FrameSink, SessionSupervisor
from soundscape.screens.config import FailoverSection, ServerEntry
from soundscape.screens.failover import Failover

Outgoing = Callable[[str], MediaStreamTrack | None]  # server name → its video-in track


def client_for(entry: ServerEntry) -> ScopeClient:
    return ScopeClient(
        entry.url,
        token_env=entry.token_env,
        auth_header=entry.auth_header,
        auth_scheme=entry.auth_scheme,
        connect_timeout=entry.connect_timeout,
        request_timeout=entry.request_timeout,
    )


class Screen:
    """``Screen(primary, standbys, store, outputs, ...)``; ``await start()`` … ``stop()``."""

    def __init__(
        self,
        primary: ServerEntry,
        standbys: list[ServerEntry],
        store: ParameterStore,
        outputs: FrameSink,
        *,
        pipeline: PipelineSection,
        session: SessionSection,
        failover: FailoverSection,
        outgoing: Outgoing | None = None,
        label_logs: bool = False,
    ) -> None:
        self.name = primary.name
        self.entry = primary
        self.store = store
        self.entries = {entry.name: entry for entry in (primary, *standbys)}
        self.clients = {name: client_for(entry) for name, entry in self.entries.items()}
        self.failover: Failover | None = None
        if standbys:
            self.failover = Failover(self.name, list(self.entries), outputs, failover)
        self.supervisors: dict[str, SessionSupervisor] = {}
        for name, entry in self.entries.items():
            is_primary = entry is primary
            sink = outputs if self.failover is None else self.failover.input(name)
            supervisor = SessionSupervisor(
                self.clients[name],
                store,
                pipeline=pipeline,
                session=session,
                use_server_ice=entry.use_server_ice,
                ice_probe_timeout=entry.ice_probe_timeout,
                frame_sink=sink,
                outgoing=_outgoing_for(outgoing, name),
                warm=not is_primary and entry.mode == "warm",
                writes_store=is_primary,
                name=name if label_logs else "",
            )
            if not is_primary:  # the standby gets every reference image the primary uploads
                supervisor.assets.follow(self.supervisors[primary.name].assets)
            if self.failover is not None and not is_primary and entry.mode == "warm":
                self.failover.add_warm(name, supervisor)
            self.supervisors[name] = supervisor
        self.primary = self.supervisors[primary.name]
        self.client = self.clients[primary.name]
        # A further screen's own outputs and command bus (the daemon sets them; the main
        # screen's are the daemon's own).
        self.outputs: Any = None
        self.commands: Any = None

    @property
    def standbys(self) -> dict[str, SessionSupervisor]:
        return {n: s for n, s in self.supervisors.items() if s is not self.primary}

    async def start(self) -> None:
        if self.failover is not None:
            await self.failover.start()
        for supervisor in self.supervisors.values():
            await supervisor.start()

    async def stop(self) -> None:
        if self.failover is not None:  # first: servers ending on purpose are not a failure
            await self.failover.stop()
        for supervisor in reversed(list(self.supervisors.values())):
            await supervisor.stop()

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    def select(self, name: str | None = None, *, source: str) -> str:
        """Show ``name``'s frames (None: the next server in the list); returns who is shown."""
        if self.failover is None:
            raise KeyError(f"screen {self.name!r} has no standby to switch to")
        names = list(self.entries)
        if name is None:
            name = names[(names.index(self.failover.active) + 1) % len(names)]
        if name not in self.entries:
            raise KeyError(f"screen {self.name!r} has no server {name!r} ({', '.join(names)})")
        self.failover.select(name, source=source)
        return self.failover.active

    def status(self) -> dict[str, Any]:
        servers = {
            name: {
                "url": self.entries[name].url,
                "role": "primary" if sup is self.primary else self.entries[name].role,
                "mode": None if sup is self.primary else self.entries[name].mode,
                **sup.status.as_dict(),
            }
            for name, sup in self.supervisors.items()
        }
        failover = self.failover.status() if self.failover is not None else None
        return {
            "name": self.name,
            "shown": failover["active"] if failover else self.name,
            "servers": servers,
            "failover": failover,
        }


def _outgoing_for(outgoing: Outgoing | None, name: str) -> Callable[[], Any] | None:
    if outgoing is None:
        return None
    return lambda: outgoing(name)
