"""The fan-out load generator: room members that keep a relay saturated.

Run as ``python -m benchmarks.relay_fanout_load CONFIG``, where CONFIG is a JSON
object, it joins one room of a relay on the loopback interface. It reports JSON
lines on standard output: ``ready`` once every member joined and was verified,
``result`` after the measured run, then ``done``.

The relay family's other generator (:mod:`benchmarks.relay_load`) waits for each
message to reach every receiver before the next, which measures latency. This
one keeps up to ``window`` frames on their way to each receiver, so it measures
the rate a relay sustains when it has work queued, as a busy room gives it.

A relay that forwards 150,000 frames a second would saturate a generator built
on a WebSocket client's per-message API in one Python process. So the members
are asyncio protocols: ``websockets``' Sans-I/O client makes and checks the
opening handshake and masks every frame the members send, while the frames the
relay sends, which are never masked, are only counted by walking their headers.
One member decodes the send time in each frame it gets, for the latency.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import socket
import struct
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, cast

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

__all__ = ["Member", "Room", "main"]

MESSAGE_SIZE = 256  # plaintext bytes of a room message
TAG_SIZE = 16  # the AES-GCM tag that a sealed message carries
IV_SIZE = 12

# Seconds to join, and to wait for the frames still on their way after a run.
JOIN_TIMEOUT = 10.0
DRAIN_TIMEOUT = 5.0

# The start of each E frame's ciphertext: sender index, sequence number, and the
# send time from time.perf_counter_ns.
HEADER = struct.Struct("!HIq")

# Characters of the E segment, base64 of base64, that cover the header: 32 of them
# decode to 24 characters of the inner base64, which decode to 18 bytes.
HEADER_CHARACTERS = 32

TEXT_OPCODE = 0x1
CLOSE_OPCODE = 0x8
END_OF_HEADERS = b"\r\n\r\n"
E_SEGMENT = b"|E:"


def _percentile(ordered: list[int], fraction: float) -> float:
    """Return the nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


class Member(asyncio.Protocol):
    """One room member's WebSocket, as an asyncio protocol.

    While joining, every text message is decoded and queued for the joining
    code. During a run, messages are only counted, and a member with ``timed``
    set decodes the send time of each E frame too.
    """

    def __init__(self, room: Room, index: int, url: str) -> None:
        self.room = room
        self.index = index
        self.client = ClientProtocol(parse_uri(url), max_size=2**20)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.collect = True
        self.timed = False
        self.closed = False
        self.received = 0
        self.sent = 0
        self._head = b""
        self._partial = b""

    # Sending.

    def send_text(self, text: str) -> None:
        """Send one text message, masked by the websockets client protocol."""
        assert self.transport is not None
        self.client.send_text(text.encode("ascii"))
        self.transport.write(b"".join(self.client.data_to_send()))

    def close(self) -> None:
        """Send a close frame and close the socket without waiting for a reply."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.client.state is State.OPEN:
            self.client.send_close(1000)
            self.transport.write(b"".join(c for c in self.client.data_to_send() if c))
        self.transport.close()

    # asyncio callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.send_request(self.client.connect())
        self.transport.write(b"".join(self.client.data_to_send()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(
                ConnectionError(f"member {self.index} lost its socket: {exc!r}")
            )

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            self._frames(data)
            return
        self._head += data
        end = self._head.find(END_OF_HEADERS)
        if end < 0:
            return
        end += len(END_OF_HEADERS)
        response, rest = self._head[:end], self._head[end:]
        self._head = b""
        self.client.receive_data(response)
        self.client.events_received()
        if self.client.state is not State.OPEN:
            self.opened.set_exception(
                ConnectionError(
                    f"the relay rejected member {self.index}: "
                    f"{self.client.handshake_exc}"
                )
            )
            return
        self.opened.set_result(None)
        if rest:
            self._frames(rest)

    # Frames from the relay.

    def _frames(self, data: bytes) -> None:
        """Walk the unmasked frames in ``data``; count or decode each one."""
        if self._partial:
            data = self._partial + data
        size = len(data)
        position = 0
        count = 0
        while size - position >= 2:
            length = data[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - position < 4:
                    break
                length = (data[start] << 8) | data[start + 1]
                start += 2
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(data[start : start + 8], "big")
                start += 8
            end = start + length
            if end > size:
                break
            opcode = data[position] & 0x0F
            if opcode == TEXT_OPCODE:
                if self.collect:
                    self.messages.put_nowait(data[start:end].decode("utf-8"))
                else:
                    count += 1
                    if self.timed:
                        self._time(data, start, end)
            elif opcode == CLOSE_OPCODE:
                self.closed = True
            position = end
        self._partial = data[position:]
        if count:
            self.received += count
            self.room.delivered(count)

    def _time(self, data: bytes, start: int, end: int) -> None:
        segment = data.find(E_SEGMENT, start, end)
        if segment < 0:
            return
        segment += len(E_SEGMENT)
        inner = base64.b64decode(data[segment : segment + HEADER_CHARACTERS])
        _, _, sent = HEADER.unpack_from(base64.b64decode(inner))
        self.room.timed(sent, time.perf_counter_ns())

    async def next_message(self) -> str:
        """Return the next text message while joining."""
        return await asyncio.wait_for(self.messages.get(), JOIN_TIMEOUT)


class Room:
    """The members of one room and the flow of frames between them.

    The first ``senders`` members send, one frame each in turn, whenever every
    member lags fewer than ``window`` frames behind what was sent to it, so no
    receiver's queue at the relay exceeds ``window`` frames.
    """

    def __init__(self, senders: int, window: int) -> None:
        self.members: list[Member] = []
        self.sender_count = senders
        self.window = window
        self.sending = False
        self.total_sent = 0
        self.next_sender = 0
        self.start_ns = self.end_ns = 0
        self.interval_ns = 1
        self.buckets: list[int] = []
        self.latencies: list[int] = []
        self.drained: asyncio.Event = asyncio.Event()
        self._padding = os.urandom(MESSAGE_SIZE + TAG_SIZE - HEADER.size)
        iv_text = base64.b64encode(base64.b64encode(os.urandom(IV_SIZE)))
        self._iv_segment = "I:" + iv_text.decode("ascii")

    def frame(self, sender: int, sequence: int) -> str:
        """Return an E frame as a client sends it, stamped with the time now."""
        header = HEADER.pack(sender, sequence, time.perf_counter_ns())
        ciphertext = base64.b64encode(base64.b64encode(header + self._padding))
        return f"{self._iv_segment}|E:{ciphertext.decode('ascii')}"

    def lag(self) -> int:
        """Return the most frames any member still waits for."""
        floor = min(member.received + member.sent for member in self.members)
        return self.total_sent - floor

    def delivered(self, count: int) -> None:
        """Count frames that reached a member, then send more if the window allows."""
        now = time.perf_counter_ns()
        if self.start_ns <= now < self.end_ns:
            self.buckets[(now - self.start_ns) // self.interval_ns] += count
        if self.sending:
            self.pump()
        elif not self.drained.is_set() and self.lag() <= 0:
            self.drained.set()

    def timed(self, sent: int, arrived: int) -> None:
        """Keep the latency of a frame sent in the measured time."""
        if self.start_ns <= sent < self.end_ns:
            self.latencies.append(arrived - sent)

    def pump(self) -> None:
        """Send frames, senders in turn, until some member lags a whole window."""
        allowed = self.window - self.lag()
        while allowed > 0:
            member = self.members[self.next_sender]
            self.next_sender = (self.next_sender + 1) % self.sender_count
            member.send_text(self.frame(member.index, member.sent))
            member.sent += 1
            self.total_sent += 1
            allowed -= 1

    async def run(
        self, warmup: float, duration: float, interval: float
    ) -> dict[str, Any]:
        """Flood the room and return the deliveries per interval and latencies."""
        for member in self.members:
            member.received = member.sent = 0
            member.collect = False
        self.members[-1].timed = True
        self.total_sent = 0

        now = time.perf_counter_ns()
        self.start_ns = now + int(warmup * 1e9)
        self.end_ns = self.start_ns + int(duration * 1e9)
        self.interval_ns = int(interval * 1e9)
        self.buckets = [0] * max(1, math.ceil(duration / interval))
        self.latencies = []
        self.drained = asyncio.Event()

        self.sending = True
        self.pump()
        await asyncio.sleep((self.end_ns - time.perf_counter_ns()) / 1e9)
        self.sending = False
        sent_in_run = self.total_sent
        unfinished = 0
        try:
            await asyncio.wait_for(self.drained.wait(), DRAIN_TIMEOUT)
        except TimeoutError:
            unfinished = self.lag()
        if any(member.closed for member in self.members):
            raise ConnectionError("the relay closed a member's socket during the run")

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
            "senders": self.sender_count,
            "receivers": len(self.members) - 1,
            "window": self.window,
            "message_size": MESSAGE_SIZE,
            "interval": interval,
            "rates": [count / interval for count in self.buckets],
            "delivered": sum(self.buckets),
            "sent": sent_in_run,
            "unfinished": unfinished,
            "latency": latency,
        }


# Joining.


def _control_frame(message: dict[str, Any]) -> str:
    encoded = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return "S:" + base64.b64encode(encoded).decode("ascii")


def _control_message(text: str) -> dict[str, Any] | None:
    for segment in text.split("|"):
        key, _, value = segment.partition(":")
        if key == "S":
            message: dict[str, Any] = json.loads(base64.b64decode(value))
            return message
    return None


async def _create_room(host: str, port: int) -> dict[str, Any]:
    """Create a room with a plain HTTP/1.1 GET request to ``/create-room``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            f"GET /create-room HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii"))
        response = await asyncio.wait_for(reader.read(), JOIN_TIMEOUT)
    finally:
        writer.close()
    head, _, body = response.partition(END_OF_HEADERS)
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise ConnectionError(f"create-room failed: {head.decode(errors='replace')}")
    ticket: dict[str, Any] = json.loads(body)
    return ticket


async def _open(room: Room, index: int, url: str) -> Member:
    split = urllib.parse.urlsplit(url)
    assert split.hostname is not None and split.port is not None
    member = Member(room, index, url)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: member, split.hostname, split.port)
    await asyncio.wait_for(member.opened, JOIN_TIMEOUT)
    return member


async def _user_id(member: Member) -> str:
    while True:
        message = _control_message(await member.next_message())
        if message is not None and message.get("type") == "_RJ":
            return str(message["userId"])


async def join(url: str, room_size: int, senders: int, window: int) -> Room:
    """Create a room, join it, and verify every joiner as its creator."""
    split = urllib.parse.urlsplit(url)
    host, port = split.hostname, split.port
    if host not in ("127.0.0.1", "localhost", "::1") or port is None:
        raise ValueError(f"relay URL {url!r} is not on the loopback interface")
    ticket = await _create_room(host, port)

    room = Room(senders, window)
    base = f"ws://{split.netloc}/join-room?"
    creator_id = ""
    for index in range(room_size):
        query = {"code": ticket["roomCode"]}
        if index == 0:
            query["creator"] = ticket["creatorSecret"]
        member = await _open(room, index, base + urllib.parse.urlencode(query))
        user_id = await _user_id(member)
        room.members.append(member)
        if index == 0:
            creator_id = user_id
            continue
        verified = {
            "type": "_UV",
            "userId": user_id,
            "sender": creator_id,
            "senderTime": time.time_ns() // 1_000_000,
        }
        room.members[0].send_text(_control_frame(verified))

    # The relay handles the creator's frames in order, so once every joiner has
    # this room frame, every verification before it took effect.
    room.members[0].send_text(room.frame(0, 0))
    for member in room.members[1:]:
        while "|E:" not in await member.next_message():
            pass
    return room


# The process entry point.


def _report(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def run(config: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> None:
    """Join a room, flood it once, and report the result."""
    started = time.perf_counter()
    room = await join(
        config["url"], config["room_size"], config["senders"], config["window"]
    )
    try:
        report({"event": "ready", "seconds": time.perf_counter() - started})
        summary = await room.run(
            config["warmup"], config["duration"], config["interval"]
        )
        report({"event": "result", **summary})
    finally:
        for member in room.members:
            member.close()
        await asyncio.sleep(0.05)


async def _main(config: dict[str, Any]) -> None:
    await asyncio.wait_for(run(config, _report), config["time_limit"])
    _report({"event": "done"})


def event_loop_name() -> str:
    """Return ``uvloop`` if it is installed, which this process then uses."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main(argv: list[str] | None = None) -> int:
    """Run the load generator with the JSON configuration in the first argument."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print(
            "usage: python -m benchmarks.relay_fanout_load CONFIG_JSON", file=sys.stderr
        )
        return 2
    config = json.loads(arguments[0])
    if event_loop_name() == "uvloop":
        import uvloop

        uvloop.run(_main(config))
    else:
        asyncio.run(_main(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
