"""The Scope emulator in its own process, as a real server would be, watched from outside.

Benchmarks measure the daemon, so Scope's stand-in must not share its event loop
or its CPU time slice. The child prints its URL, then one JSON line each time
the server's availability changes: whether it accepts connections and its
pipeline status (stamped with CLOCK_MONOTONIC, which every process on the
machine shares). Faults go in over HTTP, as an operator's ``curl`` would.

    async with EmulatorChild(load_time=0.5) as emulator:
        await emulator.post("/_emulator/drop")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))


# Faults that happen at once: the route that causes each.
ONE_SHOT = {
    "stream_stopped": "/_emulator/stream_stopped",  # DELETE / SIGTERM: stream_stopped first
    "drop": "/_emulator/drop",  # the connection closes without a word
    "stall": "/_emulator/stall",  # frames stop, everything else stays up
    "restart": "/api/v1/restart",  # the real one: health refused ~4.4 s, back not_loaded
    "restart_keep_pipeline": "/_emulator/restart_keep_pipeline",  # sessions gone, all else up
}
# Hostile behaviour that lasts until switched off.
MODES = {
    "garbage_sdp": "/_emulator/garbage_sdp",  # offers answered 200 with an SDP that is not SDP
    "close_at_once": "/_emulator/close_at_once",  # sessions accepted, then closed at once
}


@dataclass(frozen=True)
class Availability:
    """The server as a client would find it, from time ``t`` on."""

    t: float
    listening: bool
    pipeline: str
    load_count: int

    @property
    def usable(self) -> bool:
        return self.listening and self.pipeline == "loaded"


def _availability(state: dict[str, Any]) -> tuple[bool, str, int]:
    pipeline = state.get("pipeline") or {}
    return (
        bool(state.get("listening", True)),
        str(pipeline.get("status")),
        int(pipeline.get("load_count") or 0),
    )


def serve(config_json: str) -> None:
    """Child: run the emulator until stdin closes; print availability changes."""
    from soundscape import logs
    from soundscape.emulator import Emulator, EmulatorConfig

    async def main() -> None:
        emulator = Emulator(EmulatorConfig(**json.loads(config_json)))
        await emulator.start("127.0.0.1", 0)
        print(json.dumps({"url": emulator.url}), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)  # EOF: parent done

        async def watch() -> None:
            last = None
            while True:
                state = await emulator.wait_for(lambda s, last=last: _availability(s) != last, 1e9)
                last = _availability(state)
                listening, pipeline, loads = last
                line = {"t": time.monotonic(), "listening": listening, "pipeline": pipeline}
                print(json.dumps({**line, "load_count": loads}), flush=True)

        watcher = asyncio.create_task(watch())
        await stop.wait()
        watcher.cancel()
        await asyncio.wait([watcher])
        await emulator.stop()

    logs.configure("warning", "console", sys.stderr)
    asyncio.run(main())


class EmulatorChild:
    """Start the emulator child; ``url``, ``history``, ``post()``, ``state()``."""

    def __init__(self, **config: Any) -> None:
        self._config = config
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.history: list[Availability] = []
        self.url = ""
        self.http: httpx.AsyncClient | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def __aenter__(self) -> EmulatorChild:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            json.dumps(self._config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        self.url = json.loads(await asyncio.wait_for(self._proc.stdout.readline(), 60))["url"]
        self._reader = asyncio.create_task(self._read())
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            with contextlib.suppress(ValueError, KeyError):
                d = json.loads(line)
                self.history.append(
                    Availability(d["t"], d["listening"], d["pipeline"], d["load_count"])
                )
                self._changed.set()

    async def wait_until(self, predicate: Callable[[Availability], bool], timeout: float) -> float:
        """The time of the first recorded change (past or future) that satisfies predicate."""
        async with asyncio.timeout(timeout):
            while True:
                for change in self.history:
                    if predicate(change):
                        return change.t
                self._changed.clear()
                await self._changed.wait()

    async def post(self, path: str, **params: Any) -> httpx.Response:
        assert self.http is not None
        return await self.http.post(path, params=params or None)

    async def inject(self, kind: str, hostile_for: float) -> float:
        """Cause one fault; return when the server behaves again as far as the fault goes.

        A one-shot fault is over at once (a restart's own outage is in ``history``); a
        hostile mode starts with a drop of the live session, lasts ``hostile_for``
        seconds and is then switched off.
        """
        if kind in MODES:
            # The mode only meets new offers: drop the live session to make the client offer.
            (await self.post(MODES[kind], enabled="1")).raise_for_status()
            (await self.post(ONE_SHOT["drop"])).raise_for_status()
            await asyncio.sleep(hostile_for)
            behaving = time.monotonic()
            (await self.post(MODES[kind], enabled="0")).raise_for_status()
            return behaving
        t0 = time.monotonic()
        (await self.post(ONE_SHOT[kind])).raise_for_status()
        return t0

    async def state(self) -> dict[str, Any]:
        assert self.http is not None
        response = await self.http.get("/_emulator/state")
        response.raise_for_status()
        return dict(response.json())


if __name__ == "__main__":
    serve(sys.argv[1])
