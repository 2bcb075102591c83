"""Commands: named actions that controls trigger and components carry out.

OSC, MIDI and mapping rules call commands by name ("scene", "panic", "tap",
"reconnect", ...); the component that owns the action registers a handler.
Controls never import the components they steer, and a command with no owner
(a feature switched off) fails with one clear message instead of a crash.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from soundscape.errors import ParamError

log = structlog.get_logger(__name__)

Handler = Callable[..., Any | Awaitable[Any]]


class CommandBus:
    def __init__(self, parent: CommandBus | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        self._docs: dict[str, str] = {}
        # A screen's bus: its own commands (scene, pause, ...) first, the shared ones after.
        self.parent = parent

    def register(self, name: str, handler: Handler, doc: str = "") -> None:
        """Make ``name`` call ``handler``; a later registration replaces an earlier one."""
        self._handlers[name] = handler
        self._docs[name] = doc or (inspect.getdoc(handler) or "").split("\n")[0]

    def unregister(self, name: str) -> None:
        self._handlers.pop(name, None)

    def owner(self, name: str) -> CommandBus | None:
        """The bus whose own handler runs ``name``: this one, a parent, or None."""
        if name in self._handlers:
            return self
        return self.parent.owner(name) if self.parent is not None else None

    def __contains__(self, name: str) -> bool:
        return name in self._handlers or (self.parent is not None and name in self.parent)

    def names(self) -> dict[str, str]:
        """Registered commands and their one-line docs."""
        inherited = self.parent.names() if self.parent is not None else {}
        return dict(sorted({**inherited, **self._docs}.items()))

    async def call(self, name: str, *args: Any, source: str = "api", **kwargs: Any) -> Any:
        """Run a command; raises ParamError when nobody handles it.

        Handlers take ``source=`` so they can tag the state changes they make.
        """
        handler = self._handlers.get(name)
        if handler is None and self.parent is not None and name in self.parent:
            return await self.parent.call(name, *args, source=source, **kwargs)
        if handler is None:
            raise ParamError(f"command {name!r} is not available (feature off or unknown)")
        result = handler(*args, source=source, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result
