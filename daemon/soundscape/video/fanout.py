"""Scope's decoded frames, fanned out to every configured output.

The session supervisor calls :class:`FrameSink` methods on the event loop
thread. :class:`VideoFanout` does nothing there but hand the frame to each
output's own latest-wins queue, so no output (however slow) can delay the
session, the control path or another output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import av
import structlog

from soundscape.errors import BackendUnavailable
from soundscape.tasks import Supervised, supervise
from soundscape.video import ndi_env
from soundscape.video.config import OutputConfig
from soundscape.video.outputs.base import Output
from soundscape.video.registry import load_backend
from soundscape.video.runner import OutputRunner

log = structlog.get_logger(__name__)


class VideoFanout:
    """Implements :class:`FrameSink`; one worker thread per enabled, available output."""

    def __init__(
        self,
        outputs: Sequence[OutputConfig],
        *,
        size: tuple[int, int] = (576, 320),
        stats_interval: float = 30.0,
        backends: Mapping[str, str | type[Output]] | None = None,
    ) -> None:
        self.outputs = list(outputs)
        self.size = size
        self.stats_interval = stats_interval
        self._backends = backends
        self._runners: list[OutputRunner] = []
        self._unavailable: dict[str, dict[str, Any]] = {}
        self._stats_task: Supervised | None = None
        self._started = False
        self._streaming = False  # told to outputs started later (a reload)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._runners, self._unavailable = [], {}
        enabled = [o for o in self.outputs if o.enabled]
        if any(o.type == "ndi" and o.loopback_only for o in enabled):
            # Before any NDI backend imports cyndilib: the runtime reads this once.
            ndi_env.use_loopback()
        for config in enabled:
            self._open(config)
        self._stats_task = supervise("video-stats", self._log_stats)
        log.info(
            "video_outputs_started",
            outputs=[r.label for r in self._runners],
            unavailable=sorted(self._unavailable),
        )

    def _open(self, config: OutputConfig) -> None:
        try:
            backend_cls = load_backend(config.type, self._backends)
            reason = backend_cls.unavailable_reason(config)
        except BackendUnavailable as err:
            reason = str(err)
        except Exception as err:  # a broken backend module must not stop the others
            reason = f"backend check failed: {type(err).__name__}: {err}"
        if reason is not None:
            log.warning("output_unavailable", output=config.label, reason=reason)
            self._unavailable[config.label] = {
                "type": config.type,
                "name": config.name,
                "state": "unavailable",
                "reason": reason,
            }
            return
        runner = OutputRunner(config, backend_cls, self.size)
        runner.start()
        if self._streaming:
            runner.set_streaming(True)
        self._runners.append(runner)

    async def reload(self, outputs: Sequence[OutputConfig], *, size: tuple[int, int]) -> None:
        """New ``[[outputs]]`` (a config reload): outputs whose config is unchanged keep
        running, untouched (an NDI receiver never sees its source blink); removed or
        changed ones stop, new or changed ones start. A new size restarts them all."""
        if not self._started:
            self.outputs, self.size = list(outputs), size
            return
        wanted = [o for o in outputs if o.enabled]
        restart_all = size != self.size
        keep = [r for r in self._runners if not restart_all and r.config in wanted]
        going = [r for r in self._runners if r not in keep]
        await asyncio.gather(*(r.stop() for r in going))
        for runner in going:
            self._log_runner(runner, "video_output_final")
        kept_configs = [r.config for r in keep]
        self._runners, self._unavailable = keep, {}
        self.outputs, self.size = list(outputs), size
        for config in wanted:
            if config not in kept_configs:
                self._open(config)
        log.info(
            "video_outputs_reloaded",
            kept=[r.label for r in keep],
            stopped=[r.label for r in going],
            outputs=[r.label for r in self._runners],
        )

    async def stop(self) -> None:
        if not self._started:
            return
        task, self._stats_task = self._stats_task, None
        if task is not None:
            await task.stop()
        self._started = False  # on_frame ignores frames from here on
        await asyncio.gather(*(r.stop() for r in self._runners))
        for runner in self._runners:
            self._log_runner(runner, "video_output_final")

    # -- FrameSink ---------------------------------------------------------------
    def on_frame(self, frame: av.VideoFrame) -> None:
        if not self._started:
            return
        t_in = time.perf_counter_ns()
        for runner in self._runners:
            runner.offer(frame, t_in)

    def on_stream_state(self, streaming: bool) -> None:
        if not self._started:
            return
        self._streaming = streaming
        for runner in self._runners:
            runner.set_streaming(streaming)

    # -- status ------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, Any]]:
        """Per output (key ``type:name``): state, frames in/sent/held/dropped, latency.

        After ``stop()`` the final figures stay readable.
        """
        out = {r.label: r.snapshot() for r in self._runners}
        out.update({label: dict(info) for label, info in self._unavailable.items()})
        return out

    async def _log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            for runner in self._runners:
                self._log_runner(runner, "video_output_stats")

    @staticmethod
    def _log_runner(runner: OutputRunner, event: str) -> None:
        snap = runner.snapshot()
        log.info(
            event,
            output=runner.label,
            state=snap["state"],
            frames_in=snap["frames_in"],
            sent=snap["sent"],
            held=snap["held"],
            dropped=snap["dropped"],
            errors=snap["errors"],
            latency_ms_p50=snap["latency_ms_p50"],
            latency_ms_p99=snap["latency_ms_p99"],
            fps=snap["fps"],
        )
