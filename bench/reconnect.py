"""Reconnect time: from a fault of the Scope server to the first frame of the new session.

The daemon runs at its default settings in this process; the emulator runs in a
child process, as Scope would. Each fault kind is injected N times over HTTP,
as an operator would, and two times are taken per fault:

- fault → first frame of the new session;
- server usable again → first frame: "usable" is the moment the server could
  serve a session again: it answers and its pipeline is loaded. After a
  restart the server comes back ``not_loaded``, so it is the moment it answers
  again plus the time the load takes (when a client that loaded at once would
  have it). Goal ≤ 1 s: no backoff wasted on a server that is back. For a drop
  or a polite stop the server never stopped being usable, so this is the fault
  time; for a stall it is not defined (only the frame watchdog can tell).

A restart is the real server's (``scope-v0.2.4/README.md``, behaviour 19):
``POST /api/v1/restart``, frames stop, ``/health`` refuses connections for
~4.4 s, the server comes back ``not_loaded`` and the daemon must load again,
which takes ``--load-time`` (a diffusion pipeline takes 1–3 min: ``--long-load 90``).

    python bench/reconnect.py [--faults 20] [--load-time 0.5]
                              [--long-load 90 --long-faults 3] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from bench._emulator_child import Availability, EmulatorChild
from soundscape import logs
from soundscape.app import Daemon, emulator_config
from soundscape.config import Config, load

KINDS = ("stream_stopped", "drop", "stall", "restart")
HEALTH_DOWN = 4.4  # s the real server refuses connections after POST /api/v1/restart
RECOVERY_TIMEOUT = 60.0  # s beyond the load time: a fault not recovered by then failed


@dataclasses.dataclass
class Sample:
    fault_to_frame: float
    usable_to_frame: float | None  # None: not defined for this kind
    back_to_load: float | None = None  # health answering again → the daemon's load request


@dataclasses.dataclass
class Row:
    kind: str
    load_time: float
    samples: list[Sample]
    failed: int = 0
    restart_via: str = ""


async def inject(emulator: EmulatorChild, kind: str) -> str:
    """Cause one fault; returns how (for the restart, which path the emulator offered)."""
    if kind != "restart":
        response = await emulator.post(f"/_emulator/{kind}")
        response.raise_for_status()
        return f"/_emulator/{kind}"
    response = await emulator.post("/api/v1/restart")
    if response.status_code == 200:
        return "POST /api/v1/restart"
    # An emulator without the real restart endpoint: the same outage through its fault route.
    response = await emulator.post("/_emulator/restart", downtime=HEALTH_DOWN)
    response.raise_for_status()
    return f"/_emulator/restart?downtime={HEALTH_DOWN}"


def after_restart(history: list[Availability], t0: float) -> tuple[float, float, float] | None:
    """After a restart at ``t0``: when the server answered again, when the daemon's load
    began and when it completed (None if that is not in the history)."""
    went_down = next((i for i, c in enumerate(history) if c.t >= t0 and not c.listening), None)
    if went_down is None:
        return None
    back = next((c for c in history[went_down:] if c.listening), None)
    if back is None:
        return None
    load = next((c for c in history if c.t >= back.t and c.load_count > back.load_count), None)
    loaded = next((c for c in history if load and c.t >= load.t and c.usable), None)
    if load is None or loaded is None:
        return None
    return back.t, load.t, loaded.t


def daemon_config(emulator_url: str) -> Config:
    config = load(None)
    return dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=emulator_url))


async def measure(
    kinds: tuple[str, ...], faults: int, load_time: float, settle: float
) -> list[Row]:
    base = emulator_config(load(None))
    emulator_args = {
        "width": base.width,
        "height": base.height,
        "fps": base.fps,
        "load_time": load_time,
    }
    rows: list[Row] = []
    async with EmulatorChild(**emulator_args) as emulator:
        daemon = Daemon(daemon_config(emulator.url))
        streams: list[tuple[float, str]] = []  # first frame of each session
        new_stream = asyncio.Event()

        def on_status(status: dict[str, Any]) -> None:
            # The supervisor reports "streaming" on the first frame of each session.
            sid = status.get("session_id")
            if status["state"] == "streaming" and sid not in {s for _, s in streams}:
                streams.append((time.monotonic(), str(sid)))
                new_stream.set()

        daemon.supervisor.on_status(on_status)
        await daemon.start()
        timeout = load_time + RECOVERY_TIMEOUT
        try:
            await asyncio.wait_for(new_stream.wait(), timeout)
            for kind in kinds:
                row = Row(kind, load_time, [])
                rows.append(row)
                for _ in range(faults):
                    # Every fault hits a session that has been streaming for a while.
                    await asyncio.sleep(settle)
                    count = len(streams)
                    new_stream.clear()
                    t0 = time.monotonic()
                    row.restart_via = await inject(emulator, kind)
                    try:
                        async with asyncio.timeout(timeout):
                            while len(streams) <= count:
                                await new_stream.wait()
                                new_stream.clear()
                    except TimeoutError:
                        row.failed += 1
                        print(f"{kind}: no new session within {timeout:g} s", flush=True)
                        continue
                    row.samples.append(sample(kind, t0, streams[count][0], emulator.history))
                    print(f"  {kind:15s} {describe(row.samples[-1])}", flush=True)
                print(summary(row), flush=True)
        finally:
            await daemon.stop()
    return rows


def sample(kind: str, t0: float, frame: float, history: list[Availability]) -> Sample:
    if kind == "stall":
        return Sample(frame - t0, None)
    if kind != "restart":
        return Sample(frame - t0, frame - t0)  # the server stayed usable throughout
    times = after_restart(history, t0)
    if times is None:
        return Sample(frame - t0, None)
    back, load_sent, loaded = times
    # Usable = back plus the load itself: a client that loads the moment the server
    # answers has it then; any later is time the client wasted.
    usable = back + (loaded - load_sent)
    return Sample(frame - t0, frame - usable, load_sent - back)


def describe(s: Sample) -> str:
    parts = [f"fault → frame {s.fault_to_frame:.3f} s"]
    if s.usable_to_frame is not None:
        parts.append(f"usable → frame {s.usable_to_frame:.3f} s")
    if s.back_to_load is not None:
        parts.append(f"back → load {s.back_to_load:.3f} s")
    return ", ".join(parts)


def stats(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "—"
    return f"{statistics.median(known):.3f} / {max(known):.3f}"


def summary(row: Row) -> str:
    s = row.samples
    return (
        f"{row.kind:15s} load {row.load_time:g} s  n={len(s)} failed={row.failed}  "
        f"fault→frame {stats([x.fault_to_frame for x in s])}  "
        f"usable→frame {stats([x.usable_to_frame for x in s])}  "
        f"back→load {stats([x.back_to_load for x in s])}  (median / max, s)"
    )


def goal(row: Row, stall_timeout: float) -> str:
    if row.kind == "stall":
        target = stall_timeout + 1
        worst = max((x.fault_to_frame for x in row.samples), default=float("inf"))
        verdict = "ok" if worst <= target and not row.failed else "missed"
        return f"fault → frame ≤ {target:g} s (watchdog {stall_timeout:g} s + 1 s): {verdict}"
    values = [x.usable_to_frame for x in row.samples]
    if not values or None in values:
        return "usable → frame ≤ 1 s: not measured (server times missing)"
    worst = max(v for v in values if v is not None)
    verdict = "ok" if worst <= 1.0 and not row.failed else "missed"
    return f"usable → frame ≤ 1 s: {verdict}"


def table(rows: list[Row], stall_timeout: float) -> str:
    lines = [
        "| fault | load | n | failed | fault → first frame (median / max, s) | "
        "usable → first frame (median / max, s) | back → load sent (median / max, s) | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row.samples
        lines.append(
            f"| {row.kind} | {row.load_time:g} s | {len(s)} | {row.failed} | "
            f"{stats([x.fault_to_frame for x in s])} | {stats([x.usable_to_frame for x in s])} | "
            f"{stats([x.back_to_load for x in s])} | {goal(row, stall_timeout)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20, help="faults of each quick kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    parser.add_argument("--load-time", type=float, default=0.5, help="emulated pipeline load, s")
    parser.add_argument(
        "--long-load", type=float, default=90.0, help="load time of the long restart case, s"
    )
    parser.add_argument(
        "--long-faults", type=int, default=3, help="restarts with the long load (0: skip)"
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds of streaming before each fault"
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    logs.configure("warning", "console")
    kinds = tuple(k for k in args.kinds.split(",") if k)
    started = time.monotonic()
    rows = asyncio.run(measure(kinds, args.faults, args.load_time, args.settle))
    if args.long_faults > 0:
        rows += asyncio.run(measure(("restart",), args.long_faults, args.long_load, args.settle))
    stall_timeout = load(None).session.stall_timeout
    text = table(rows, stall_timeout)
    via = next((r.restart_via for r in rows if r.kind == "restart"), "")
    minutes = (time.monotonic() - started) / 60
    print(text)
    print(f"restart injected with {via}; run time {minutes:.1f} min")
    if args.write_docs:
        write_section(
            "reconnect",
            f"`python bench/reconnect.py --faults {args.faults} --load-time {args.load_time:g} "
            f"--long-load {args.long_load:g} --long-faults {args.long_faults}` — the daemon at "
            "default settings in this process, the emulator (as Scope, 576×320 at 30 fps) in "
            "another, real aiortc on one machine; "
            f"{args.settle:g} s of streaming before each fault. Restart = the real server's "
            f"(injected with `{via}`): frames stop, `/health` refuses connections for "
            f"{HEALTH_DOWN} s, the server comes back `not_loaded` and the daemon loads the "
            "pipeline again (`load` = how long that takes; 90 s stands for a diffusion "
            "pipeline). *Usable* = the server answers and its pipeline is loaded: for a drop "
            "or a polite stop at once; after a restart, the moment it answers again plus the "
            "load time (when a client that loaded at once would have it), so any backoff "
            "after the server is back counts; *back → load sent* = health answering again "
            "until the daemon's load request arrives.\n\n"
            + text
            + f"\n\nRun time {minutes:.1f} min.",
        )


if __name__ == "__main__":
    main()
