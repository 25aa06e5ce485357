"""Load on one relay: 1,000 WebSockets in 100 rooms, then all of them leave at once.

The clients run in a separate process (``load_clients.py``), so that the relay
has this event loop to itself and tracemalloc here measures only the relay.
After the load, the relay's rooms, connection tables, tasks and traced memory
must return to where they were before it.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import roupn
from roupn.frames import decode_text, encode_text

pytestmark = pytest.mark.anyio

ROOMS = 100
ROOM_SIZE = 10
CONNECTIONS = ROOMS * ROOM_SIZE
MESSAGES_PER_MEMBER = 2
CLIENTS = Path(__file__).with_name("load_clients.py")

# Seconds the clients get to join and exchange every frame, and the relay to
# clean up after they leave.
LOAD_TIMEOUT = 300.0
CLEANUP_TIMEOUT = 30.0

# Traced memory the relay may keep after the load, in bytes. Python never shrinks
# a dict or set table, so the tables that held 1,000 peers or tasks keep their
# size, and freelists keep some freed tuples. These stay at the peak's level
# and do not add up over loads. A leak of 1 KiB per connection would exceed it.
MEMORY_MARGIN = 1024 * 1024

SETTINGS = roupn.Settings(transport="websockets")


class RecordList(logging.Handler):
    """Keeps every log record at WARNING or above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def relay_problems() -> Iterator[list[logging.LogRecord]]:
    """Collect warnings and errors logged anywhere, the event loop's included."""
    handler = RecordList()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)


def relay_tables(relay: roupn.ServerConnector) -> dict[str, int]:
    """Count the relay's rooms, users and connections."""
    return {
        "rooms": relay.get_room_count(),
        "peers": len(relay._peers),
        "users": len(relay.state._room_of_user),
        "connections": relay._connections.total,
    }


async def warm_up(relay: roupn.ServerConnector) -> None:
    """Run one small room, so that caches filled on first use are not growth."""
    ticket = relay.create_room()
    base = f"{relay.url}/join-room?code={ticket.room_code}"
    transport = SETTINGS.load_transport()
    async with AsyncExitStack() as stack:
        creator = await stack.enter_async_context(
            transport.connect(f"{base}&creator={ticket.creator_secret}")
        )
        joiner = await stack.enter_async_context(transport.connect(base))
        with anyio.fail_after(LOAD_TIMEOUT):
            await creator.receive()
            joined = json.loads(decode_text(str(await joiner.receive()))["S"])
            await creator.receive()
            user_id = joined["userId"]
            verified = {"type": "_UV", "userId": user_id}
            await creator.send(encode_text({"S": json.dumps(verified).encode()}))
            await creator.send(encode_text({"I": b"0" * 12, "E": b"warm"}))
            await joiner.receive()


async def wait_for_baseline(
    relay: roupn.ServerConnector, tasks: int
) -> tuple[dict[str, int], int]:
    """Wait until the relay has no rooms or users and runs ``tasks`` tasks, or time out.

    Returns the last counts seen, so that a failed assert shows them.
    """
    empty = dict.fromkeys(relay_tables(relay), 0)
    with anyio.move_on_after(CLEANUP_TIMEOUT):
        while True:
            tables = relay_tables(relay)
            running = len(anyio.get_running_tasks())
            if tables == empty and running == tasks:
                break
            await anyio.sleep(0.1)
    return relay_tables(relay), len(anyio.get_running_tasks())


def memory_growth(before: tracemalloc.Snapshot) -> str:
    """Describe the ten source lines whose traced memory grew the most."""
    after = tracemalloc.take_snapshot()
    lines = [str(stat) for stat in after.compare_to(before, "lineno")[:10]]
    return "\n".join(lines)


async def run_clients(relay: roupn.ServerConnector) -> dict[str, Any]:
    """Run the client process against ``relay`` and return its figures.

    Once every frame arrived, the relay's tables are added to the figures under
    ``relay``, and the clients get the command to leave.
    """
    assert relay.url is not None
    arguments = [relay.url, str(ROOMS), str(ROOM_SIZE), str(MESSAGES_PER_MEMBER)]
    async with await anyio.open_process(
        [sys.executable, str(CLIENTS), *arguments]
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        assert process.stderr is not None
        output = BufferedByteReceiveStream(process.stdout)
        try:
            with anyio.fail_after(LOAD_TIMEOUT):
                line = await output.receive_until(b"\n", 10_000)
        except (anyio.IncompleteRead, TimeoutError):
            with suppress(ProcessLookupError):
                process.kill()
            errors = b"".join([chunk async for chunk in process.stderr])
            pytest.fail(f"the clients failed:\n{errors.decode(errors='replace')}")
        figures: dict[str, Any] = json.loads(line)
        figures["relay"] = relay_tables(relay)
        await process.stdin.send(b"leave\n")
        with anyio.fail_after(LOAD_TIMEOUT):
            code = await process.wait()
        assert code == 0, f"the clients exited with {code}"
    return figures


async def test_relay_recovers_after_load() -> None:
    async with roupn.create_server_connector(
        host="127.0.0.1",
        port=0,
        settings=SETTINGS,
        max_rooms=2 * ROOMS,
        max_connections=2 * CONNECTIONS,
        max_connections_per_address=2 * CONNECTIONS,
        room_creations_per_minute=10 * ROOMS,
        join_attempts_per_minute=10 * CONNECTIONS,
        max_pending_per_room=ROOM_SIZE,
    ) as relay:
        assert relay.url is not None
        tasks_at_start = len(anyio.get_running_tasks())
        await warm_up(relay)
        tables, tasks = await wait_for_baseline(relay, tasks_at_start)
        assert tasks == tasks_at_start, "the warm-up room left tasks running"
        gc.collect()
        tracemalloc.start()
        try:
            memory_before, _ = tracemalloc.get_traced_memory()
            snapshot_before = tracemalloc.take_snapshot()
            with relay_problems() as problems:
                figures = await run_clients(relay)
                tables_after, tasks_after = await wait_for_baseline(relay, tasks)
                gc.collect()
            memory_after, memory_peak = tracemalloc.get_traced_memory()
            growth = memory_growth(snapshot_before)
        finally:
            tracemalloc.stop()

    assert figures["connections"] == CONNECTIONS
    assert figures["rooms"] == ROOMS
    assert figures["relay"]["rooms"] == ROOMS
    assert figures["relay"]["peers"] == CONNECTIONS
    others = ROOM_SIZE - 1
    expected_room_frames = ROOMS * (
        MESSAGES_PER_MEMBER * others + others * (1 + MESSAGES_PER_MEMBER * others)
    )
    assert figures["room_frames_received"] == expected_room_frames
    assert figures["direct_frames_received"] == ROOMS * others

    assert [record.getMessage() for record in problems] == []
    assert tables_after == tables
    assert tasks_after == tasks
    assert memory_peak - memory_before > MEMORY_MARGIN, "the load traced no memory"
    assert memory_after - memory_before < MEMORY_MARGIN, growth
    print(
        f"\n{figures} traced memory before {memory_before} B, "
        f"peak {memory_peak} B, after {memory_after} B"
    )
