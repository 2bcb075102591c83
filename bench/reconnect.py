"""Reconnect time: from a fault of the Scope server to the first frame of the new session.

The daemon runs at its default settings in this process; the emulator runs in a
child process, as Scope would. Each fault kind is injected N times over HTTP,
as an operator would, each on a session that has streamed longer than the
daemon's stability window, and two times are taken per fault:

- fault → first frame of the new session;
- server usable again → first frame. "Usable" is the moment the server could
  serve a session again: it answers and its pipeline is loaded. After the real
  restart the server comes back ``not_loaded``, so it is the moment it answers
  again plus the time the load takes (when a client that loaded at once would
  have it); after a hostile spell (garbage SDP, sessions closed at once), the
  moment it behaves again; after a drop, a polite stop or a restart that keeps
  the pipeline, the fault itself (the server never stopped being usable). For a
  stall it is not defined: only the frame watchdog can tell. Goal ≤ 1 s: no
  backoff wasted on a server that is back.

The restart is the real server's (``scope-v0.2.4/README.md``, behaviour 19):
``POST /api/v1/restart``, frames stop, ``/health`` refuses connections for
~4.4 s, the server comes back ``not_loaded`` and the daemon loads again, which
takes ``--load-time``; ``--long-load 90`` (a diffusion pipeline takes 1–3 min)
is measured over ``--long-faults`` restarts.

    python bench/reconnect.py [--faults 20] [--hostile-faults 10] [--load-time 0.5]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from bench._emulator_child import MODES, Availability, EmulatorChild
from bench._frames import on_first_frame
from soundscape import logs
from soundscape.app import Daemon, emulator_config
from soundscape.config import Config, load

QUICK = ("stream_stopped", "drop", "stall", "restart")
HOSTILE = ("restart_keep_pipeline", "garbage_sdp", "close_at_once")
RECOVERY_TIMEOUT = 60.0  # s beyond the load time: a fault not recovered by then failed


@dataclasses.dataclass
class Sample:
    fault_to_frame: float
    usable_to_frame: float | None  # None: not defined for this kind
    back_to_load: float | None = None  # restart: health answering again → the load request
    offers: int | None = None  # hostile spell: offers the daemon made during it


@dataclasses.dataclass
class Row:
    kind: str
    load_time: float
    samples: list[Sample]
    failed: int = 0


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


def sample(
    kind: str, t0: float, behaving: float, frame: float, history: list[Availability]
) -> Sample:
    if kind == "stall":
        return Sample(frame - t0, None)
    if kind != "restart":
        return Sample(frame - t0, frame - behaving)
    times = after_restart(history, t0)
    if times is None:
        return Sample(frame - t0, None)
    back, load_sent, loaded = times
    # Usable = back plus the load itself: a client that loads the moment the server
    # answers has it then; anything later is time the client wasted.
    usable = back + (loaded - load_sent)
    return Sample(frame - t0, frame - usable, load_sent - back)


def daemon_config(emulator_url: str) -> Config:
    config = load(None)
    config = dataclasses.replace(
        config,
        scope=dataclasses.replace(config.scope, url=emulator_url),
        osc=dataclasses.replace(config.osc, port=0),  # never collide with a running daemon
    )
    if hasattr(config, "http"):  # the operator's page too
        config = dataclasses.replace(
            config, http=dataclasses.replace(config.http, listen="127.0.0.1:0")
        )
    return config


async def measure(args: argparse.Namespace, settle: float) -> list[Row]:
    base = emulator_config(load(None))
    plan = [(k, args.faults, args.load_time) for k in QUICK]
    plan += [(k, args.hostile_faults, args.load_time) for k in HOSTILE]
    plan += [("restart", args.long_faults, args.long_load)]
    if args.kinds:
        plan = [p for p in plan if p[0] in args.kinds.split(",")]
    rows: list[Row] = []
    async with EmulatorChild(
        width=base.width, height=base.height, fps=base.fps, load_time=args.load_time
    ) as emulator:
        daemon = Daemon(daemon_config(emulator.url))
        streams: list[tuple[float, str]] = []  # first frame of each session
        new_stream = asyncio.Event()

        def first_frame(t: float, session_id: str) -> None:
            streams.append((t, session_id))
            new_stream.set()

        on_first_frame(daemon, first_frame)
        await daemon.start()
        try:
            await asyncio.wait_for(new_stream.wait(), args.load_time + RECOVERY_TIMEOUT)
            for kind, faults, load_time in plan:
                if faults <= 0:
                    continue
                if load_time != args.load_time:  # loads from now on take that long
                    (
                        await emulator.post("/_emulator/slow_load", seconds=load_time)
                    ).raise_for_status()
                row = Row(kind, load_time, [])
                rows.append(row)
                for _ in range(faults):
                    await fault(emulator, kind, row, streams, new_stream, settle, args.hostile_for)
                print(summary(row), flush=True)
                if load_time != args.load_time:
                    (await emulator.post("/_emulator/slow_load", seconds="")).raise_for_status()
        finally:
            await daemon.stop()
    return rows


async def fault(
    emulator: EmulatorChild,
    kind: str,
    row: Row,
    streams: list[tuple[float, str]],
    new_stream: asyncio.Event,
    settle: float,
    hostile_for: float,
) -> None:
    # Every fault hits a session that has streamed past the daemon's stability window.
    await asyncio.sleep(settle)
    count = len(streams)
    offers = (await emulator.state())["offers"]
    t0 = time.monotonic()
    behaving = await emulator.inject(kind, hostile_for)
    try:
        async with asyncio.timeout(row.load_time + RECOVERY_TIMEOUT):
            # A session that streamed during a hostile spell does not count.
            while not any(t >= behaving for t, _ in streams[count:]):
                new_stream.clear()
                await new_stream.wait()
    except TimeoutError:
        row.failed += 1
        print(f"  {kind}: no new session within {row.load_time + RECOVERY_TIMEOUT:g} s")
        return
    frame = next(t for t, _ in streams[count:] if t >= behaving)
    result = sample(kind, t0, behaving, frame, emulator.history)
    if kind in MODES:
        result.offers = (await emulator.state())["offers"] - offers - 1  # the last one worked
    row.samples.append(result)
    print(f"  {kind:22s} {describe(result)}", flush=True)


def describe(s: Sample) -> str:
    parts = [f"fault → frame {s.fault_to_frame:.3f} s"]
    if s.usable_to_frame is not None:
        parts.append(f"usable → frame {s.usable_to_frame:.3f} s")
    if s.back_to_load is not None:
        parts.append(f"back → load {s.back_to_load:.3f} s")
    if s.offers is not None:
        parts.append(f"{s.offers} offers while hostile")
    return ", ".join(parts)


def stats(values: list[float | None], digits: int = 3) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "—"
    return f"{statistics.median(known):.{digits}f} / {max(known):.{digits}f}"


def summary(row: Row) -> str:
    s = row.samples
    return (
        f"{row.kind:22s} load {row.load_time:g} s  n={len(s)} failed={row.failed}  "
        f"fault→frame {stats([x.fault_to_frame for x in s])}  "
        f"usable→frame {stats([x.usable_to_frame for x in s])}  "
        f"back→load {stats([x.back_to_load for x in s])}  "
        f"offers {stats([x.offers for x in s], 0)}  (median / max)"
    )


def goal(row: Row, stall_timeout: float) -> str:
    if row.kind == "stall":
        target = stall_timeout + 1
        worst = max((x.fault_to_frame for x in row.samples), default=float("inf"))
        verdict = "ok" if worst <= target and not row.failed else "**missed**"
        return f"fault → frame ≤ {target:g} s (watchdog {stall_timeout:g} s + 1 s): {verdict}"
    values = [x.usable_to_frame for x in row.samples]
    if not values or None in values:
        return "usable → frame ≤ 1 s: not measured (server times missing)"
    worst = max(v for v in values if v is not None)
    verdict = "ok" if worst <= 1.0 and not row.failed else "**missed**"
    return f"usable → frame ≤ 1 s: {verdict}"


def table(rows: list[Row], stall_timeout: float) -> str:
    lines = [
        "| fault | load | n | failed | fault → first frame (s) | usable → first frame (s) | "
        "back → load sent (s) | offers while hostile | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row.samples
        lines.append(
            f"| {row.kind} | {row.load_time:g} s | {len(s)} | {row.failed} | "
            f"{stats([x.fault_to_frame for x in s])} | {stats([x.usable_to_frame for x in s])} | "
            f"{stats([x.back_to_load for x in s])} | {stats([x.offers for x in s], 0)} | "
            f"{goal(row, stall_timeout)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20, help="faults of each quick kind")
    parser.add_argument("--hostile-faults", type=int, default=10, help="of each hostile kind")
    parser.add_argument("--hostile-for", type=float, default=3.0, help="seconds of each spell")
    parser.add_argument("--kinds", default="", help="only these kinds (comma-separated)")
    parser.add_argument("--load-time", type=float, default=0.5, help="emulated pipeline load, s")
    parser.add_argument("--long-load", type=float, default=90.0, help="load of the long case, s")
    parser.add_argument("--long-faults", type=int, default=3, help="restarts with the long load")
    parser.add_argument(
        "--settle", type=float, default=0.0, help="s of streaming before a fault (0: auto)"
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    logs.configure(args.log_level, "console")
    session = load(None).session
    # Past the stability window, so each fault meets a daemon whose backoff has reset.
    settle = args.settle or max(1.0, getattr(session, "stable_after", 0.0) + 0.5)
    started = time.monotonic()
    rows = asyncio.run(measure(args, settle))
    text = table(rows, session.stall_timeout)
    minutes = (time.monotonic() - started) / 60
    print(text)
    print(f"run time {minutes:.1f} min")
    if args.write_docs:
        write_section(
            "reconnect",
            f"`python bench/reconnect.py --faults {args.faults} --hostile-faults "
            f"{args.hostile_faults} --load-time {args.load_time:g} --long-load "
            f"{args.long_load:g} --long-faults {args.long_faults}` — the daemon at default "
            "settings in this process, the emulator (as Scope v0.2.4, 576×320 at 30 fps) in "
            f"another, real aiortc on one machine; {settle:g} s of streaming before each fault "
            "(past the daemon's stability window). *restart* = the real server's `POST "
            "/api/v1/restart`: frames stop, `/health` refuses connections for 4.4 s, the "
            "server comes back `not_loaded` and the daemon loads the pipeline again (*load* = "
            "how long that takes; 90 s stands for a diffusion pipeline). "
            "*restart_keep_pipeline*: the sessions die silently while health and the pipeline "
            "stay up (only `session/metrics` tells). *garbage_sdp* / *close_at_once*: the live "
            f"session is dropped and for {args.hostile_for:g} s every offer gets an answer that "
            "is not SDP / every session is closed as soon as it connects, then the server "
            "behaves again.\n\n"
            "*Usable* = the server answers and its pipeline is loaded: after a restart, the "
            "moment it answers again plus the load time (when a client that loaded at once "
            "would have it), so any backoff after the server is back counts; after a hostile "
            "spell, its end; after a drop, a polite stop or a restart that keeps the pipeline, "
            "the fault itself. *back → load sent*: health answering again until the daemon's "
            "load request. *Offers while hostile*: offers the daemon made during the spell (it "
            "must back off, not hammer). Times are median / max.\n\n"
            + text
            + f"\n\nRun time {minutes:.1f} min.",
        )


if __name__ == "__main__":
    main()
