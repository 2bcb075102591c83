"""Exceptions shared across the daemon.

Each kind of failure has its own class so callers can react to the kind
(retry an unreachable server, report a bad value) without parsing messages.
"""

from __future__ import annotations


class SoundscapeError(Exception):
    """Base of every error the daemon raises on purpose."""


class ParamError(SoundscapeError, ValueError):
    """A parameter value was refused; nothing was changed or sent."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ConfigError(SoundscapeError):
    """The configuration file is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} error(s)\n" + "\n".join(problems))


class ScopeError(SoundscapeError):
    """Base of every failure talking to a Scope server."""


class ScopeUnreachable(ScopeError):
    """No TCP connection could be made (server down, wrong URL, network cut)."""


class ScopeTimeout(ScopeError):
    """The server accepted the connection but did not answer in time."""


class ScopeHTTPError(ScopeError):
    """The server answered with an error status; ``detail`` is its own explanation."""

    def __init__(self, status: int, detail: str, method: str = "", path: str = "") -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}".strip())


class ScopeMalformed(ScopeError):
    """The server answered 2xx with something that is not the documented shape."""


class ScopeSessionError(ScopeError):
    """The WebRTC side failed: an answer aiortc refuses, no video offered, ICE failure.

    aiortc's own exceptions (``ValueError`` for an SDP that is not SDP,
    ``InvalidStateError``, ``InvalidAccessError``) are translated into this one in
    :mod:`soundscape.scope.session`, so callers handle one family of errors.
    """


class PipelineLoadError(ScopeError):
    """The pipeline could not be loaded (refused locally or reported ``error`` by the server)."""


class BackendUnavailable(SoundscapeError):
    """An optional backend (NDI, Spout, Syphon, audio device) cannot run here; says why."""


class StartupError(SoundscapeError):
    """Something the performer explicitly asked for cannot start (a taken port): exit non-zero.

    Devices that come and go degrade and recover instead (BackendUnavailable).
    """
