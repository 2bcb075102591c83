"""``[ndi]``: how NDI finds sources where mDNS does not work.

NDI finds sources by mDNS (avahi) unless its runtime config says otherwise.
Without mDNS (containers, locked-down show PCs, networks that drop multicast)
two other ways work: a **discovery server** that senders register with and
receivers ask, and **extra IPs** a receiver queries directly. Both live in the
NDI runtime's own ``ndi-config.v1.json``, which :mod:`soundscape.video.ndi_env`
writes for this process before the library loads.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from soundscape.settings import setting

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass
class NdiConfig:
    """NDI discovery for this process (senders and ``soundscape ndi-sources``)."""

    discovery: str = setting(
        "",
        "NDI discovery server(s), host or host:port, comma-separated ('' = mDNS). Senders "
        "register there; receivers that use the same server find them.",
    )
    extra_ips: list[str] = setting(
        [], "Machines whose NDI sources are looked for directly (what `ndi-sources` sees)."
    )
    loopback: bool = setting(
        False,
        "Put 127.0.0.1 in the NDI config's IPs: NDI on this same machine without mDNS.",
    )

    @property
    def custom(self) -> bool:
        """Anything to write? (Otherwise the user's own NDI config stays in charge.)"""
        return bool(self.discovery.strip() or self.extra_ips or self.loopback)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for i, ip in enumerate(self.extra_ips):
            try:
                ipaddress.ip_address(ip.strip())
            except ValueError:
                problems.append((f"extra_ips[{i}]", f"{ip!r} is not an IP address"))
        for server in filter(None, (s.strip() for s in self.discovery.split(","))):
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            if port and not (port.isdigit() and 0 < int(port) < 65536):
                problems.append(("discovery", f"{server!r}: port {port!r} is not a port"))
            if not (host or server).strip():
                problems.append(("discovery", f"{server!r}: no host"))
        return problems


def runtime_config(config: NdiConfig) -> dict[str, Any]:
    """The NDI runtime's ``ndi-config.v1.json`` for ``config``."""
    ips = [ip.strip() for ip in config.extra_ips if ip.strip()]
    if config.loopback and LOOPBACK not in ips:
        ips.insert(0, LOOPBACK)
    discovery = ",".join(s.strip() for s in config.discovery.split(",") if s.strip())
    return {"ndi": {"networks": {"ips": ",".join(ips), "discovery": discovery}}}
