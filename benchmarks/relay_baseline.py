"""A minimal relay on ``websockets.asyncio`` with ``broadcast()``, as a yardstick.

Run as ``python -m benchmarks.relay_baseline``, it prints one JSON line with its
URL and process id, like :mod:`benchmarks.relay_server`, then serves on 127.0.0.1
until SIGTERM or SIGINT arrives or ``--max-seconds`` pass.

It implements only what the fan-out load generator uses: ``GET /create-room``,
``/join-room`` with the room code (and the creator secret), and a room joined
message to each new member. It stamps each room (``E``) frame with a ``T``
segment and sends it to every other member with one ``websockets.broadcast()``
call. It has
no verification, limits, direct or control messages, so it shows what the
``websockets`` library itself does with the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http
import json
import os
import secrets
import signal
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

__all__ = ["main"]

LOOPBACK = "127.0.0.1"


@dataclass(slots=True)
class _Room:
    creator_secret: str
    creator_id: str
    members: dict[str, ServerConnection] = field(default_factory=dict)


class BaselineRelay:
    """The rooms of the baseline relay and its two endpoints."""

    def __init__(self) -> None:
        self.rooms: dict[str, _Room] = {}

    def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        target = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(target.query))
        if target.path == "/create-room":
            code = secrets.token_hex(3)
            room = _Room(str(uuid.uuid4()), str(uuid.uuid4()))
            self.rooms[code] = room
            body = {
                "creatorSecret": room.creator_secret,
                "roomCode": code,
                "userId": room.creator_id,
            }
            response = connection.respond(http.HTTPStatus.OK, json.dumps(body))
            response.headers["Content-Type"] = "application/json"
            return response
        if target.path != "/join-room" or query.get("code") not in self.rooms:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "no such room\n")
        return None

    async def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        query = urllib.parse.parse_qs(
            urllib.parse.urlsplit(connection.request.path).query
        )
        room = self.rooms[query["code"][0]]
        is_creator = query.get("creator", [""])[0] == room.creator_secret
        user_id = room.creator_id if is_creator else str(uuid.uuid4())
        room.members[user_id] = connection
        joined = {
            "type": "_RJ",
            "creatorId": room.creator_id,
            "userId": user_id,
            "users": list(room.members),
        }
        encoded = json.dumps(joined, separators=(",", ":")).encode("utf-8")
        await connection.send("S:" + base64.b64encode(encoded).decode("ascii"))
        try:
            async for message in connection:
                if not isinstance(message, str) or not (
                    message.startswith("E:") or "|E:" in message
                ):
                    continue
                now = str(int(time.time() * 1000)).encode("ascii")
                stamped = f"T:{base64.b64encode(now).decode('ascii')}|{message}"
                others = [c for u, c in room.members.items() if u != user_id]
                broadcast(others, stamped)
        finally:
            del room.members[user_id]


async def _serve(max_seconds: float) -> None:
    relay = BaselineRelay()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set_result, None)
    async with serve(
        relay.handle,
        LOOPBACK,
        0,
        process_request=relay.process_request,
        compression=None,
        max_size=2**20,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"http://{LOOPBACK}:{port}"
        print(json.dumps({"url": url, "pid": os.getpid()}), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop, max_seconds)


def main(argv: list[str] | None = None) -> int:
    """Serve the baseline relay on 127.0.0.1 until a signal or the time limit.

    It runs on uvloop when that is installed, as the roupn relay does.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay_baseline")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="seconds after which the relay stops by itself (default: 300)",
    )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args.max_seconds))
    else:
        uvloop.run(_serve(args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
