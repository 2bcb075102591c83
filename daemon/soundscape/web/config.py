"""``[http]``: the local control endpoint that ``soundscape status`` and the operator's page use."""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from soundscape.control.osc_config import parse_host_port
from soundscape.settings import setting

DEFAULT_LISTEN = "127.0.0.1:8470"


@dataclasses.dataclass
class HttpConfig:
    """The control endpoint and operator's page; loopback only unless told otherwise."""

    enabled: bool = setting(True, "Serve the control endpoint and the operator's page.")
    listen: str = setting(
        "",
        f"host:port to listen on ('' = {DEFAULT_LISTEN}; a port taken there is only a "
        "warning). Set explicitly (or --http), a port that cannot be bound stops the daemon. "
        "Any address other than loopback needs a token.",
    )
    token_env: str = setting(
        "SOUNDSCAPE_HTTP_TOKEN",
        "Environment variable holding the access token (required when listen is not loopback).",
    )
    preview_fps: float = setting(4.0, "Preview pictures per second on the page.", low=0.5, high=15)
    preview_width: int = setting(320, "Preview width in pixels.", low=64, high=1920)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port); port 0 picks a free one (tests)."""
        text = self.listen or DEFAULT_LISTEN
        head, _, port = text.rpartition(":")
        if port.strip() == "0":
            return parse_host_port(f"{head}:1")[0], 0
        return parse_host_port(text)

    @property
    def explicit(self) -> bool:
        """The performer asked for this address: failing to bind it is an error exit."""
        return bool(self.listen)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address[0])

    def token(self) -> str:
        return os.environ.get(self.token_env, "") if self.token_env else ""

    def check(self) -> list[tuple[str, str]]:
        try:
            self.address  # noqa: B018  (parses, or says why not)
        except ValueError as err:
            return [("listen", str(err))]
        return []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_address(config: HttpConfig) -> tuple[str, int]:
    """Where a client on this machine reaches the endpoint (0.0.0.0 → 127.0.0.1)."""
    host, port = config.address
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, port
