"""A relay on 127.0.0.1 for the relay benchmarks, in a process of its own.

Run as ``python -m benchmarks.relay_server``, it prints one JSON line with the
relay's URL and process id, then serves until SIGTERM or SIGINT arrives or
``--max-seconds`` pass, whichever comes first. The relay keeps its default limits
but those per client address. It runs on uvloop when that is installed, as
``roupn serve`` does. ``--backplane redis`` with ``--redis-url`` runs it on the
Redis backplane, so that several of these processes share rooms.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import sys

import anyio

from roupn.backplane import DEFAULT_REDIS_URL, BackplaneOptions
from roupn.server import create_server_connector

__all__ = ["LOOPBACK", "main", "uvloop_installed"]

LOOPBACK = "127.0.0.1"


def uvloop_installed() -> bool:
    """Return whether uvloop can be imported."""
    return importlib.util.find_spec("uvloop") is not None


async def _serve(
    max_seconds: float, max_users_per_room: int, backplane: BackplaneOptions
) -> None:
    server = create_server_connector(
        host=LOOPBACK,
        port=0,
        max_users_per_room=max_users_per_room,
        unclaimed_room_timeout=max_seconds,
        # Every benchmark socket comes from 127.0.0.1, so the limits per client
        # address would stop the load generator long before the relay's capacity.
        max_connections_per_address=None,
        room_creations_per_minute=None,
        join_attempts_per_minute=None,
        backplane=backplane,
    )
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with server:
            print(json.dumps({"url": server.url, "pid": os.getpid()}), flush=True)
            with anyio.move_on_after(max_seconds):
                async for _signal in signals:
                    break


def main(argv: list[str] | None = None) -> int:
    """Serve a relay on 127.0.0.1 with a free port until a signal or the time limit."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay_server")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="seconds after which the relay stops by itself (default: 300)",
    )
    parser.add_argument(
        "--max-users-per-room",
        type=int,
        default=50,
        help="cap on users in every room (default: 50)",
    )
    parser.add_argument(
        "--backplane",
        default="memory",
        help="where rooms live: memory or redis (default: memory)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis server of the redis backplane (default: {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--backplane-prefix",
        default="roupn",
        help="prefix of the backplane's Redis keys (default: roupn)",
    )
    args = parser.parse_args(argv)
    backplane = BackplaneOptions(
        name=args.backplane, url=args.redis_url, key_prefix=args.backplane_prefix
    )
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    anyio.run(
        _serve,
        args.max_seconds,
        args.max_users_per_room,
        backplane,
        backend_options={"use_uvloop": uvloop_installed()},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
