"""Control latency: from a control message leaving the controller to Scope receiving it.

The daemon runs at its default settings in this process (real OSC server, the
real session over aiortc, 30 messages/s to Scope); the emulator runs in a
child process, as Scope would, and reports the moment each data-channel
message arrives (CLOCK_MONOTONIC is shared by both processes).

- isolated events: one OSC message (``/scope/kv_cache_attention_bias``) at a
  time, 50 ms apart — time from ``sendto`` to the data-channel message;
- a 1 kHz knob: a third process sends a value every millisecond; for each
  data-channel message, the age of the value it carries (controller's send
  to Scope's arrival), and for each knob position, how long until Scope had
  it or a newer one (the sender ships at most 30 messages/s, latest wins);
- MIDI CC isolated events too, when JACK and the MIDI control are available.

    python bench/control_latency.py [--events 200] [--stream 3] [--no-midi] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._docs import write_section
from soundscape import logs
from soundscape.app import Daemon
from soundscape.config import load
from soundscape.control.osc_config import OscConfig
from soundscape.control.osc_packet import encode
from soundscape.control.osc_server import OscServer

KEY = "kv_cache_attention_bias"  # sent in text mode (noise_scale is video-only)
ADDRESS = f"/scope/{KEY}"
DAEMON_DIR = str(Path(__file__).resolve().parent.parent / "daemon")
SPACING = 0.05  # between isolated events: longer than the sender's 33 ms window


def value_of(seq: int) -> float:
    # Distinct, exactly representable as a 3-decimal float32 round trip.
    return round(0.05 + (seq % 900) * 0.001, 3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"median {statistics.median(ms):.2f} ms  p99 {percentile(ms, 99):.2f} ms  "
        f"max {max(ms):.2f} ms  (n={len(ms)})"
    )


# --------------------------------------------------------------------------- emulator child


def serve_emulator() -> None:
    """Child: run the emulator; print its URL, then one line per data-channel message."""
    from soundscape.emulator import Emulator
    from soundscape.emulator.session import EmulatedSession

    original = EmulatedSession._on_message

    def hooked(session: EmulatedSession, message: str | bytes) -> None:
        arrived = time.monotonic()
        original(session, message)
        print(json.dumps({"t": arrived, "m": str(message)}), flush=True)

    EmulatedSession._on_message = hooked  # type: ignore[method-assign]

    async def main() -> None:
        emulator = Emulator()
        await emulator.start("127.0.0.1", 0)
        print(json.dumps({"url": emulator.url}), flush=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), stop.set)  # parent closes stdin to stop us
        await stop.wait()
        await emulator.stop()

    logs.configure("warning", "console", sys.stderr)
    asyncio.run(main())


class Arrivals:
    """Data-channel messages as the emulator child saw them."""

    def __init__(self) -> None:
        self.records: list[tuple[float, dict[str, Any]]] = []
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[float]]] = []

    def add(self, t: float, data: dict[str, Any]) -> None:
        self.records.append((t, data))
        for waiter in list(self._waiters):
            predicate, future = waiter
            if not future.done() and predicate(data):
                future.set_result(t)
                self._waiters.remove(waiter)

    def next(self, predicate: Callable[[dict[str, Any]], bool]) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future


@contextlib.asynccontextmanager
async def emulator_child(arrivals: Arrivals) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-emulator",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))["url"]

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            record = json.loads(line)
            with contextlib.suppress(ValueError):
                arrivals.add(record["t"], json.loads(record["m"]))

    reader = asyncio.create_task(read())
    try:
        yield url
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)
        reader.cancel()
        await asyncio.wait([reader])


# --------------------------------------------------------------------------- 1 kHz knob

KNOB = """
import json, socket, sys, time
sys.path.insert(0, sys.argv[1])
from soundscape.control.osc_packet import encode
host, port, seconds, first = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = []
start = time.monotonic()
for i in range(int(seconds * 1000)):
    due = start + i / 1000
    while (now := time.monotonic()) < due:
        time.sleep(max(0.0, due - now - 0.0002))
    value = round(0.05 + ((first + i) % 900) * 0.001, 3)
    t = time.monotonic()
    sock.sendto(encode("/scope/kv_cache_attention_bias", (value,)), (host, port))
    sent.append((t, value))
print(json.dumps(sent))
"""


async def knob_stream(
    osc: tuple[str, int], arrivals: Arrivals, seconds: float, first: int
) -> dict[str, list[float]]:
    start = len(arrivals.records)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KNOB,
        DAEMON_DIR,
        osc[0],
        str(osc[1]),
        str(seconds),
        str(first),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    sent: list[tuple[float, float]] = json.loads(out)
    last_value = sent[-1][1]
    # The last value must land (the sender ships the latest within one interval).
    if not any(d.get(KEY) == last_value for _, d in arrivals.records[start:]):
        await asyncio.wait_for(arrivals.next(lambda d: d.get(KEY) == last_value), 5)
    when_sent: dict[float, list[float]] = {}
    for t, value in sent:
        when_sent.setdefault(value, []).append(t)
    # Each data-channel message: when it landed and when the controller sent its value.
    landed: list[tuple[float, float]] = []
    for t, data in arrivals.records[start:]:
        times = [s for s in when_sent.get(data.get(KEY), []) if s <= t] if KEY in data else []
        if times:
            landed.append((t, times[-1]))
    ages = [t - sent_at for t, sent_at in landed]
    # Each knob position: how long until Scope had it or a newer one.
    catch_up: list[float] = []
    k = 0
    for t, _ in sent:
        while k < len(landed) and landed[k][1] < t:
            k += 1
        if k == len(landed):
            break
        catch_up.append(landed[k][0] - t)
    span = sent[-1][0] - sent[0][0]
    return {
        "ages": ages,
        "catch_up": catch_up,
        "rate": [len(ages) / span],
        "sent": [len(sent) / span],
    }


# --------------------------------------------------------------------------- MIDI


def jack_running() -> bool:
    if shutil.which("jack_lsp") is None:
        return False
    return subprocess.run(["jack_lsp"], capture_output=True, timeout=10).returncode == 0


@contextlib.contextmanager
def jack_server() -> Any:
    if jack_running():
        yield
        return
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd is not installed")
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not jack_running():  # jackd has no readiness signal but answering
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("jackd did not start")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def midi_events(daemon: Daemon, arrivals: Arrivals, events: int) -> tuple[list[float], int]:
    os.environ.setdefault("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    import mido

    from soundscape.control.midi import MidiControl
    from soundscape.control.midi_config import MidiConfig, MidiMapping

    client = f"benchctl{os.getpid()}"
    port = mido.Backend(os.environ["MIDO_BACKEND"]).open_output(
        "ctl", virtual=True, client_name=client
    )
    control = MidiControl(
        MidiConfig(
            enabled=True,
            inputs=[client],
            backend="jack",
            mappings=[MidiMapping(target=KEY, type="cc", number=1, takeover="none")],
        ),
        daemon.store,
        daemon.commands,
    )
    await control.start()
    latencies: list[float] = []
    from_entry: list[float] = []
    lost = 0
    try:
        # Until the daemon has opened the port, CCs go nowhere: send until one lands.
        async with asyncio.timeout(20):
            landed = arrivals.next(lambda d: KEY in d)
            value = 0
            while not landed.done():
                value = (value + 7) % 128
                port.send(mido.Message("control_change", control=1, value=value))
                await asyncio.wait([landed], timeout=0.2)
        for i in range(events):
            await asyncio.sleep(SPACING)
            value = (value + 1 + i % 3) % 128 or 1  # always a new value
            landed = arrivals.next(lambda d: KEY in d)
            t0 = time.monotonic()
            port.send(mido.Message("control_change", control=1, value=value))
            try:
                t1 = await asyncio.wait_for(landed, 2)
                latencies.append(t1 - t0)
                from_entry.append(t1 - ENTRIES[-1])
            except TimeoutError:
                lost += 1  # a CC JACK dropped (another client's xrun): counted, not timed
    finally:
        print(f"MIDI counters {control.counters()}, lost {lost}", flush=True)
        await control.stop()
        port.close()
    return latencies, from_entry, lost


# --------------------------------------------------------------------------- main


ENTRIES: list[float] = []  # when each datagram / MIDI message entered the daemon


def stamp_entries() -> None:
    """Record when input enters the daemon: the issue measures from there."""
    from soundscape.control import osc_server
    from soundscape.control.midi_ports import MidiPorts

    osc_received = osc_server._Protocol.datagram_received

    def datagram_received(self: Any, data: bytes, addr: Any) -> None:
        ENTRIES.append(time.monotonic())
        osc_received(self, data, addr)

    osc_server._Protocol.datagram_received = datagram_received  # type: ignore[method-assign]
    deliver = MidiPorts._deliver

    def stamped_deliver(self: Any, clock: Any, data: Any, delta: float, arrival: float) -> None:
        # arrival: time.monotonic() when the daemon's reader thread got the message.
        ENTRIES.append(arrival)
        deliver(self, clock, data, delta, arrival)

    MidiPorts._deliver = stamped_deliver  # type: ignore[method-assign]


async def measure(events: int, stream: float, midi: bool) -> dict[str, Any]:
    stamp_entries()
    arrivals = Arrivals()
    results: dict[str, Any] = {}
    async with emulator_child(arrivals) as url:
        config = load(None)
        config = dataclasses.replace(config, scope=dataclasses.replace(config.scope, url=url))
        daemon = Daemon(config)
        osc = OscServer(OscConfig(port=0), daemon.store, daemon.commands)
        daemon.components.append(osc)
        streaming = asyncio.Event()
        daemon.supervisor.on_status(
            lambda s: streaming.set() if s["state"] == "streaming" else None
        )
        handed: dict[float, float] = {}  # value -> when the daemon gave it to the channel
        daemon.supervisor.sender.on_sent = lambda m: (
            handed.setdefault(m[KEY], time.monotonic()) if KEY in m else None
        )
        await daemon.start()
        try:
            await asyncio.wait_for(streaming.wait(), 60)
            assert osc.address is not None
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            latencies: list[float] = []
            from_entry: list[float] = []
            shares: list[float] = []
            for i in range(events + 5):
                await asyncio.sleep(SPACING)
                value = value_of(i)
                landed = arrivals.next(lambda d, v=value: d.get(KEY) == v)
                t0 = time.monotonic()
                sock.sendto(encode(ADDRESS, (value,)), osc.address)
                t1 = await asyncio.wait_for(landed, 5)
                if i >= 5:  # the first few warm up the path
                    entered = ENTRIES[-1]
                    latencies.append(t1 - t0)
                    from_entry.append(t1 - entered)
                    shares.append(handed[value] - entered)
            sock.close()
            results["osc"] = latencies
            results["osc_entry"] = from_entry
            results["osc_daemon"] = shares
            print(f"OSC entering the daemon → Scope  {summary(from_entry)}", flush=True)
            print(f"  controller send → Scope        {summary(latencies)}", flush=True)
            print(f"  daemon's share                 {summary(shares)}", flush=True)
            results["stream"] = await knob_stream(osc.address, arrivals, stream, events + 5)
            s = results["stream"]
            print(f"1 kHz knob: age of each value Scope got   {summary(s['ages'])}")
            print(f"1 kHz knob: position → Scope has it       {summary(s['catch_up'])}")
            print(f"1 kHz knob: {s['sent'][0]:.0f} values/s in, {s['rate'][0]:.1f} messages/s out")
            print(f"OSC counters {osc.counters()}", flush=True)
            if midi:
                try:
                    with jack_server():
                        (
                            results["midi"],
                            results["midi_entry"],
                            results["midi_lost"],
                        ) = await midi_events(daemon, arrivals, events)
                    print(f"MIDI CC entering the daemon → Scope  {summary(results['midi_entry'])}")
                    print(f"  controller send → Scope            {summary(results['midi'])}")
                except (ImportError, RuntimeError, OSError, TimeoutError) as err:
                    results["midi_skipped"] = str(err) or type(err).__name__
                    print(f"MIDI skipped: {err}", flush=True)
        finally:
            await daemon.stop()
    return results


def table(results: dict[str, Any]) -> str:
    def row(name: str, values: list[float], target: str) -> str:
        ms = [v * 1000 for v in values]
        return (
            f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {percentile(ms, 99):.2f} | "
            f"{max(ms):.2f} | {target} |"
        )

    s = results["stream"]
    rows = [
        "| measure | n | median (ms) | p99 (ms) | max (ms) | target |",
        "|---|---|---|---|---|---|",
        row("OSC, isolated: entering the daemon → Scope", results["osc_entry"], "p99 ≤ 5 ms"),
        row(
            "… of which the daemon (entry → handed to the data channel)",
            results["osc_daemon"],
            "—",
        ),
        row("OSC, isolated: controller's sendto → Scope", results["osc"], "—"),
    ]
    if "midi" in results:
        rows.append(
            row(
                "MIDI CC, isolated: entering the daemon → Scope",
                results["midi_entry"],
                "p99 ≤ 5 ms",
            )
        )
        rows.append(
            row("MIDI CC, isolated: controller's send (JACK) → Scope", results["midi"], "—")
        )
    rows += [
        row("OSC 1 kHz knob: age of each value Scope gets", s["ages"], "≤ 34 ms"),
        row("OSC 1 kHz knob: knob position → Scope has it (or newer)", s["catch_up"], "—"),
    ]
    text = "\n".join(rows)
    text += (
        f"\n\n1 kHz knob: {s['sent'][0]:.0f} values/s in, {s['rate'][0]:.1f} data-channel "
        "messages/s out (the sender's 30/s limit; the latest value wins)."
    )
    if results.get("midi_lost"):
        lost = results["midi_lost"]
        text += f"\n\nMIDI: {lost} of {len(results['midi']) + lost} CCs never arrived (JACK)."
    if "midi_skipped" in results:
        text += f"\n\nMIDI not measured: {results['midi_skipped']}."
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--stream", type=float, default=3.0, help="seconds of 1 kHz knob")
    parser.add_argument("--no-midi", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator()
        return
    logs.configure(args.log_level, "console")
    load_before = os.getloadavg()[0]
    results = asyncio.run(measure(args.events, args.stream, not args.no_midi))
    text = table(results)
    load_after = os.getloadavg()[0]
    text += (
        f"\n\nLoad average (1 min) before / after the run: {load_before:.2f} / {load_after:.2f}."
    )
    if max(load_before, load_after) > (os.cpu_count() or 1) * 0.75:
        text += (
            " Other processes competed for the CPU during this run: the p99 tails are mostly "
            "scheduling delay (compare the daemon's own share); re-run on a quiet machine."
        )
    print(text)
    if args.write_docs:
        write_section(
            "control",
            "`python bench/control_latency.py` — the daemon at default settings in one "
            "process, the emulator (as Scope) in another, real aiortc data channel on one "
            "machine. Time from a control message entering the daemon (the OSC datagram "
            "reaching its socket; the MIDI message reaching the daemon's reader thread) to the "
            "data-channel message "
            "arriving at the emulator, and, for context, from the controller's own send; "
            "isolated events 50 ms apart. The 1 kHz knob's target is on the age of every value "
            "Scope receives; how long a knob position waits for the next 30 Hz slot is shown "
            "beside it (the rate limit sets that, about one slot).\n\n" + text,
        )


if __name__ == "__main__":
    main()
