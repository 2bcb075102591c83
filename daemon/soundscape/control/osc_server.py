"""OSC in: a UDP receiver that turns OSC messages into parameter changes and commands.

Packets are received with an asyncio ``DatagramProtocol`` and parsed by
:mod:`~soundscape.control.osc_packet` (python-osc underneath). Bundles time-
tagged in the future are scheduled on the loop (``call_at``), never slept on.
Incoming addresses may be OSC patterns; they are matched against the
concrete addresses of :mod:`~soundscape.control.osc_address`'s table.

Every change goes through the :class:`ParameterStore`, tagged
``source="osc:<ip>:<port>"`` so feedback does not bounce a controller's own
move back to it; named actions (scene, panic, tap, learn, reconnect) go
through the :class:`CommandBus`, in order, on one worker task.

A daemon with several screens (``screens=``) takes every address under
``/screen/<name>`` too, applied to that screen's store and commands; a
screen's changes go out under its prefix. Unprefixed addresses are the main
screen's, as in a single-screen daemon.

A bad message is refused with one log line (rate-limited per address) and
counted; a bad packet never gets further than the parser.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from soundscape.control import targets
from soundscape.control.commands import CommandBus
from soundscape.control.osc_address import (
    SCOPE_REFUSED,
    TABLE,
    AddressTable,
    Feedback,
    Route,
    View,
    bind,
    check_screen_name,
    screen_prefix,
    split_screen,
)
from soundscape.control.osc_config import OscConfig
from soundscape.control.osc_feedback import Addr, OscFeedback, normalise_ip
from soundscape.control.osc_logging import LogLimiter
from soundscape.control.osc_packet import MalformedPacket, Message, decode
from soundscape.control.osc_pattern import PatternError, compile_pattern, is_pattern
from soundscape.control.screens import ScreenControls
from soundscape.errors import BackendUnavailable, ParamError
from soundscape.scope.params import INTERPOLATION_METHODS, ParameterStore
from soundscape.tasks import Supervised, supervise

log = structlog.get_logger(__name__)

MAX_SCHEDULED = 1024  # bundles waiting for their time tag
MAX_PUBLISHED = 1024  # distinct addresses other components publish through send()
COMMAND_QUEUE = 256
COUNTERS = ("packets", "received", "applied", "refused", "malformed", "not_allowed", "scheduled")

Origin = tuple[str, int]  # (ip, port) of the controller


def command_source(origin: Origin) -> str:
    # Not "osc:": a command's effects (a scene, a toggle) are news to the
    # controller that pressed the button, so feedback goes back to it.
    return f"osc-command:{origin[0]}:{origin[1]}"


@dataclass(eq=False)
class _Screen:
    """A screen as the server keeps it: its store and commands, its own OSC defaults."""

    name: str | None  # None: the main screen of a daemon given no screens
    store: ParameterStore
    commands: CommandBus | None
    transition_steps: int
    transition_method: str
    main: bool = False
    unsubscribe: Callable[[], None] | None = None

    def prefixes(self) -> tuple[str, ...]:
        """Where its feedback goes: the main screen's unprefixed, and under its name."""
        named = (screen_prefix(self.name),) if self.name is not None else ()
        return ("", *named) if self.main else named


@dataclass(frozen=True, slots=True)
class Call:
    """One message bound to its route and its screen: what an action needs."""

    route: Route
    captures: dict[str, str]  # the <name> parts of the address
    args: dict[str, Any]  # the checked arguments
    origin: Origin
    reply_to: Addr
    store: ParameterStore  # the addressed screen's
    commands: CommandBus | None
    screen: _Screen
    prefix: str  # "/screen/<name>" as received, or "" (the main screen)

    @property
    def source(self) -> str:
        return f"osc:{self.origin[0]}:{self.origin[1]}"

    @property
    def command_source(self) -> str:
        return command_source(self.origin)

    def index(self) -> int:
        try:
            return int(self.captures["index"])
        except ValueError:
            raise ParamError(f"prompt index {self.captures['index']!r} is not a number") from None


Action = Callable[[Call], bool]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: OscServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.server.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" for a feedback target that is not listening.
        if (suppressed := self.server.limiter.check("socket_error")) is not None:
            log.info("osc_socket_error", error=str(exc), suppressed=suppressed)


class OscServer:
    """``OscServer(config, store, commands, screens=...)``; ``await start()`` … ``await stop()``.

    ``store`` and ``commands`` are the main screen's (unprefixed addresses);
    ``screens`` lists every screen by name, the main one included (its entry
    is the one holding ``store``); None for a single-screen daemon.
    """

    def __init__(
        self,
        config: OscConfig,
        store: ParameterStore,
        commands: CommandBus | None = None,
        *,
        screens: Mapping[str, ScreenControls] | None = None,
        table: AddressTable = TABLE,
    ) -> None:
        self.config = config
        self.store = store
        self.commands = commands
        self.table = table
        self.limiter = LogLimiter()
        self._ahead_log = LogLimiter(interval=60.0)
        self._main = _Screen(
            None,
            store,
            commands,
            config.prompt_transition_steps,
            config.prompt_transition_method,
            main=True,
        )
        self._screens: dict[str, _Screen] = {}
        self._statuses: dict[str, dict[str, Any]] = {}  # other screens' session status
        self.address: tuple[str, int] | None = None  # bound (host, port) once started
        self._counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self._networks = config.networks()
        self._allowed_cache: dict[str, bool] = {}
        self._status: dict[str, Any] = {}
        self._published: dict[str, tuple[Any, ...]] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._feedback: OscFeedback | None = None
        self._scheduled: dict[int, asyncio.TimerHandle] = {}
        self._next_id = 0
        self._queue: asyncio.Queue[tuple[CommandBus, str, tuple[Any, ...], Origin, str]] = (
            asyncio.Queue(COMMAND_QUEUE)
        )
        self._worker: Supervised | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._current: tuple[Origin, str] | None = None  # the message being applied
        self._actions: dict[str, Action] = {
            "set_param": self._set_param,
            "scope_prompt": self._scope_prompt,
            "default_steps": self._default_steps,
            "default_method": self._default_method,
            "reset_cache": self._reset_cache,
            "generic": self._generic,
            "set_prompt": self._set_prompt,
            "prompt_weight": self._prompt_weight,
            "remove_prompt": self._remove_prompt,
            "set_prompts": self._set_prompts,
            "transition": self._transition,
            "lora": self._lora,
            "pause": self._pause,
            "norm": self._norm,
            "command": self._command,
            "command_named": self._command_named,
            "query": self._query,
        }
        if screens is not None:
            self.set_screens(screens)

    @property
    def transition_steps(self) -> int:
        """The main screen's default steps for ``/scope/prompt`` (each screen has its own)."""
        return self._main.transition_steps

    @property
    def transition_method(self) -> str:
        return self._main.transition_method

    def set_screens(self, screens: Mapping[str, ScreenControls] | None) -> None:
        """The screens ``/screen/<name>/...`` reaches (None or empty: none).

        The entry whose store is the server's own is the main screen. A screen
        kept from an earlier call keeps its OSC defaults. May be called before
        or after :meth:`start`. Raises ValueError for a name OSC cannot carry.
        """
        screens = dict(screens or {})
        for name in screens:
            check_screen_name(name)
        self._unsubscribe_screens()
        self._main.name, self._main.commands = None, self.commands
        kept, self._screens = self._screens, {}
        for name, controls in screens.items():
            if controls.store is self.store and self._main.name is None:
                screen = self._main
                screen.name, screen.commands = name, controls.commands
            elif (old := kept.get(name)) is not None and old.store is controls.store:
                screen = old
                screen.commands = controls.commands
            else:
                screen = _Screen(
                    name,
                    controls.store,
                    controls.commands,
                    self.config.prompt_transition_steps,
                    self.config.prompt_transition_method,
                )
            self._screens[name] = screen
        if self._transport is not None:
            self._subscribe_screens()

    # ----- life cycle

    async def start(self) -> None:
        """Bind, resolve the feedback targets, subscribe to the store (unless disabled)."""
        if self._transport is not None:
            return
        if not self.config.enabled:
            log.info("osc_off", reason="[osc] enabled = false")
            return
        loop = asyncio.get_running_loop()
        self._feedback = OscFeedback(
            self._sendto,
            rate=self.config.feedback_rate,
            echo_to_sender=self.config.echo_to_sender,
            echo_match=self.config.echo_match,
        )
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(self.config.host, self.config.port)
            )
        except OSError as err:
            raise BackendUnavailable(
                f"OSC cannot listen on {self.config.host}:{self.config.port}: {err.strerror or err}"
            ) from None
        self._transport = transport
        sock = transport.get_extra_info("socket")
        sockname = transport.get_extra_info("sockname")
        self.address = (str(sockname[0]), int(sockname[1]))
        await self._feedback.add_targets(self.config.feedback_targets(), sock.family)
        self._unsubscribe = self.store.subscribe(self._main_changed)
        self._subscribe_screens()
        self._worker = supervise("osc-commands", self._run_commands)
        log.info(
            "osc_listening",
            host=self.address[0],
            port=self.address[1],
            feedback=len(self._feedback.targets),
        )

    async def reload(self, config: OscConfig) -> None:
        """A new ``[osc]`` section (a config reload).

        The socket, the feedback targets and the allowed networks are set up
        again (a few milliseconds in which a UDP packet may be missed; the
        stream is not touched); the default transition steps and method take
        the file's value only when the file changed them (a live
        ``/soundscape/prompt/steps`` stays otherwise).
        """
        old = self.config
        if config == old:
            return
        await self.stop()
        self.config = config
        for screen in (self._main, *self._screens.values()):
            if config.prompt_transition_steps != old.prompt_transition_steps:
                screen.transition_steps = config.prompt_transition_steps
            if config.prompt_transition_method != old.prompt_transition_method:
                screen.transition_method = config.prompt_transition_method
        self._networks = config.networks()
        self._allowed_cache.clear()
        await self.start()  # raises BackendUnavailable when the new port is taken
        log.info("osc_reloaded", listening=self._transport is not None)

    def _sendto(self, data: bytes, addr: Addr) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    async def stop(self) -> None:
        """Cancel waiting bundles and the command worker; close the socket."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._unsubscribe_screens()
        for handle in self._scheduled.values():
            handle.cancel()
        self._scheduled.clear()
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None
        if self._feedback is not None:
            self._feedback.close()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            log.info("osc_stopped", **self.counters())

    # ----- public

    def counters(self) -> dict[str, int]:
        """received/applied/refused per message; packets/malformed/not_allowed per packet."""
        out = dict(self._counters)
        out["feedback_sent"] = self._feedback.sent if self._feedback else 0
        return out

    def on_status(self, status: dict[str, Any]) -> None:
        """The session's status ({"state", "fps", "reason", ...}) → feedback."""
        self._status = dict(status)
        self._publish(self._render(self._main, {"status"}))

    def on_screen_status(self, name: str, status: dict[str, Any]) -> None:
        """Screen ``name``'s session status → feedback under ``/screen/<name>``.

        The main screen's is :meth:`on_status` (sent unprefixed and prefixed).
        A status for a name not (yet) among the screens is kept for it.
        """
        screen = self._screens.get(name)
        if screen is not None and screen.main:
            self.on_status(status)
            return
        self._statuses[name] = dict(status)
        if screen is not None:
            self._publish(self._render(screen, {"status"}))

    def send(self, address: str, *args: Any) -> None:
        """Publish a value through the feedback path (beat clock, audio features, ...)."""
        if not address.startswith("/"):
            raise ValueError(f"OSC address {address!r} must start with '/'")
        if address in self._published or len(self._published) < MAX_PUBLISHED:
            self._published[address] = args
        self._publish([(address, args)])

    # ----- receiving

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self._counters["packets"] += 1
        origin = (normalise_ip(str(addr[0])), int(addr[1]))
        if not self._allowed(origin[0]):
            self._counters["not_allowed"] += 1
            if (suppressed := self.limiter.check("not_allowed")) is not None:
                log.warning(
                    "osc_not_allowed",
                    source=origin[0],
                    allow=self.config.allow,
                    suppressed=suppressed,
                )
            return
        try:
            timed = decode(data)
        except MalformedPacket as err:
            self._counters["malformed"] += 1
            if (suppressed := self.limiter.check("malformed")) is not None:
                log.warning(
                    "osc_malformed",
                    source=f"{origin[0]}:{origin[1]}",
                    reason=str(err),
                    size=len(data),
                    suppressed=suppressed,
                )
            return
        now = time.time()
        later: dict[float, list[Message]] = {}
        honour = self.config.time_tags == "honour"
        for item in timed:
            self._counters["received"] += 1
            if item.when is None or item.when <= now or not honour:
                self._apply(item.message, origin, addr)
            elif item.when - now > self.config.max_bundle_delay:
                self._refused(
                    "time_tag",
                    item.message.address,
                    f"time tag {item.when - now:.1f} s ahead "
                    f"(max_bundle_delay is {self.config.max_bundle_delay:g} s)",
                    origin,
                )
            else:
                later.setdefault(item.when, []).append(item.message)
        for when, messages in later.items():
            self._schedule(when, messages, origin, addr)
        if later and self._ahead_log.check(origin[0]) is not None:
            # A sender whose clock runs ahead makes every move lag: say so once.
            log.info(
                "osc_bundle_scheduled",
                source=origin[0],
                ahead=round(min(later) - now, 3),
                hint="if unintended, the sender's clock is ahead: set [osc] time_tags = 'ignore'",
            )

    def _allowed(self, ip: str) -> bool:
        allowed = self._allowed_cache.get(ip)
        if allowed is None:
            try:
                address = ipaddress.ip_address(ip.split("%", 1)[0])
            except ValueError:
                allowed = False
            else:
                allowed = any(address in net for net in self._networks)
            if len(self._allowed_cache) > 4096:
                self._allowed_cache.clear()
            self._allowed_cache[ip] = allowed
        return allowed

    def _schedule(self, when: float, messages: list[Message], origin: Origin, addr: Addr) -> None:
        if len(self._scheduled) >= MAX_SCHEDULED:
            for message in messages:
                self._refused(
                    "scheduled_full",
                    message.address,
                    f"{MAX_SCHEDULED} bundles already wait for their time",
                    origin,
                )
            return
        self._next_id += 1
        self._counters["scheduled"] += len(messages)
        self._arm(self._next_id, when, messages, origin, addr)

    def _arm(
        self, key: int, when: float, messages: list[Message], origin: Origin, addr: Addr
    ) -> None:
        loop = asyncio.get_running_loop()
        delay = when - time.time()
        self._scheduled[key] = loop.call_at(
            loop.time() + delay, self._run_scheduled, key, when, messages, origin, addr
        )

    def _run_scheduled(
        self, key: int, when: float, messages: list[Message], origin: Origin, addr: Addr
    ) -> None:
        self._scheduled.pop(key, None)
        # The loop's clock and the wall clock can drift apart by a hair: never early.
        if time.time() < when:
            self._arm(key, when, messages, origin, addr)
            return
        for message in messages:
            self._apply(message, origin, addr)

    def _apply(self, message: Message, origin: Origin, addr: Addr) -> None:
        address = message.address
        if not is_pattern(address):
            self._dispatch(address, message.args, origin, addr)
            return
        try:
            names = self._expand(address)
        except PatternError as err:
            self._refused("pattern", address, str(err), origin)
            return
        if not names:
            self._refused("pattern", address, "the pattern matches no address", origin)
        for name in names:
            self._dispatch(name, message.args, origin, addr)

    def _expand(self, pattern: str) -> list[str]:
        """The concrete addresses an incoming pattern names, the screens' included."""
        split = split_screen(pattern)
        if split is not None and split[1] and not is_pattern(split[1]):
            # Wildcards in the screen name only (/screen/*/soundscape/panic): a
            # literal address for each screen, so even panic and reconnect.
            regex = compile_pattern(split[0])
            return [screen_prefix(n) + split[1] for n in self._screens if regex.fullmatch(n)]
        regex = compile_pattern(pattern)
        names = [a for a in self.table.concrete(self.store) if regex.fullmatch(a)]
        # Wildcards never cross a '/': the pattern's first two parts tell which screens
        # it can name, so the others' addresses are not listed (half the cost at 3 screens).
        head = compile_pattern("/".join(pattern.split("/", 3)[:3]))
        for name, screen in self._screens.items():
            prefix = screen_prefix(name)
            if not head.fullmatch(prefix):
                continue
            names += [
                prefix + a for a in self.table.concrete(screen.store) if regex.fullmatch(prefix + a)
            ]
        return names

    def _dispatch(self, address: str, args: Sequence[Any], origin: Origin, addr: Addr) -> None:
        screen, prefix, relative = self._main, "", address
        commands = self.commands
        if (split := split_screen(address)) is not None:
            found_screen = self._screens.get(split[0])
            if found_screen is None:
                self._refused("screen", address, self._no_screen(split[0]), origin, args)
                return
            screen, prefix, relative = found_screen, screen_prefix(split[0]), split[1]
            commands = screen.commands
        found = self.table.lookup(relative)
        if found is None:
            self._refused("unknown", address, "no such address", origin, args)
            return
        route, captures = found
        key = prefix + route.address  # refusals are rate-limited per screen and address form
        try:
            if not route.inbound:
                raise ParamError("this address is sent by the daemon, not received")
            bound = bind(route.args, args)
            call = Call(
                route, captures, bound, origin, addr, screen.store, commands, screen, prefix
            )
            self._current = (origin, address)
            try:
                deferred = self._actions[route.action](call)
            finally:
                self._current = None
        except ParamError as err:
            self._refused(key, address, str(err), origin, args)
            return
        except Exception:  # a bug in one handler must not stop OSC for the show
            self._counters["refused"] += 1
            if (suppressed := self.limiter.check(f"error:{key}")) is not None:
                log.exception("osc_handler_failed", address=address, suppressed=suppressed)
            return
        if not deferred:
            self._counters["applied"] += 1

    def _no_screen(self, name: str) -> str:
        if not self._screens:
            return f"no screen {name!r}: this daemon drives a single screen"
        return f"no screen {name!r} (screens: {', '.join(sorted(self._screens))})"

    def _refused(
        self,
        key: str,
        address: str,
        reason: str,
        origin: Origin,
        args: Sequence[Any] = (),
    ) -> None:
        self._counters["refused"] += 1
        if (suppressed := self.limiter.check(f"refused:{key}")) is not None:
            shown = repr(tuple(args))
            log.warning(
                "osc_refused",
                address=address,
                args=shown if len(shown) <= 120 else shown[:119] + "…",
                reason=reason,
                source=f"{origin[0]}:{origin[1]}",
                suppressed=suppressed,
            )

    # ----- actions: return True when the outcome is counted later (commands)

    def _set_param(self, call: Call) -> bool:
        value = call.args.get("value", call.args.get("steps"))
        call.store.set(call.route.param, value, source=call.source)
        return False

    def _scope_prompt(self, call: Call) -> bool:
        prompts = [{"text": call.args["value"], "weight": 1.0}]
        if call.screen.transition_steps > 0:
            call.store.transition(
                prompts,
                num_steps=call.screen.transition_steps,
                method=call.screen.transition_method,
                source=call.source,
            )
        else:
            call.store.set_prompts(prompts, source=call.source)
        return False

    def _default_steps(self, call: Call) -> bool:
        steps = call.args["value"]
        if steps < 0:
            raise ParamError(f"transition_steps: expected an integer >= 0, got {steps}")
        if steps != call.screen.transition_steps:
            call.screen.transition_steps = steps
            self._publish_local("osc.transition_steps", call)
        return False

    def _default_method(self, call: Call) -> bool:
        method = call.args["value"]
        if method not in INTERPOLATION_METHODS:
            raise ParamError(
                f"temporal_interpolation_method: {method!r} is not one of "
                f"{', '.join(INTERPOLATION_METHODS)}"
            )
        if method != call.screen.transition_method:
            call.screen.transition_method = method
            self._publish_local("osc.transition_method", call)
        return False

    def _reset_cache(self, call: Call) -> bool:
        if call.args["press"] is not False:  # a button's release sends 0
            call.store.reset_cache(source=call.source)
        return False

    def _generic(self, call: Call) -> bool:
        name = call.captures["param"]
        if name in SCOPE_REFUSED:
            raise ParamError(f"{name} cannot change during a session (set it in the config)")
        values = call.args["value"]
        call.store.set(name, values[0] if len(values) == 1 else values, source=call.source)
        return False

    def _set_prompt(self, call: Call) -> bool:
        call.store.set_prompt(
            call.index(),
            text=call.args["text"],
            weight=call.args["weight"],
            source=call.source,
        )
        return False

    def _prompt_weight(self, call: Call) -> bool:
        index = call.index()
        if index >= len(call.store.get("prompts") or []):
            raise ParamError(f"prompts[{index}]: no such prompt")
        call.store.set_prompt(index, weight=call.args["weight"], source=call.source)
        return False

    def _remove_prompt(self, call: Call) -> bool:
        if call.args["press"] is not False:
            call.store.remove_prompt(call.index(), source=call.command_source)
        return False

    def _set_prompts(self, call: Call) -> bool:
        call.store.set_prompts(call.args["prompts"], source=call.source)
        return False

    def _transition(self, call: Call) -> bool:
        call.store.transition(
            call.args["prompts"],
            num_steps=call.args["steps"],
            method=call.args["method"],
            source=call.source,
        )
        return False

    def _lora(self, call: Call) -> bool:
        call.store.set_lora_scale(call.captures["name"], call.args["value"], source=call.source)
        return False

    def _pause(self, call: Call) -> bool:
        if call.args["paused"] is None:
            call.store.set("paused", not call.store.get("paused"), source=call.command_source)
        else:
            call.store.set("paused", call.args["paused"], source=call.source)
        return False

    def _norm(self, call: Call) -> bool:
        name, unit = call.captures["target"], call.args["unit"]
        if not 0.0 <= unit <= 1.0:
            raise ParamError(f"{name}: normalised value {unit:g} is outside 0..1")
        target = targets.resolve(name, call.store)
        target.set(call.store, target.denormalise(unit), source=call.source)
        return False

    def _command(self, call: Call) -> bool:
        if call.args.get("press", True) is False:
            return False  # a button's release
        positional = [v for k, v in call.args.items() if k != "press"]
        while positional and positional[-1] is None:  # left out: the command's default
            positional.pop()
        return self._enqueue(call, tuple(positional))

    def _command_named(self, call: Call) -> bool:
        if call.args["press"] is False:
            return False
        return self._enqueue(call, (call.captures["name"],))

    def _enqueue(self, call: Call, args: tuple[Any, ...]) -> bool:
        name, commands = call.route.param, call.commands
        if commands is None or name not in commands:
            raise ParamError(f"command {name!r} is not available (feature off or not running)")
        try:
            self._queue.put_nowait(
                (commands, name, args, call.origin, call.prefix + call.route.address)
            )
        except asyncio.QueueFull:
            raise ParamError(f"command {name!r}: {COMMAND_QUEUE} commands already wait") from None
        return True

    def _query(self, call: Call) -> bool:
        prefix = call.prefix
        if prefix:
            # A screen's own state only; the shared published values (beat, audio) are
            # the unprefixed query's.
            messages = [
                (prefix + a, args) for a, args in self.table.render(self._view(call.screen))
            ]
        else:
            messages = self.dump()
        if call.args["pattern"] is not None:
            try:
                regex = compile_pattern(call.args["pattern"])
            except PatternError as err:
                raise ParamError(str(err)) from None
            # Under a prefix the pattern may name the address with or without it.
            messages = [
                m
                for m in messages
                if regex.fullmatch(m[0]) or (prefix and regex.fullmatch(m[0][len(prefix) :]))
            ]
        assert self._feedback is not None
        count = self._feedback.dump(messages, call.reply_to)
        self._feedback.dump([(f"{prefix}/soundscape/query/end", (count,))], call.reply_to)
        return False

    # ----- commands

    async def _run_commands(self) -> None:
        while True:
            commands, name, args, origin, key = await self._queue.get()
            try:
                await commands.call(name, *args, source=command_source(origin))
            except ParamError as err:
                self._refused(key, key, str(err), origin, args)
            except Exception:  # a failing command must not stop the worker
                self._counters["refused"] += 1
                if (suppressed := self.limiter.check(f"error:{key}")) is not None:
                    log.exception("osc_command_failed", command=name, suppressed=suppressed)
            else:
                self._counters["applied"] += 1

    # ----- feedback

    def _view(self, screen: _Screen | None = None) -> View:
        if screen is None:
            screen = self._main
        status = self._status if screen.main else self._statuses.get(screen.name or "", {})
        return View(screen.store, screen.transition_steps, screen.transition_method, status)

    def _render(self, screen: _Screen, changed: Collection[str] | None) -> list[Feedback]:
        """Feedback for ``screen``'s ``changed`` keys, under each of its prefixes."""
        messages = self.table.render(self._view(screen), changed)
        out: list[Feedback] = []
        for prefix in screen.prefixes():
            out += [(prefix + a, args) for a, args in messages] if prefix else messages
        return out

    def dump(self) -> list[Feedback]:
        """Every feedback message for the current state (what a query answers)."""
        return self.table.render(self._view()) + list(self._published.items())

    def _publish(
        self, messages: list[Feedback], origin: Origin | None = None, address: str | None = None
    ) -> None:
        if self._feedback is not None:
            self._feedback.publish(messages, origin=origin, origin_address=address)

    def _publish_local(self, key: str, call: Call) -> None:
        address = self._current[1] if self._current else None
        self._publish(self._render(call.screen, {key}), call.origin, address)

    def _subscribe_screens(self) -> None:
        for screen in self._screens.values():
            if not screen.main:  # the main store has its own subscription (start)
                screen.unsubscribe = screen.store.subscribe(
                    lambda changes, source, s=screen: self._on_change(s, changes, source)
                )

    def _unsubscribe_screens(self) -> None:
        for screen in self._screens.values():
            if screen.unsubscribe is not None:
                screen.unsubscribe()
                screen.unsubscribe = None

    def _main_changed(self, changes: dict[str, Any], source: str) -> None:
        self._on_change(self._main, changes, source)

    def _on_change(self, screen: _Screen, changes: dict[str, Any], source: str) -> None:
        if self._feedback is None or not self._feedback.targets:
            return
        origin: Origin | None = None
        address: str | None = None
        if source.startswith("osc:"):
            host, _, port = source[4:].rpartition(":")
            if port.isdigit():
                origin = (host, int(port))
                if self._current is not None and self._current[0] == origin:
                    address = self._current[1]
        self._publish(self._render(screen, set(changes)), origin, address)
