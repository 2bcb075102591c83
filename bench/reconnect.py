"""Reconnect time: from an emulator fault to the first frame of the new session.

Runs the daemon at its default settings against the built-in emulator (also at
its defaults: 576x320, 30 fps, 0.5 s pipeline load) over real aiortc, injects
each fault kind N times and prints median and max per kind.

    python bench/reconnect.py [--faults 20] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from soundscape import logs
from soundscape.app import Daemon, emulator_config
from soundscape.config import load
from soundscape.emulator import Emulator

FAULTS = ("stream_stopped", "drop", "restart", "stall")


async def measure(faults: int) -> dict[str, list[float]]:
    config = load(None)
    emulator = Emulator(emulator_config(config))
    await emulator.start(host="127.0.0.1", port=0)
    config = dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=emulator.url))
    daemon = Daemon(config)
    first_frame: dict[str, float] = {}
    new_stream = asyncio.Event()

    def on_status(status: dict[str, Any]) -> None:
        # The supervisor reports "streaming" on the first frame of each session.
        if status["state"] == "streaming" and status["session_id"] not in first_frame:
            first_frame[status["session_id"]] = time.perf_counter()
            new_stream.set()

    daemon.supervisor.on_status(on_status)
    await daemon.start()
    results: dict[str, list[float]] = {kind: [] for kind in FAULTS}
    try:
        await asyncio.wait_for(new_stream.wait(), 30)
        for kind in FAULTS:
            for _ in range(faults):
                new_stream.clear()
                # Let the stream settle so every fault hits a healthy session.
                await asyncio.sleep(0.3)
                t0 = time.perf_counter()
                result = getattr(emulator, f"fault_{kind}")()
                if inspect.isawaitable(result):
                    await result
                await asyncio.wait_for(new_stream.wait(), 30)
                latest = max(first_frame.values())
                results[kind].append(latest - t0)
            print(
                f"{kind:15s} median {statistics.median(results[kind]):.3f} s  "
                f"max {max(results[kind]):.3f} s  (n={faults})",
                flush=True,
            )
    finally:
        await daemon.stop()
        await emulator.stop()
    return results


def table(results: dict[str, list[float]], stall_timeout: float) -> str:
    rows = ["| fault | n | median (s) | max (s) | target |", "|---|---|---|---|---|"]
    for kind, values in results.items():
        target = (
            f"≤ {stall_timeout + 2:g} s (watchdog {stall_timeout:g} s + 2 s)"
            if kind == "stall"
            else "≤ 2 s median"
        )
        rows.append(
            f"| {kind} | {len(values)} | {statistics.median(values):.3f} | "
            f"{max(values):.3f} | {target} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    logs.configure("warning", "console")
    results = asyncio.run(measure(args.faults))
    text = table(results, load(None).session.stall_timeout)
    print(text)
    if args.write_docs:
        write_section(
            "reconnect",
            "Daemon and emulator at default settings (576×320, 30 fps, "
            "0.5 s load, 3 s stall watchdog, 0.5 s probe), real aiortc on one "
            "machine. Time from the fault to the first frame of the new session.\n\n" + text,
        )


if __name__ == "__main__":
    main()
