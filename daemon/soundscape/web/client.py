"""``soundscape status``: ask the running daemon through its control endpoint."""

from __future__ import annotations

from typing import Any

import httpx

from soundscape.web.config import HttpConfig, client_address


class NoDaemon(Exception):
    """Nothing answered at the control endpoint (or it refused us); says why."""


def status_url(config: HttpConfig) -> str:
    host, port = client_address(config)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/api/status"


def fetch_status(config: HttpConfig, timeout: float = 3.0) -> dict[str, Any]:
    url = status_url(config)
    token = config.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as err:
        raise NoDaemon(f"no daemon answers at {url}: {err or type(err).__name__}") from None
    if response.status_code == 401:
        raise NoDaemon(f"{url} wants a token: set ${config.token_env}")
    if response.status_code != 200:
        raise NoDaemon(f"{url} answered HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise NoDaemon(f"{url} did not answer JSON: not a soundscape daemon?") from None
    if not isinstance(data, dict) or "session" not in data:
        raise NoDaemon(f"{url} did not answer a soundscape status")
    return data


def format_status(data: dict[str, Any]) -> str:
    """The status as a few readable lines."""
    s = data["session"]
    lines = [f"session   {s['state']}" + (f": {s['reason']}" if s.get("reason") else "")]
    lines.append(
        f"          {s.get('fps', 0):.1f} fps, {s.get('frames', 0)} frames, "
        f"{s.get('reconnects', 0)} reconnects; pipeline {'+'.join(s.get('pipeline') or [])} "
        f"at {s.get('scope_url')}"
    )
    loss = s.get("last_loss")
    if loss:
        lines.append(f"          last loss {loss['ago']:.0f} s ago: {loss['reason'] or '?'}")
    scene = data.get("scene") or {}
    lines.append(f"scene     {scene.get('current') or '-'}  (of {len(scene.get('scenes', []))})")
    for prompt in data.get("prompts", []):
        if isinstance(prompt, dict):
            lines.append(f"prompt    {prompt.get('text')!r} x{prompt.get('weight', 1)}")
        else:
            lines.append(f"prompt    {prompt!r}")
    for lora in data.get("lora_scales", []):
        lines.append(f"lora      {lora.get('path')} {lora.get('scale')}")
    if data.get("paused"):
        lines.append("paused    yes")
    tempo = data.get("tempo") or {}
    held = []
    if tempo.get("downbeat_held"):
        held.append("the one held")
    if tempo.get("octave_bpm"):
        held.append(f"octave held at {tempo['octave_bpm']}")
    extra = f" ({', '.join(held)})" if held else ""
    lines.append(f"tempo     {tempo.get('bpm')} BPM from {tempo.get('source') or 'nothing'}{extra}")
    outputs = data.get("outputs") or {}
    if not outputs:
        lines.append("output    none: video goes nowhere")
    for label, out in outputs.items():
        counts = ", ".join(
            f"{k} {out[k]}" for k in ("sent", "dropped", "held", "errors") if k in out
        )
        reason = f" ({out['reason']})" if out.get("reason") else ""
        lines.append(f"output    {label} {out.get('state')}{reason}: {counts}")
    lines += _screen_lines(data.get("screens") or {})
    inputs = data.get("inputs") or {}
    osc = inputs.get("osc") or {}
    if osc.get("enabled"):
        counters = osc.get("counters") or {}
        lines.append(
            f"input     osc {osc.get('health')} {osc.get('address') or ''}: "
            f"{counters.get('received', 0)} received"
        )
    midi = inputs.get("midi") or {}
    if midi.get("enabled"):
        lines.append(
            f"input     midi {midi.get('health')}: open {midi.get('open') or []}, "
            f"wanted {midi.get('wanted') or []}"
        )
    audio = inputs.get("audio") or {}
    if audio.get("enabled"):
        lines.append(
            f"input     audio {audio.get('health')} ({audio.get('source')}): "
            f"{audio.get('level_db')} dBFS"
        )
    video_in = inputs.get("video_in") or {}
    if video_in.get("enabled"):
        lines.append(
            f"input     video in {video_in.get('health')} ({video_in.get('source')}): "
            f"{video_in.get('sent', 0)} frames sent to Scope"
        )
    return "\n".join(lines)


def _screen_lines(screens: dict[str, Any]) -> list[str]:
    """A line per server when there is more than one (standbys, screens)."""
    servers = [(n, sn, sv) for n, s in screens.items() for sn, sv in s["servers"].items()]
    if len(servers) < 2:
        return []
    lines = []
    for name, screen in screens.items():
        failover = screen.get("failover") or {}
        last = failover.get("last_switch") or {}
        why = f" (switched: {last['reason']})" if last else ""
        lines.append(
            f"screen    {name}: shows {screen['shown']}, scene {screen.get('scene') or '-'}{why}"
        )
        for server, info in screen["servers"].items():
            role = info["role"] + (f" {info['mode']}" if info.get("mode") else "")
            lines.append(
                f"          {server} ({role}) {info['state']} at {info['url']}: "
                f"{info.get('frames', 0)} frames, {info.get('reconnects', 0)} reconnects"
            )
    return lines
