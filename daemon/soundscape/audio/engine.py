"""The audio engine: a source (device or file) feeding an analyzer, publishing Features.

This is the piece the daemon starts and the mapping layer listens to::

    engine = AudioEngine(config.audio)
    unsubscribe = engine.subscribe(on_features)   # called on the loop, once per block
    await engine.start()
    ...
    engine.latest                                   # the newest Features, any time
    await engine.stop()

Analysis runs on the event loop's thread, inside the source's delivery
callback (about 30-50 µs per block), so listeners see every block in order
and need no locking. A listener that raises is logged once and kept.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from soundscape.audio.capture import AudioBlock, BlockSource, open_source
from soundscape.audio.config import AudioConfig
from soundscape.audio.features import AudioAnalyzer, Features

log = structlog.get_logger(__name__)

FeaturesListener = Callable[[Features], None]

# What the source is opened with; any other key only changes the analysis.
SOURCE_KEYS = (
    "device",
    "file",
    "sample_rate",
    "block_size",
    "channels",
    "retry_initial",
    "retry_max",
)


class AudioEngine:
    """Owns one source and one analyzer; calls listeners with each block's Features."""

    def __init__(
        self,
        config: AudioConfig,
        *,
        source_factory: Callable[[AudioConfig, Callable[[AudioBlock], None]], BlockSource]
        | None = None,
    ) -> None:
        self.config = config
        self.analyzer = AudioAnalyzer(config)
        self._listeners: list[FeaturesListener] = []
        self._failed: set[int] = set()
        self._factory = source_factory or open_source
        self.source: BlockSource = self._factory(config, self._on_block)
        self.blocks = 0

    @property
    def latest(self) -> Features:
        """The newest Features (a silent reading before the first block)."""
        return self.analyzer.latest

    @property
    def running(self) -> bool:
        """True while audio is flowing (False while a device is missing and retried)."""
        return self.source.running

    def subscribe(self, listener: FeaturesListener) -> Callable[[], None]:
        """Call ``listener(features)`` for every block; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def start(self) -> None:
        await self.source.start()

    async def stop(self) -> None:
        await self.source.stop()

    async def reload(self, config: AudioConfig) -> None:
        """A new ``[audio]`` section (a config reload) while running.

        Analysis settings take a fresh analyzer (its tempo and levels learn
        again within seconds); a change to the source (device, file, rate,
        block size, channels, retry delays) reopens it.
        """
        old, self.config = self.config, config
        if config == old:
            return
        reopen = any(getattr(old, key) != getattr(config, key) for key in SOURCE_KEYS)
        self.analyzer = AudioAnalyzer(config)
        if reopen:
            await self.source.stop()
            self.source = self._factory(config, self._on_block)
            await self.source.start()
        log.info("audio_reloaded", reopened=reopen)

    def _on_block(self, block: AudioBlock) -> None:
        features = self.analyzer.process(block.samples, block.t)
        self.blocks += 1
        for listener in tuple(self._listeners):
            try:
                listener(features)
            except Exception:
                if id(listener) not in self._failed:  # once per listener, not per block
                    self._failed.add(id(listener))
                    log.exception("audio_listener_failed", listener=repr(listener))
