"""The relay family's load generator: room members that flood a room with E frames.

Run as ``python -m benchmarks.relay_load CONFIG``, where CONFIG is a JSON object, it
opens raw WebSocket connections with the ``websockets`` asyncio client to a relay on
the loopback interface and reports JSON lines on standard output. The relay family
starts it in a process of its own, apart from the relay's.

``{"mode": "flood", ...}`` joins one room through the relay: the creator with the
secret from the create-room request, then the joiners, each of whom the creator
marks verified with a ``_UV`` control frame once the relay admitted it. Then, for
each sender count, the first members send room (``E``) frames as fast as their
windows allow, each frame carrying its sender, sequence number and
``time.perf_counter_ns`` send time, and every receiver times each arrival. The
same code drives the in-process runs over roupn's own transports. Joining and the
links live in :mod:`benchmarks.relay_room`.

``{"mode": "idle", ...}`` opens sockets that join rooms the same way and then
stay silent, step by step, waiting for a ``next`` line on standard input between
steps, so the parent can read the relay's memory at each step.
"""

from __future__ import annotations

import base64
import json
import math
import os
import queue
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import anyio

from .relay_room import (
    JOIN_TIMEOUT,
    LinkOpener,
    LinkPool,
    Member,
    RoomRequest,
    join_room,
    open_websocket,
    request_room_over_http,
)

__all__ = ["Flood", "flood_room", "hold_idle_sockets", "main"]

ROOM_SIZE = 16
MESSAGE_SIZE = 256  # plaintext bytes of a room message
TAG_SIZE = 16  # the AES-GCM tag that a sealed message carries
IV_SIZE = 12

# Messages each sender may have on their way to some receiver at once: each
# sender sends its next message once the previous one reached every receiver.
WINDOW = 1

# Seconds to wait for the frames still on their way after a run.
DRAIN_TIMEOUT = 5.0

# The start of each E frame's ciphertext: sender index, sequence number, and the
# send time from time.perf_counter_ns.
HEADER = struct.Struct("!HIq")

# Characters of the E segment, base64 of base64, that cover the header: 32 of them
# decode to 24 characters of the inner base64, which decode to 18 bytes.
HEADER_CHARACTERS = 32


# Flooding.


def _percentile(ordered: list[int], fraction: float) -> float:
    """Return the nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


class Flood:
    """Sends E frames from the first members of a room and times them at the others.

    Each sender keeps at most ``window`` messages whose delivery to every other
    member is still outstanding, so the relay's queues stay bounded and the rate
    found is the rate the relay and the receivers sustain.
    """

    def __init__(self, members: list[Member], window: int = WINDOW) -> None:
        self.members = members
        self.window = window
        self.receivers = len(members) - 1
        self.pending: dict[tuple[int, int], int] = {}
        self.windows = [anyio.Semaphore(window) for _ in members]
        self.ready = [anyio.Event() for _ in members]
        self.drained = anyio.Event()
        self.next_sequence = [0] * len(members)
        self.start_ns = self.end_ns = 0
        self.interval_ns = 1
        self.buckets: list[int] = []
        self.latencies: list[int] = []
        self.sent = 0
        self._padding = os.urandom(MESSAGE_SIZE + TAG_SIZE - HEADER.size)
        iv_text = base64.b64encode(base64.b64encode(os.urandom(IV_SIZE)))
        self._iv_segment = "I:" + iv_text.decode("ascii")

    def frame(self, sender: int, sequence: int) -> str:
        """Return an E frame as a client sends it, stamped with the time now."""
        header = HEADER.pack(sender, sequence, time.perf_counter_ns())
        ciphertext = base64.b64encode(base64.b64encode(header + self._padding))
        return f"{self._iv_segment}|E:{ciphertext.decode('ascii')}"

    # Receiving.

    async def read(self, member: Member) -> None:
        """Receive frames for one member until cancelled, timing each E frame."""
        while True:
            text = await member.link.receive()
            position = text.find("|E:")
            if position < 0:
                continue  # control frames: joins and verifications
            arrived = time.perf_counter_ns()
            start = position + 3
            inner = base64.b64decode(text[start : start + HEADER_CHARACTERS])
            sender, sequence, sent = HEADER.unpack_from(base64.b64decode(inner))
            self._delivered(member.index, sender, sequence, sent, arrived)

    def _delivered(
        self, receiver: int, sender: int, sequence: int, sent: int, arrived: int
    ) -> None:
        if self.start_ns <= sent < self.end_ns:
            self.latencies.append(arrived - sent)
        if self.start_ns <= arrived < self.end_ns:
            self.buckets[(arrived - self.start_ns) // self.interval_ns] += 1
        key = (sender, sequence)
        remaining = self.pending.get(key)
        if remaining is not None:
            if remaining <= 1:
                del self.pending[key]
                self.windows[sender].release()
                if not self.pending:
                    self.drained.set()
            else:
                self.pending[key] = remaining - 1
        self.ready[receiver].set()

    # Sending.

    async def send_one(self, member: Member) -> None:
        """Send the next E frame of ``member``; wait first for room in its window."""
        await self.windows[member.index].acquire()
        await self._send(member)

    async def _send(self, member: Member) -> None:
        # The caller has taken one place in the member's window for this frame.
        sequence = self.next_sequence[member.index]
        self.next_sequence[member.index] = sequence + 1
        self.pending[(member.index, sequence)] = self.receivers
        await member.link.send(self.frame(member.index, sequence))

    async def _send_until(self, member: Member, end_ns: int) -> None:
        window = self.windows[member.index]
        while True:
            remaining = (end_ns - time.perf_counter_ns()) / 1e9
            if remaining <= 0:
                return
            with anyio.move_on_after(remaining) as scope:
                await window.acquire()
            if scope.cancelled_caught:
                return
            if self.start_ns <= time.perf_counter_ns() < end_ns:
                self.sent += 1
            await self._send(member)

    async def wait_ready(self) -> None:
        """Send one frame from the creator and wait until every joiner has it.

        The relay handles the creator's frames in order, so when the joiners get
        this frame, every ``_UV`` sent before it has taken effect.
        """
        await self.send_one(self.members[0])
        with anyio.fail_after(JOIN_TIMEOUT):
            for event in self.ready[1:]:
                await event.wait()

    async def run(
        self, senders: int, warmup: float, duration: float, interval: float
    ) -> dict[str, Any]:
        """Flood from the first ``senders`` members and return rates and latencies.

        Deliveries are counted in intervals of ``interval`` seconds over the
        ``duration`` after ``warmup``, and latencies are those of the messages sent
        in that time.
        """
        now = time.perf_counter_ns()
        self.start_ns = now + int(warmup * 1e9)
        self.end_ns = self.start_ns + int(duration * 1e9)
        self.interval_ns = int(interval * 1e9)
        self.buckets = [0] * max(1, math.ceil(duration / interval))
        self.latencies = []
        self.sent = 0
        async with anyio.create_task_group() as group:
            for member in self.members[:senders]:
                group.start_soon(self._send_until, member, self.end_ns)
        self.drained = anyio.Event()
        if self.pending:
            with anyio.move_on_after(DRAIN_TIMEOUT):
                await self.drained.wait()
        lost = len(self.pending)
        self.pending.clear()
        self.windows = [anyio.Semaphore(self.window) for _ in self.members]
        return self._summary(senders, lost, interval)

    def _summary(self, senders: int, lost: int, interval: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        latency: dict[str, float] = {"count": float(len(ordered))}
        if ordered:
            latency |= {
                "p50": _percentile(ordered, 0.50) / 1e9,
                "p90": _percentile(ordered, 0.90) / 1e9,
                "p99": _percentile(ordered, 0.99) / 1e9,
                "max": ordered[-1] / 1e9,
                "mean": sum(ordered) / len(ordered) / 1e9,
            }
        return {
            "senders": senders,
            "receivers": self.receivers,
            "window": self.window,
            "message_size": MESSAGE_SIZE,
            "interval": interval,
            "rates": [count / interval for count in self.buckets],
            "delivered": sum(self.buckets),
            "sent": self.sent,
            "unfinished": lost,
            "latency": latency,
        }


async def flood_room(
    base_url: str | list[str],
    request_room: RoomRequest,
    open_link: LinkOpener,
    config: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Join one room and flood it once per sender count, reporting each result."""
    started = time.perf_counter()
    async with LinkPool(open_link) as pool, anyio.create_task_group() as group:
        members = await join_room(pool, base_url, request_room, config["room_size"])
        flood = Flood(members, config.get("window", WINDOW))
        for member in members:
            group.start_soon(flood.read, member)
        await flood.wait_ready()
        report({"event": "ready", "seconds": time.perf_counter() - started})
        for senders in config["senders"]:
            summary = await flood.run(
                senders, config["warmup"], config["duration"], config["interval"]
            )
            report({"event": "result", **summary})
        group.cancel_scope.cancel()


# Idle sockets.


async def _next_line(lines: queue.Queue[str]) -> str:
    # The lines come from a plain thread that reads standard input.
    while True:
        try:
            return lines.get_nowait()
        except queue.Empty:
            await anyio.sleep(0.02)


async def hold_idle_sockets(
    base_url: str,
    config: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
    lines: queue.Queue[str],
) -> None:
    """Open idle members in rooms in steps, each followed by a ``next`` line."""
    room_size = config["room_size"]
    timeout = config["step_timeout"]

    async def request_room() -> dict[str, Any]:
        return await request_room_over_http(base_url)

    async with LinkPool(open_websocket) as pool:
        # A first small room, so the relay's first-use allocations happen before
        # the baseline.
        await join_room(pool, base_url, request_room, 2)
        report({"event": "opened", "sockets": 0})
        with anyio.fail_after(timeout):
            await _next_line(lines)
        opened = 0
        for step_size in config["steps"]:
            left = step_size
            while left > 0:
                size = min(room_size, left)
                await join_room(pool, base_url, request_room, size)
                left -= size
            opened += step_size
            report({"event": "opened", "sockets": opened})
            with anyio.fail_after(timeout):
                await _next_line(lines)


# The process entry point.


def _read_lines(lines: queue.Queue[str]) -> None:
    for line in sys.stdin:
        lines.put(line.strip())


def _report(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def _main(config: dict[str, Any]) -> None:
    url: str = config["url"]
    # Relays sharing rooms through a backplane: members spread over all of them.
    urls: list[str] = config.get("urls") or [url]
    for each in urls:
        host = urllib.parse.urlsplit(each).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"relay URL {each!r} is not on the loopback interface")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(lines,), daemon=True).start()
    with anyio.fail_after(config["time_limit"]):
        if config["mode"] == "flood":

            async def request_room() -> dict[str, Any]:
                return await request_room_over_http(url)

            await flood_room(urls, request_room, open_websocket, config, _report)
        elif config["mode"] == "idle":
            await hold_idle_sockets(url, config, _report, lines)
        else:
            raise ValueError(f"unknown mode {config['mode']!r}: use flood or idle")
    _report({"event": "done"})


def main(argv: list[str] | None = None) -> int:
    """Run the load generator with the JSON configuration in the first argument."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m benchmarks.relay_load CONFIG_JSON", file=sys.stderr)
        return 2
    anyio.run(_main, json.loads(arguments[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
