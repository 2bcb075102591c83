"""The daemon's configuration: the root schema and the TOML file.

Each component owns its section's dataclass (declared with
:func:`soundscape.settings.setting`); this module gathers them under
:class:`Config`, reads the file, and reports every error at once with its key
path and line (see ``soundscape check-config``).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundscape.audio.config import AudioConfig
from soundscape.control.midi_config import MidiConfig
from soundscape.control.midi_config import screen_problems as midi_screen_problems
from soundscape.control.osc_config import OscConfig
from soundscape.errors import ConfigError, ParamError
from soundscape.mapping.config import BeatConfig, MappingConfig, ScenesConfig, cross_check
from soundscape.scope.config import (  # noqa: F401  (re-exported: the sections live with their part)
    LORA_MERGE_MODES,
    QUANTIZATIONS,
    VAE_TYPES,
    LoraEntry,
    PipelineSection,
    ScopeSection,
    SessionSection,
)
from soundscape.scope.params import DEFAULT_PARAMETERS, ParameterStore
from soundscape.screens.config import (
    MAIN,
    FailoverSection,
    ServerEntry,
    assign_names,
)
from soundscape.screens.config import cross_check as servers_cross_check
from soundscape.settings import Problem, build, setting
from soundscape.state.config import StateConfig
from soundscape.video.config import OutputConfig, validate_outputs
from soundscape.video.ndi_discovery import NdiConfig
from soundscape.video_in.config import VideoInConfig
from soundscape.video_in.spec import parse_spec
from soundscape.web.config import HttpConfig


@dataclasses.dataclass
class ParametersSection:
    """Scope's live parameters at start; the same names as on the data channel."""

    input_mode: str = setting("text", "text or video.", choices=("text", "video"))
    prompts: list[Any] = setting(
        DEFAULT_PARAMETERS["prompts"], "Prompts: strings or {text, weight} tables (1 to 4)."
    )
    prompt_interpolation_method: str = setting(
        "linear", "linear, or slerp (exactly 2 prompts).", choices=("linear", "slerp")
    )
    denoising_step_list: list[int] = setting(
        DEFAULT_PARAMETERS["denoising_step_list"], "Denoising timesteps, strictly descending."
    )
    noise_scale: float = setting(0.7, "Noise (video mode only).", low=0, high=1)
    noise_controller: bool = setting(False, "Automatic noise (video mode only).")
    manage_cache: bool = setting(True, "Reset the cache on big changes automatically.")
    kv_cache_attention_bias: float = setting(
        0.3, "Reliance on past frames (0.01-1).", low=0.01, high=1
    )
    vace_context_scale: float | None = setting(None, "VACE strength (0-2).", low=0, high=2)
    extra: dict[str, Any] = setting({}, "Other runtime parameters of the pipeline, sent as is.")

    def to_parameters(self, pipeline: PipelineSection) -> dict[str, Any]:
        params = {
            k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v is not None
        }
        params.update(self.extra)
        ids = list(pipeline.pipeline_ids)
        if self.input_mode == "video":
            ids = [*pipeline.preprocessors, *ids]
        params["pipeline_ids"] = ids
        if pipeline.loras:
            params["lora_scales"] = sorted(
                ({"path": lo.path, "scale": lo.scale} for lo in pipeline.loras),
                key=lambda s: s["path"],
            )
        return params


@dataclasses.dataclass
class LogSection:
    level: str = setting(
        "info", "debug, info, warning or error.", choices=("debug", "info", "warning", "error")
    )
    format: str = setting(
        "auto",
        "auto (console on a terminal, JSON lines otherwise), console or json.",
        choices=("auto", "console", "json"),
    )


@dataclasses.dataclass
class EmulatorSection:
    """The built-in Scope emulator, used by ``soundscape demo``."""

    host: str = setting("127.0.0.1", "Address the demo's emulator listens on.")
    port: int = setting(0, "Port (0 = any free port).", low=0, high=65535)
    fps: float = setting(30.0, "Frames per second it sends.", low=1, high=120)
    load_time: float = setting(0.5, "Seconds a pipeline load takes.", low=0, high=600)


@dataclasses.dataclass
class Config:
    scope: ServerEntry = setting(factory=ServerEntry)
    servers: list[ServerEntry] = setting(
        [],
        "Further Scope servers: written as [[scope]] entries after the first (see [scope]).",
        hidden=True,
    )
    failover: FailoverSection = setting(factory=FailoverSection)
    pipeline: PipelineSection = setting(factory=PipelineSection)
    session: SessionSection = setting(factory=SessionSection)
    parameters: ParametersSection = setting(factory=ParametersSection)
    log: LogSection = setting(factory=LogSection)
    emulator: EmulatorSection = setting(factory=EmulatorSection)
    outputs: list[OutputConfig] = setting(
        [], "Video outputs ([[outputs]] tables): ndi, spout, syphon, record."
    )
    ndi: NdiConfig = setting(factory=NdiConfig)
    video_in: VideoInConfig = setting(factory=VideoInConfig)
    osc: OscConfig = setting(factory=OscConfig)
    midi: MidiConfig = setting(factory=MidiConfig)
    audio: AudioConfig = setting(factory=AudioConfig)
    mapping: MappingConfig = setting(factory=MappingConfig)
    beat: BeatConfig = setting(factory=BeatConfig)
    scenes: ScenesConfig = setting(factory=ScenesConfig)
    http: HttpConfig = setting(factory=HttpConfig)
    state: StateConfig = setting(factory=StateConfig)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        try:
            ParameterStore(self.initial_parameters(), loras=self.lora_paths())
        except ParamError as err:
            problems += [("parameters", problem) for problem in err.problems]
        problems += [(f"outputs{key}", message) for key, message in validate_outputs(self.outputs)]
        if self.video_in.source:
            try:
                parse_spec(self.video_in.source)
            except ValueError as err:
                problems.append(("video_in.source", str(err)))
        problems += cross_check(
            self.mapping, self.scenes, loras=self.lora_paths(), bands=self.audio.band_names
        )
        entries = self.server_entries()
        problems += servers_cross_check(entries[0], entries[1:])
        screens = set(self.screen_names())
        problems += midi_screen_problems(self.midi, screens)
        for i, rule in enumerate(self.mapping.rules):
            if rule.screen not in ("", "*") and rule.screen not in screens:
                known = ", ".join(sorted(screens))
                where = f"mapping.rules[{i}].screen"
                problems.append((where, f"no screen {rule.screen!r} ({known})"))
        return problems

    # ----- several servers ([[scope]])

    @property
    def main_name(self) -> str:
        return self.scope.name or MAIN

    def server_entries(self) -> list[ServerEntry]:
        """Every Scope server, named: the main primary first, then the ``[[scope]]`` rest."""
        main = dataclasses.replace(self.scope, name=self.main_name)
        return [main, *assign_names(self.scope, self.servers)]

    def screen_names(self) -> list[str]:
        return [e.name for e in self.server_entries() if e.role in ("primary", "screen")]

    def screen_parameters(self, entry: ServerEntry) -> dict[str, Any]:
        """A screen's starting parameters: the main ones with its own prompts."""
        params = self.initial_parameters()
        if entry.prompts:
            params["prompts"] = list(entry.prompts)
        return params

    def initial_parameters(self) -> dict[str, Any]:
        parameters = self.parameters
        if self.video_in.source:  # a source is sent in its own mode ([video_in] input_mode)
            parameters = dataclasses.replace(parameters, input_mode=self.video_in.input_mode)
        return parameters.to_parameters(self.pipeline)

    def lora_paths(self) -> dict[str, str]:
        return {lora.name: lora.path for lora in self.pipeline.loras}


# --------------------------------------------------------------------------- file


def key_line(text: str, path: str) -> int | None:
    """Best-effort line number (1-based) of a dotted key path in TOML ``text``.

    tomllib gives no positions; scanning for the table header and then the key
    is enough to point a user at the right line.
    """
    parts = [p for p in re.split(r"\.|\[\d+\]", path) if p]
    if not parts:
        return None
    lines = text.splitlines()
    entry = re.match(r"^(\w+)\[(\d+)\]\.(\w+)$", path)
    if entry:  # a key of the N-th [[table]] entry (e.g. scope[1].url): after its header
        table, index, key = entry.group(1), int(entry.group(2)), entry.group(3)
        header = re.compile(r"^\s*\[\[\s*" + re.escape(table) + r"\s*\]\]\s*(#.*)?$")
        starts = [i for i, line in enumerate(lines) if header.match(line)]
        if index < len(starts):
            assign = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            for i in range(starts[index] + 1, len(lines)):
                if lines[i].lstrip().startswith("["):
                    break
                if assign.match(lines[i]):
                    return i + 1
            return starts[index] + 1
    start, best = 0, None
    # Deepest table header that prefixes the path.
    for depth in range(len(parts), 0, -1):
        header = re.compile(
            r"^\s*\[\[?\s*"
            + r"\s*\.\s*".join(map(re.escape, parts[:depth]))
            + r"\s*\]\]?\s*(#.*)?$"
        )
        for i, line in enumerate(lines):
            if header.match(line):
                start, best = i + 1, i + 1
                parts = parts[depth:]
                break
        else:
            continue
        break
    if not parts:
        return best
    key = re.compile(r"^\s*" + re.escape(parts[0]) + r"\s*=")
    for i in range(start, len(lines)):
        if lines[i].lstrip().startswith("[") and i >= start and best is not None:
            break
        if key.match(lines[i]):
            return i + 1
    return best


def parse(data: Mapping[str, Any], text: str = "", source: str = "config") -> Config:
    """Build a :class:`Config`; raise :class:`ConfigError` listing every problem."""
    problems: list[Problem] = []
    listed = isinstance(data.get("scope"), list)
    if listed:  # [[scope]]: the first entry is the main primary, the rest further servers
        entries = data["scope"]
        if not entries:
            raise ConfigError([f"{source}: scope: an empty [[scope]] list"], source)
        if "servers" in data:
            raise ConfigError([f"{source}: servers: write further servers as [[scope]]"], source)
        data = {**data, "scope": entries[0], "servers": entries[1:]}
    config = build(Config, data, "", problems)
    if listed:
        problems = [dataclasses.replace(p, path=_listed_path(p.path)) for p in problems]
    if problems:
        lines = []
        for problem in problems:
            line = key_line(text, problem.path) if text else None
            where = f"{source}:{line}: " if line else f"{source}: "
            lines.append(where + str(problem))
        raise ConfigError(lines, source)
    return config


def _listed_path(path: str) -> str:
    """A problem's key path as the user wrote it: ``servers[0].url`` is ``scope[1].url``."""
    if path.startswith("servers["):
        index, rest = path[len("servers[") :].split("]", 1)
        return f"scope[{int(index) + 1}]{rest}"
    if path == "scope" or path.startswith("scope."):
        return "scope[0]" + path[len("scope") :]
    return path


def load(path: str | Path | None) -> Config:
    """Read and validate a TOML file (``None`` = all defaults)."""
    if path is None:
        return parse({})
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror or err}"], str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{path}: not valid TOML: {err}"], str(path)) from None
    return parse(data, text, str(path))
