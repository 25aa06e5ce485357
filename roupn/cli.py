"""The ``roupn`` command: run a relay, try a demo, list plugins, run benchmarks."""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

import anyio

from . import __version__
from .backplane import DEFAULT_REDIS_URL, BackplaneOptions
from .errors import RoupnError
from .outbox import DEFAULT_MAX_SEND_BUFFER
from .plugins import get_registry
from .settings import Settings

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    parser.add_argument(
        "--transport", default=defaults.transport, help="transport backend by name"
    )
    parser.add_argument(
        "--serializer", default=defaults.serializer, help="serializer backend by name"
    )
    parser.add_argument(
        "--async-backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )


def _port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: use 0 to 65535")
    return value


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: use 1 or more")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: use more than 0")
    return value


def _optional_limit(text: str) -> int | None:
    """Parse a whole-number limit where 0 turns the limit off."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: use 0 or more")
    return value or None


def _optional_seconds(text: str) -> float | None:
    """Parse a number of seconds or a rate where 0 turns the limit off."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: use 0 or more")
    return value or None


def _add_limit_options(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group("limits (0 turns a limit off)")
    for flag, parse, default, help_text in [
        ("--max-rooms", _optional_limit, 10_000, "maximum rooms at once"),
        ("--max-connections", _optional_limit, 10_000, "maximum open room sockets"),
        (
            "--max-connections-per-address",
            _optional_limit,
            100,
            "maximum open room sockets per client address",
        ),
        (
            "--room-creations-per-minute",
            _optional_seconds,
            30.0,
            "rooms each client address may create per minute",
        ),
        (
            "--join-attempts-per-minute",
            _optional_seconds,
            60.0,
            "join attempts each client address may make per minute",
        ),
        (
            "--verification-timeout",
            _optional_seconds,
            300.0,
            "seconds a joiner may wait for verification",
        ),
        (
            "--idle-timeout",
            _optional_seconds,
            600.0,
            "seconds a socket may stay silent (WebSocket pongs count as activity)",
        ),
        (
            "--max-pending-per-room",
            _optional_limit,
            10,
            "maximum joiners waiting for verification in one room",
        ),
    ]:
        limits.add_argument(
            flag,
            type=parse,
            default=default,
            help=f"{help_text} (default: {default:g})",
        )
    limits.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="Origin header browsers may connect from, such as "
        "https://app.example; repeat for several (default: any)",
    )


def _room_code(text: str) -> str:
    from .chat import parse_room_code

    try:
        return parse_room_code(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_backplane_options(serve: argparse.ArgumentParser) -> None:
    defaults = BackplaneOptions()
    group = serve.add_argument_group(
        "backplane (several relay processes sharing rooms)"
    )
    group.add_argument(
        "--backplane",
        default=defaults.name,
        help="where rooms live, by backplane name: memory (this process) or "
        "redis (shared by every relay on the same Redis, asyncio only) "
        f"(default: {defaults.name})",
    )
    group.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis server of the redis backplane (default: {DEFAULT_REDIS_URL})",
    )
    group.add_argument(
        "--backplane-prefix",
        default=defaults.key_prefix,
        help="prefix of the backplane's Redis keys and channels. Relays share "
        f"rooms only if their prefixes match (default: {defaults.key_prefix})",
    )
    group.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        default=defaults.heartbeat_interval,
        help="seconds between a relay's heartbeats in the backplane "
        f"(default: {defaults.heartbeat_interval:g})",
    )
    group.add_argument(
        "--node-timeout",
        type=_positive_float,
        default=defaults.node_timeout,
        help="seconds without a heartbeat after which the other relays remove a "
        f"relay's members from their rooms (default: {defaults.node_timeout:g})",
    )


def backplane_options(args: argparse.Namespace) -> BackplaneOptions:
    """Return the backplane options of parsed ``roupn serve`` arguments.

    Raises:
        ValueError: the heartbeat interval, node timeout or prefix is invalid.
    """
    return BackplaneOptions(
        name=args.backplane,
        url=args.redis_url,
        key_prefix=args.backplane_prefix,
        heartbeat_interval=args.heartbeat_interval,
        node_timeout=args.node_timeout,
    )


def _display_name(text: str) -> str:
    from .chat import parse_name

    try:
        return parse_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _relay_url(text: str) -> str:
    from .chat import parse_url

    try:
        return parse_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_operations_options(serve: argparse.ArgumentParser) -> None:
    operations = serve.add_argument_group("operations")
    operations.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve Prometheus metrics at /metrics (default: on when the "
        "prometheus-client package, roupn[metrics], is installed)",
    )
    operations.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve /metrics on this port instead of the relay's port, with "
        "/healthz too. Worker N of --workers uses this port plus N",
    )
    operations.add_argument(
        "--metrics-host",
        metavar="HOST",
        help="address the metrics port listens on (default: --host)",
    )
    operations.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        default=1,
        help="processes that serve the port together, where more than 1 needs "
        "Linux and a shared backplane (default: 1)",
    )
    operations.add_argument(
        "--shutdown-delay",
        type=_optional_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds to keep serving after SIGTERM while /healthz returns 503, "
        "so load balancers stop sending new clients first (default: 0)",
    )
    # Set by the supervising process of --workers on each worker it starts.
    operations.add_argument("--worker-id", type=int, help=argparse.SUPPRESS)


def _expected_error(error: BaseException) -> BaseException | None:
    """Return the first error a user can act on, looking inside exception groups."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _expected_error(inner)
            if found is not None:
                return found
        return None
    if isinstance(error, RoupnError | OSError):
        return error
    return None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roupn",
        description="End-to-end encrypted rooms through a relay that cannot read them.",
    )
    parser.add_argument("--version", action="version", version=f"roupn {__version__}")
    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level (default: INFO for serve, WARNING otherwise)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run a relay server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument(
        "--port", type=_port, default=3000, help="TCP port (0 picks a free one)"
    )
    serve.add_argument(
        "--max-users-per-room",
        type=_positive_int,
        default=50,
        help="cap on users in every room, whatever the creator asks (default: 50)",
    )
    serve.add_argument(
        "--unclaimed-room-timeout",
        type=_positive_float,
        default=60.0,
        help="seconds before a room whose creator never connected is removed",
    )
    serve.add_argument(
        "--max-send-buffer",
        type=_positive_int,
        default=DEFAULT_MAX_SEND_BUFFER,
        metavar="BYTES",
        help="bytes the relay may buffer for a member that reads too slowly. A "
        "member further behind is closed with 1013 too_slow "
        f"(default: {DEFAULT_MAX_SEND_BUFFER})",
    )
    _add_limit_options(serve)
    _add_operations_options(serve)
    _add_backend_options(serve)
    _add_backplane_options(serve)

    demo = commands.add_parser(
        "demo", help="run a relay and two clients that verify each other and talk"
    )
    _add_backend_options(demo)

    chat = commands.add_parser(
        "chat",
        help="chat in an end-to-end encrypted room from the terminal",
        description="Create a room, or join one by its code, and chat in it. "
        "The creator admits each joiner by typing the verification code that the "
        "joiner reads out.",
    )
    chat.add_argument(
        "code",
        nargs="?",
        type=_room_code,
        help="code of the room to join (omit it to create a room)",
    )
    chat.add_argument(
        "--url",
        type=_relay_url,
        default="http://127.0.0.1:3000",
        help="URL of the relay (default: http://127.0.0.1:3000)",
    )
    chat.add_argument(
        "--name",
        type=_display_name,
        help="name shown to the other members, sent as public_data, which the "
        "relay can read too (default: your login name)",
    )
    _add_backend_options(chat)

    commands.add_parser("plugins", help="list every registered backend")

    # The benchmark runner parses its own options, so `roupn bench --help` is its
    # help and every argument after `bench` reaches it unchanged.
    commands.add_parser(
        "bench",
        help="measure every backend on this machine (from a source checkout; "
        "roupn bench --help lists the options)",
        add_help=False,
    )
    return parser


def _list_plugins() -> int:
    rows = [("KIND", "NAME", "DISTRIBUTION", "USABLE", "SUMMARY")]
    for backend in get_registry().all():
        missing = backend.missing_modules()
        if missing:
            fix = (
                f"pip install 'roupn[{backend.extra}]'" if backend.extra else missing[0]
            )
            usable = f"no ({fix})"
        else:
            usable = "yes"
        kind = backend.kind.value if backend.kind else "?"
        rows.append(
            (kind, backend.name, backend.distribution or "?", usable, backend.summary)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]).rstrip())
    return 0


def _bench(arguments: list[str]) -> int:
    """Run the benchmark runner of a source checkout with ``arguments``."""
    try:
        runner = importlib.import_module("benchmarks.runner")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", "benchmarks.runner"):
            raise
        print(
            "roupn: the benchmarks package was not found. The benchmarks ship "
            "with the source, not the wheel: install roupn from a checkout with "
            "pip install -e . and run roupn bench there, or run "
            "python -m benchmarks in the checkout.",
            file=sys.stderr,
        )
        return 1
    status: int = runner.main(arguments, prog="roupn bench")
    return status


def _chat(args: argparse.Namespace) -> int:
    from .chat import ChatOptions, default_name, run_chat_command

    options = ChatOptions(
        server_url=args.url,
        name=args.name or default_name(),
        room_code=args.code,
        settings=Settings(transport=args.transport, serializer=args.serializer),
    )
    return run_chat_command(options, backend=args.async_backend)


async def _serve(args: argparse.Namespace) -> None:
    from .server import create_server_connector
    from .workers import serve_until_stopped

    settings = Settings(transport=args.transport, serializer=args.serializer)
    server = create_server_connector(
        host=args.host,
        port=args.port,
        settings=settings,
        max_users_per_room=args.max_users_per_room,
        unclaimed_room_timeout=args.unclaimed_room_timeout,
        max_rooms=args.max_rooms,
        max_connections=args.max_connections,
        max_connections_per_address=args.max_connections_per_address,
        room_creations_per_minute=args.room_creations_per_minute,
        join_attempts_per_minute=args.join_attempts_per_minute,
        verification_timeout=args.verification_timeout,
        idle_timeout=args.idle_timeout,
        max_pending_per_room=args.max_pending_per_room,
        allowed_origins=args.allowed_origins,
        backplane=backplane_options(args),
        metrics=args.metrics,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        reuse_port=args.worker_id is not None,
        max_send_buffer=args.max_send_buffer,
    )
    async with server:
        await serve_until_stopped(
            server,
            shutdown_delay=args.shutdown_delay or 0.0,
            watch_parent=args.worker_id is not None,
        )


def _serve_workers(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]
) -> int:
    """Run ``args.workers`` relay processes on one port until stopped."""
    from . import workers

    problem = workers.check_worker_options(args.workers, args.backplane)
    if problem is not None:
        parser.error(problem)
    if args.metrics_port and args.metrics_port + args.workers - 1 > 65535:
        parser.error(
            f"invalid --metrics-port {args.metrics_port}: the {args.workers} "
            "workers need that many ports from it, up to 65535"
        )
    with workers.reserve_port(args.host, args.port) as reserved:
        port = reserved.getsockname()[1]
        supervisor = workers.Supervisor(
            lambda worker_id: workers.worker_command(
                argv, worker_id, port, args.metrics_port
            ),
            args.workers,
            stop_timeout=(args.shutdown_delay or 0.0) + workers.STOP_TIMEOUT,
        )
        host = f"[{args.host}]" if ":" in args.host else args.host
        logger.info(
            "starting %d relay workers on http://%s:%d", args.workers, host, port
        )
        return anyio.run(supervisor.run, backend=args.async_backend)


def _uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "serve":
        try:
            backplane_options(args)
        except ValueError as exc:
            parser.error(str(exc))
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    workers = args.command == "serve" and (
        args.workers > 1 or args.worker_id is not None
    )
    process = " [%(process)d]" if workers else ""
    logging.basicConfig(
        level=getattr(logging, level),
        format=f"%(asctime)s %(levelname)s{process} %(name)s: %(message)s",
    )
    try:
        if args.command == "plugins":
            return _list_plugins()
        if args.command == "bench":
            return _bench(extra)
        if args.command == "serve":
            if args.workers > 1 and args.worker_id is None:
                return _serve_workers(parser, args, argv)
            # uvloop (the speed extra) makes the relay faster on asyncio.
            use_uvloop = args.async_backend == "asyncio" and _uvloop_installed()
            options = {"use_uvloop": True} if use_uvloop else {}
            anyio.run(_serve, args, backend=args.async_backend, backend_options=options)
            return 0
        if args.command == "demo":
            from .demo import run_demo

            settings = Settings(transport=args.transport, serializer=args.serializer)
            anyio.run(run_demo, settings, backend=args.async_backend)
            return 0
        if args.command == "chat":
            return _chat(args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        expected = _expected_error(exc)
        if expected is None:
            raise
        print(f"roupn: {_describe_error(expected, args)}", file=sys.stderr)
        return 1
    return 2


def _describe_error(error: BaseException, args: argparse.Namespace) -> str:
    """Return the line to print for an error the user can act on."""
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        host = getattr(args, "host", None)
        port = getattr(args, "port", None)
        if host is not None and port is not None:
            ports = f"port {port}"
            metrics_port = getattr(args, "metrics_port", None)
            if metrics_port:
                ports += f" or metrics port {metrics_port}"
            return (
                f"cannot listen on {host} {ports}: the address is already in use. "
                "Stop the server using it or choose another port"
            )
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
