"""Frame-level clients for the relay load test, run as a separate process.

Usage: ``python load_clients.py URL ROOMS MEMBERS MESSAGES``

The clients create ROOMS rooms over HTTP and join each with one creator and
MEMBERS - 1 joiners. Each creator verifies its joiners, then sends a first room
message. Each joiner that receives it sends MESSAGES room messages and one direct
message to its creator, and the creator sends MESSAGES room messages too. Every
member checks that it received each frame meant for it. The clients do not
encrypt: the relay never decrypts, so random bytes stand in for ciphertexts.

The process then prints one JSON line with its figures and waits for a line on
stdin. Then every member leaves at once: half of them start the closing
handshake, and the other half drop their TCP connection without a close frame.
In every other room, the creator is one of those that drop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
import urllib.parse
from base64 import b64decode
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from roupn.frames import encode_text, split_segments

# Seconds each phase may take before the clients give up.
PHASE_TIMEOUT = 300.0
# Joins in progress at once, over all rooms.
MAX_CONCURRENT_JOINS = 20
PAYLOAD_SIZE = 200

# websockets 15 and later read proxy settings from the environment unless
# proxy=None is passed. Earlier releases have no proxy option and use no proxy.
NO_PROXY: dict[str, Any] = (
    {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
)

# The time.perf_counter() value at which the last room passed each phase.
phases: dict[str, float] = {}


def mark_phase(name: str) -> None:
    phases[name] = max(phases.get(name, 0.0), time.perf_counter())


@dataclass(slots=True)
class Member:
    """One socket of a room and the frames it still expects."""

    socket: ClientConnection
    user_id: str
    room_frames_expected: int
    direct_frames_expected: int
    room_frames: int = 0
    direct_frames: int = 0


def control_message(frame: str | bytes) -> dict[str, Any]:
    assert isinstance(frame, str), "the relay sent a binary frame to a text client"
    message: dict[str, Any] = json.loads(b64decode(split_segments(frame)["S"]))
    return message


def control_frame(message: dict[str, Any]) -> str:
    return encode_text({"S": json.dumps(message).encode()})


def room_frame() -> str:
    return encode_text({"I": os.urandom(12), "E": os.urandom(PAYLOAD_SIZE)})


def direct_frame(receiver_id: str) -> str:
    return encode_text(
        {"U": receiver_id.encode(), "V": os.urandom(12), "P": os.urandom(64)}
    )


async def open_member(
    url: str, joins: asyncio.Semaphore, room_frames: int, direct_frames: int
) -> Member:
    """Connect, wait for the room-joined message, and return the member."""
    async with joins:
        socket = await connect(
            url, compression=None, ping_interval=None, open_timeout=30, **NO_PROXY
        )
        joined = control_message(await socket.recv())
    assert joined["type"] == "_RJ", joined
    return Member(socket, str(joined["userId"]), room_frames, direct_frames)


async def read_until_done(member: Member) -> None:
    """Count the room and direct frames that reach ``member`` until all arrived."""
    while (
        member.room_frames < member.room_frames_expected
        or member.direct_frames < member.direct_frames_expected
    ):
        segments = split_segments(str(await member.socket.recv()))
        if "U" in segments:
            member.direct_frames += 1
        elif "E" in segments:
            member.room_frames += 1


async def run_room(
    http: httpx.AsyncClient,
    base_url: str,
    joins: asyncio.Semaphore,
    size: int,
    messages: int,
) -> list[Member]:
    """Create, fill and verify one room, then send and check its messages."""
    response = await http.get(base_url + "/create-room")
    response.raise_for_status()
    ticket = response.json()
    mark_phase("created")
    websocket_base = "ws" + base_url.removeprefix("http") + "/join-room?"
    others = size - 1

    creator = await open_member(
        websocket_base
        + urllib.parse.urlencode(
            {"code": ticket["roomCode"], "creator": ticket["creatorSecret"]}
        ),
        joins,
        room_frames=messages * others,
        direct_frames=others,
    )
    joiner_url = websocket_base + urllib.parse.urlencode({"code": ticket["roomCode"]})
    joiners = [
        await open_member(
            joiner_url, joins, room_frames=1 + messages * others, direct_frames=0
        )
        for _ in range(others)
    ]
    mark_phase("joined")

    # The relay announces each joiner to the creator, which verifies it. The first
    # room message follows the verifications on the creator's socket, so every
    # member is verified once a joiner receives it.
    announced: set[str] = set()
    while len(announced) < others:
        message = control_message(await creator.socket.recv())
        if message["type"] == "_UJ":
            announced.add(message["userId"])
    assert announced == {joiner.user_id for joiner in joiners}
    for joiner in joiners:
        await creator.socket.send(
            control_frame({"type": "_UV", "userId": joiner.user_id})
        )
    await creator.socket.send(room_frame())
    mark_phase("verified")

    async def run_joiner(joiner: Member) -> None:
        while joiner.room_frames == 0:
            if "E" in split_segments(str(await joiner.socket.recv())):
                joiner.room_frames += 1
        await joiner.socket.send(direct_frame(creator.user_id))
        for _ in range(messages):
            await joiner.socket.send(room_frame())
        await read_until_done(joiner)

    async def run_creator() -> None:
        for _ in range(messages):
            await creator.socket.send(room_frame())
        await read_until_done(creator)

    async with asyncio.TaskGroup() as group:
        group.create_task(run_creator())
        for joiner in joiners:
            group.create_task(run_joiner(joiner))
    return [creator, *joiners]


async def main(base_url: str, rooms: int, size: int, messages: int) -> None:
    joins = asyncio.Semaphore(MAX_CONCURRENT_JOINS)
    started = time.perf_counter()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        async with asyncio.timeout(PHASE_TIMEOUT):
            room_members = await asyncio.gather(
                *(run_room(http, base_url, joins, size, messages) for _ in range(rooms))
            )
    members = [member for room in room_members for member in room]
    closing = [
        member
        for room_index, room in enumerate(room_members)
        for index, member in enumerate(room)
        if (room_index + index) % 2 == 0
    ]
    dropping = [member for member in members if member not in closing]
    report = {
        "connections": len(members),
        "rooms": len(room_members),
        "room_frames_received": sum(member.room_frames for member in members),
        "direct_frames_received": sum(member.direct_frames for member in members),
        "seconds": round(time.perf_counter() - started, 2),
        **{
            f"{name}_after_seconds": round(when - started, 2)
            for name, when in phases.items()
        },
    }
    print(json.dumps(report), flush=True)

    await asyncio.to_thread(sys.stdin.readline)
    for member in dropping:
        member.socket.transport.abort()
    async with asyncio.timeout(PHASE_TIMEOUT):
        await asyncio.gather(*(member.socket.close() for member in closing))


if __name__ == "__main__":
    url, room_count, room_size, message_count = sys.argv[1:]
    asyncio.run(main(url, int(room_count), int(room_size), int(message_count)))
