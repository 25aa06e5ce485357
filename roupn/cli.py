"""The ``roupn`` command: run a relay, try a demo, list plugins."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import anyio

from . import __version__
from .errors import RoupnError
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
    _add_backend_options(serve)

    demo = commands.add_parser(
        "demo", help="run a relay and two clients that verify each other and talk"
    )
    _add_backend_options(demo)

    commands.add_parser("plugins", help="list every registered backend")
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


async def _serve(args: argparse.Namespace) -> None:
    from .server import create_server_connector

    settings = Settings(transport=args.transport, serializer=args.serializer)
    server = create_server_connector(
        host=args.host,
        port=args.port,
        settings=settings,
        max_users_per_room=args.max_users_per_room,
        unclaimed_room_timeout=args.unclaimed_room_timeout,
    )
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _build_parser().parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "plugins":
            return _list_plugins()
        if args.command == "serve":
            anyio.run(_serve, args, backend=args.async_backend)
            return 0
        if args.command == "demo":
            from .demo import run_demo

            settings = Settings(transport=args.transport, serializer=args.serializer)
            anyio.run(run_demo, settings, backend=args.async_backend)
            return 0
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        expected = _expected_error(exc)
        if expected is None:
            raise
        print(f"roupn: {expected}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
