"""Command line: ``soundscape run|demo|emulate|check-config|...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from soundscape import __version__, logs
from soundscape.config import Config, load
from soundscape.control import osc_config
from soundscape.demo_show import demo_config, generated_loop, with_music
from soundscape.errors import ConfigError
from soundscape.screens.config import ServerEntry
from soundscape.state.paths import StateFiles
from soundscape.urls import http_url_problem
from soundscape.video.config import ndi_output
from soundscape.video_in.spec import parse_spec
from soundscape.web.config import DEFAULT_LISTEN

log = structlog.get_logger(__name__)

BAD_CONFIG = 2  # the one exit code for a config (file or flags) that does not validate


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundscape",
        description="Plays a Daydream Scope server like an instrument: "
        "OSC, MIDI and audio in; NDI/Spout/Syphon out.",
    )
    parser.add_argument("--version", action="version", version=f"soundscape {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def live_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", "-c", type=Path, help="TOML config file (default: none, built-in defaults)"
        )
        p.add_argument(
            "--log-level",
            choices=("debug", "info", "warning", "error"),
            help="log level (overrides [log].level, default info)",
        )
        p.add_argument(
            "--log-format",
            choices=("auto", "console", "json"),
            help="console on a terminal, JSON lines otherwise (auto); overrides [log].format",
        )
        osc_config.add_cli_arguments(p)
        p.add_argument(
            "--ndi",
            action="append",
            default=[],
            metavar="NAME",
            help="add an NDI output with this source name (repeatable)",
        )
        p.add_argument(
            "--video-in",
            metavar="SPEC",
            help="send this to Scope in video mode: ndi:NAME, /dev/videoN, a file or URL, "
            "or test ([video_in] source)",
        )
        p.add_argument(
            "--audio-file", metavar="FILE", help="analyse this audio file, looped (enables [audio])"
        )
        p.add_argument(
            "--audio-device",
            metavar="NAME",
            help="capture from the input whose name contains NAME (enables [audio])",
        )
        p.add_argument(
            "--fresh",
            action="store_true",
            help="start from the config alone, not from the saved show state",
        )
        p.add_argument(
            "--link",
            action="store_true",
            help="join the Ableton Link session ([beat] link; needs the 'link' extra)",
        )
        http_flag(p, "serve the control endpoint and operator's page on HOST:PORT")
        ndi_flags(p)

    def ndi_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--ndi-discovery",
            metavar="HOST[:PORT]",
            help="NDI discovery server(s), comma-separated, where mDNS does not work "
            "([ndi].discovery)",
        )
        p.add_argument(
            "--ndi-ip",
            action="append",
            default=[],
            metavar="IP",
            help="also look for NDI sources on this machine (repeatable; [ndi].extra_ips)",
        )
        p.add_argument(
            "--ndi-loopback",
            action="store_true",
            help="NDI on 127.0.0.1: for a receiver on this same machine ([ndi].loopback)",
        )

    def http_flag(p: argparse.ArgumentParser, text: str) -> None:
        p.add_argument(
            "--http",
            metavar="HOST:PORT",
            help=f"{text} ([http].listen; default {DEFAULT_LISTEN}, loopback only; any other "
            "address needs a token in $SOUNDSCAPE_HTTP_TOKEN)",
        )

    run = sub.add_parser("run", help="run the daemon against a Scope server")
    live_flags(run)
    run.add_argument(
        "--scope-url",
        help="Scope server URL (overrides [scope].url, default http://127.0.0.1:8000)",
    )
    run.add_argument(
        "--standby-url",
        action="append",
        default=[],
        metavar="URL",
        help="a standby Scope server for the main screen, running the same show; the outputs"
        " take its frames when the primary stops (repeatable; adds a [[scope]] standby)",
    )
    run.add_argument(
        "--standby-mode",
        choices=("hot", "warm"),
        default="hot",
        help="hot: its session streams all the time, takes over within frames (doubles the"
        " GPU cost); warm: pipeline loaded, no session, takes over in ~0.3 s (default hot)",
    )

    demo = sub.add_parser("demo", help="run the daemon with a built-in Scope emulator")
    live_flags(demo)

    emulate = sub.add_parser("emulate", help="run only the Scope-compatible emulator")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulate.add_argument("--port", type=int, default=8000, help="HTTP port (Scope's is 8000)")
    emulate.add_argument("--width", type=int, default=576, help="frame width it sends")
    emulate.add_argument("--height", type=int, default=320, help="frame height it sends")
    emulate.add_argument("--fps", type=float, default=30.0, help="frames per second it sends")
    emulate.add_argument(
        "--load-time", type=float, default=0.5, help="seconds a diffusion pipeline load takes"
    )
    emulate.add_argument(
        "--restart-downtime",
        type=float,
        default=4.4,
        help="seconds POST /api/v1/restart refuses connections",
    )
    emulate.add_argument(
        "--no-ice-servers", action="store_true", help="list no STUN server (default: Google's)"
    )
    emulate.add_argument("--tempo", type=float, default=None, help="send tempo_update at BPM")
    emulate.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level",
    )

    status = sub.add_parser(
        "status",
        help="ask the running daemon how it is doing (exit 1 when none answers)",
        description="Asks the running daemon (found from the same --config / --http) for its "
        "session, scene, prompts, tempo, outputs and inputs. Exits 1 when no daemon answers.",
    )
    status.add_argument("--config", "-c", type=Path, help="the daemon's TOML config file")
    http_flag(status, "the daemon's control endpoint")
    status.add_argument("--json", action="store_true", help="print the whole status as JSON")
    status.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")

    sources = sub.add_parser(
        "ndi-sources",
        help="list the NDI sources this machine sees",
        description="Lists the NDI sources found within --seconds, with the same discovery "
        "settings as the daemon ([ndi] of --config, and the flags). Exits 1 when none is found.",
    )
    sources.add_argument("--config", "-c", type=Path, help="use this config's [ndi]")
    ndi_flags(sources)
    sources.add_argument("--seconds", type=float, default=3.0, help="how long to look")

    check = sub.add_parser("check-config", help="validate a config file; report every error")
    check.add_argument("file", type=Path, help="the TOML config file (also checks its files)")

    sub.add_parser("audio-devices", help="list audio inputs")
    analyze = sub.add_parser(
        "analyze", help="run the live beat tracker over an audio file: tempo, beats, bars"
    )
    analyze.add_argument("file", type=Path, help="the audio file to analyse")
    analyze.add_argument("--json", action="store_true", help="print JSON")
    analyze.add_argument("--config", type=Path, default=None, help="use this config's [audio]")
    analyze.add_argument(
        "--octaves",
        action="store_true",
        help="also read it with the tempo prior an octave either way (three runs): whether "
        "its tempo is ambiguous (90 or 180) and which beat.prior_bpm takes each reading",
    )
    sub.add_parser("midi-ports", help="list MIDI ports")
    learn = sub.add_parser("midi-learn", help="bind the next MIDI control moved to TARGET")
    learn.add_argument("target", help="e.g. noise_scale, lora:ink, prompt_weight:1, command:panic")
    learn.add_argument(
        "--config",
        "-c",
        type=Path,
        help="the daemon's config file: its [midi] ports and [state]; the binding is saved "
        "to the state directory beside that show's state (SIGHUP the daemon to use it)",
    )
    learn.add_argument(
        "--save-to-config",
        action="store_true",
        help="write the binding into the --config file instead (comments kept; a config you own)",
    )
    learn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a move")
    _explain(parser, sub)
    return parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default where there is one to show (not for None, False or [])."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default in (None, False, [], argparse.SUPPRESS) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _explain(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """Every subcommand gets a description (its one-line help unless it has more)."""
    parser.formatter_class = _HelpFormatter
    for choice in sub._choices_actions:
        command = sub.choices[choice.dest]
        command.formatter_class = _HelpFormatter
        if not command.description:
            text = choice.help or ""
            command.description = text[:1].upper() + text[1:] + "."
        for action in command._actions:
            if action.help is None and action.default not in (None, False, []):
                action.help = "default: %(default)s"  # a flag nobody described still says it


def _bad_config(err: ConfigError) -> int:
    """Every problem of a refused config on stderr; the one exit code for a bad config."""
    print("\n".join(err.problems), file=sys.stderr)
    return BAD_CONFIG


def ndi_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("cyndilib") is not None


def _load_config(args: argparse.Namespace) -> Config:
    if args.command == "demo":
        # The demo show, with --config and the flags layered over it (not instead of it).
        config = demo_config(args.config)
        if not args.audio_file and not args.audio_device and args.demo_loop is not None:
            config = with_music(config, args.demo_loop)
    else:
        config = load(getattr(args, "config", None))
    if getattr(args, "scope_url", None):
        problem = http_url_problem(args.scope_url)  # the same check as [scope].url
        if problem:
            raise ConfigError([f"--scope-url: {problem}"], "command line")
        config = dataclasses.replace(
            config, scope=dataclasses.replace(config.scope, url=args.scope_url)
        )
    for url in getattr(args, "standby_url", None) or []:
        problem = http_url_problem(url)
        if problem:
            raise ConfigError([f"--standby-url: {problem}"], "command line")
        standby = ServerEntry(url=url, role="standby", mode=args.standby_mode)
        config = dataclasses.replace(config, servers=[*config.servers, standby])
    config = dataclasses.replace(
        config, osc=osc_config.apply_cli(config.osc, args.osc_port, args.osc_feedback)
    )
    outputs = [*config.outputs, *(ndi_output(name) for name in args.ndi)]
    demo_source = ndi_output("soundscape")
    if args.command == "demo" and ndi_installed() and demo_source not in outputs:
        # The demo shows the whole chain: its NDI source comes in addition to any output
        # a --config or --ndi adds (layered over the demo show, not instead of it).
        outputs = [demo_source, *outputs]
    config = dataclasses.replace(config, outputs=outputs)
    if getattr(args, "video_in", None):
        try:
            parse_spec(args.video_in)
        except ValueError as err:
            raise ConfigError([f"--video-in: {err}"], "command line") from None
        video_in = dataclasses.replace(config.video_in, source=args.video_in)
        config = dataclasses.replace(config, video_in=video_in)
    if args.audio_file or args.audio_device:
        config = dataclasses.replace(
            config,
            audio=dataclasses.replace(
                config.audio,
                enabled=True,
                file=args.audio_file or "",
                device=args.audio_device or config.audio.device,
            ),
        )
    config = _with_http(config, args)
    config = _with_ndi(config, args)
    if getattr(args, "link", False):
        config = dataclasses.replace(config, beat=dataclasses.replace(config.beat, link=True))
    log_section = config.log
    if args.log_level or args.log_format:
        log_section = dataclasses.replace(
            log_section,
            level=args.log_level or log_section.level,
            format=args.log_format or log_section.format,
        )
    return dataclasses.replace(config, log=log_section)


def _with_ndi(config: Config, args: argparse.Namespace) -> Config:
    """``--ndi-discovery``, ``--ndi-ip``, ``--ndi-loopback`` over ``[ndi]``."""
    ndi = config.ndi
    if args.ndi_discovery:
        ndi = dataclasses.replace(ndi, discovery=args.ndi_discovery)
    if args.ndi_ip:
        ndi = dataclasses.replace(ndi, extra_ips=[*ndi.extra_ips, *args.ndi_ip])
    if args.ndi_loopback:
        ndi = dataclasses.replace(ndi, loopback=True)
    problems = [f"--ndi: {key}: {message}" for key, message in ndi.check()]
    if problems:
        raise ConfigError(problems, "command line")
    return dataclasses.replace(config, ndi=ndi)


def _ndi_sources(args: argparse.Namespace) -> int:
    from soundscape.errors import BackendUnavailable
    from soundscape.video import ndi_env
    from soundscape.video.ndi_sources import list_sources

    try:
        config = _with_ndi(load(args.config), args)
    except ConfigError as err:
        return _bad_config(err)
    ndi_env.configure(config.ndi)  # before cyndilib loads
    try:
        names = list_sources(args.seconds)
    except BackendUnavailable as err:
        print(err, file=sys.stderr)
        return 1
    for name in names:
        print(name)
    if not names:
        print(
            f"no NDI source seen in {args.seconds:g} s; without mDNS try --ndi-loopback "
            "(this machine), --ndi-ip IP or --ndi-discovery HOST",
            file=sys.stderr,
        )
        return 1
    return 0


def _osc_asked_for(args: argparse.Namespace) -> bool:
    """The performer chose the OSC port (--osc-port, or port in the file's [osc])."""
    import tomllib

    if args.osc_port is not None:
        return True
    if args.config is None:
        return False
    try:
        data = tomllib.loads(args.config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False  # already loaded once; a file changed since then is reload's concern
    osc = data.get("osc")
    return isinstance(osc, dict) and "port" in osc


def _with_http(config: Config, args: argparse.Namespace) -> Config:
    """``--http HOST:PORT`` over ``[http].listen`` (checked like the config's)."""
    if not getattr(args, "http", None):
        return config
    http = dataclasses.replace(config.http, listen=args.http, enabled=True)
    problems = [f"--http: {message}" for _, message in http.check()]
    if problems:
        raise ConfigError(problems, "command line")
    return dataclasses.replace(config, http=http)


def _status(args: argparse.Namespace) -> int:
    import json

    from soundscape.web.client import NoDaemon, fetch_status, format_status

    try:
        config = _with_http(load(args.config), args)
        data = fetch_status(config.http, timeout=args.timeout)
    except ConfigError as err:
        return _bad_config(err)
    except NoDaemon as err:
        print(err, file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else format_status(data))
    return 0


def _check_config(path: Path) -> int:
    import os

    from soundscape.config_files import file_problems

    try:
        config = load(path)
        problems = [f"{path}: {p}" for p in file_problems(config, os.environ, Path.home())]
    except ConfigError as err:
        problems = err.problems
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} error(s)", file=sys.stderr)
        return BAD_CONFIG
    print(f"{path}: ok")
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from soundscape.emulator import EmulatorConfig, serve

    logs.configure(args.log_level)
    cfg = EmulatorConfig(
        width=args.width,
        height=args.height,
        fps=args.fps,
        load_time=args.load_time,
        restart_downtime=args.restart_downtime,
        tempo_bpm=args.tempo,
    )
    if args.no_ice_servers:
        cfg.ice_servers = []

    async def main() -> None:
        from soundscape.app import install_signal_handlers

        stop = asyncio.Event()
        install_signal_handlers(stop)
        await serve(
            cfg,
            args.host,
            args.port,
            stop,
            on_start=lambda emu: log.info(
                "emulator_listening", url=emu.url, faults=f"curl -X POST {emu.url}/_emulator/drop"
            ),
        )

    asyncio.run(main())
    return 0


def _audio_devices() -> int:
    from soundscape.audio.devices import list_input_devices
    from soundscape.errors import BackendUnavailable

    try:
        devices = list_input_devices()
    except BackendUnavailable as err:
        print(err, file=sys.stderr)
        return 1
    if not devices:
        print("no audio inputs found")
    for device in devices:
        print(
            f"{device.index:3d}  {device.name}  ({device.host_api}, {device.channels} ch, "
            f"{device.default_rate:g} Hz)"
        )
    return 0


def _midi_ports() -> int:
    from soundscape.control.midi_ports import format_ports, list_ports
    from soundscape.errors import BackendUnavailable
    from soundscape.quiet import native_stderr_silenced

    try:
        with native_stderr_silenced():  # ALSA/JACK print their own failure lines
            ports = list_ports()
    except BackendUnavailable as err:
        print(err, file=sys.stderr)
        return 1
    print(format_ports(ports))
    return 0


def _state_files(config: Config, config_path: Path | None) -> StateFiles:
    import os

    from soundscape.state.paths import state_files

    return state_files(config.state, config_path, os.environ, Path.home())


def _analyze(args: argparse.Namespace) -> int:
    import json

    from soundscape.audio.analyze import AnalyzeError, analyze

    try:
        result = analyze(args.file, load(args.config).audio, octaves=args.octaves)
    except ConfigError as err:
        return _bad_config(err)
    except AnalyzeError as err:
        print(err, file=sys.stderr)
        return 1
    print(json.dumps(result.as_json()) if args.json else result.text())
    return 0


def _midi_learn(args: argparse.Namespace) -> int:
    import functools

    from soundscape.control.midi import learn_once
    from soundscape.control.midi_learn import save_mapping
    from soundscape.errors import BackendUnavailable, ParamError
    from soundscape.state.learned import LearnedMappings

    logs.configure("warning")

    def ready(inputs: list[str]) -> None:
        print(f"listening on {', '.join(inputs) or 'no input yet'}: move a control now")

    try:
        if args.save_to_config:
            if args.config is None:
                print("--save-to-config needs --config", file=sys.stderr)
                return 1
            where: Path = args.config
            save = functools.partial(save_mapping, args.config)
        else:
            where = _state_files(load(args.config), args.config).learned
            save = LearnedMappings(where).save
        mapping = asyncio.run(
            learn_once(args.config, args.target, save=save, timeout=args.timeout, on_ready=ready)
        )
    except ConfigError as err:
        return _bad_config(err)
    except (BackendUnavailable, ParamError) as err:
        print(err, file=sys.stderr)
        return 1
    if mapping is None:
        print("nothing moved: no binding saved", file=sys.stderr)
        return 1
    print(
        f"bound {mapping.type} {mapping.number} (channel {mapping.channel}) to "
        f"{mapping.target}; saved to {where}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "status":
        return _status(args)
    if args.command == "ndi-sources":
        return _ndi_sources(args)
    if args.command == "audio-devices":
        return _audio_devices()
    if args.command == "analyze":
        return _analyze(args)
    if args.command == "midi-ports":
        return _midi_ports()
    if args.command == "midi-learn":
        return _midi_learn(args)
    if args.command == "emulate":
        return _emulate(args)
    with contextlib.ExitStack() as stack:
        # The demo's generated music lives in a temp directory removed when the demo ends.
        args.demo_loop = stack.enter_context(generated_loop()) if args.command == "demo" else None
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args)
    except ConfigError as err:
        return _bad_config(err)
    logs.configure(config.log.level, config.log.format)
    from soundscape.video import ndi_env

    ndi_env.configure(config.ndi)  # before any NDI output loads the runtime
    if not [o for o in config.outputs if o.enabled]:
        log.warning("no_outputs", hint="video goes nowhere; add --ndi NAME or [[outputs]]")

    from soundscape.app import run
    from soundscape.errors import StartupError
    from soundscape.tasks import CoreFailed

    try:
        asyncio.run(
            run(
                config,
                with_emulator=args.command == "demo",
                config_path=args.config,
                # SIGHUP reads the file again, with the same command-line overrides.
                load_config=(lambda: _load_config(args)) if args.config else None,
                fresh=args.fresh,
                required={"osc"} if config.osc.enabled and _osc_asked_for(args) else set(),
            )
        )
    except CoreFailed:
        return 1  # logged as core_failed; systemd's Restart=always starts the daemon again
    except StartupError as err:
        log.error("startup_failed", reason=str(err))
        return 1  # something asked for explicitly cannot start: systemd shows the failure
    return 0


if __name__ == "__main__":
    sys.exit(main())
