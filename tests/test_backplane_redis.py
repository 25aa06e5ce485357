"""The Redis backplane's logic against a real Redis server, without sockets.

Each test runs two or more relay nodes (a :class:`SharedRelayState` and its
Redis link) in this process, each with the actions it produced recorded, and
checks what every node would send to its own sockets.
"""

from __future__ import annotations

import json
import socket
import uuid
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from roupn_redis import RedisBackplane
from roupn_redis.link import RedisRoomLink

from roupn.backplane import BackplaneOptions
from roupn.errors import BackplaneError, RoomLimitError
from roupn.frames import split_segments
from roupn.relay import Action, Broadcast, Close, JoinRefused, Notice, Send
from roupn.server import create_server_connector
from roupn.settings import Settings

pytestmark = pytest.mark.anyio

TIMEOUT = 10


@dataclass
class Node:
    """One relay node: its replicas, its link and what it did to its sockets."""

    state: Any
    link: RedisRoomLink
    actions: list[Action] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)

    def admit(self, user_id: str) -> None:
        self.admitted.append(user_id)

    def frames_to(self, user_id: str) -> list[str]:
        """Return the frames sent to ``user_id``, alone or in a broadcast."""
        frames = []
        for action in self.actions:
            if isinstance(action, Send):
                receivers: tuple[str, ...] = (action.user_id,)
            elif isinstance(action, Broadcast):
                receivers = action.user_ids
            else:
                continue
            if user_id in receivers:
                frames.append(str(action.frame))
        return frames

    def sent_to(self, user_id: str) -> list[dict[str, Any]]:
        """Return the control messages sent to ``user_id``, decoded."""
        messages = []
        for frame in self.frames_to(user_id):
            segments = split_segments(frame)
            if "S" in segments:
                messages.append(json.loads(b64decode(segments["S"])))
        return messages

    def closes_of(self, user_id: str) -> list[Close]:
        return [
            a for a in self.actions if isinstance(a, Close) and a.user_id == user_id
        ]

    def notices(self, event: str) -> list[tuple[Any, ...]]:
        return [
            a.args for a in self.actions if isinstance(a, Notice) and a.event == event
        ]

    def receive(self, user_id: str, frame: str) -> None:
        self.actions.extend(self.state.receive(user_id, frame))

    async def join(
        self, code: str, secret: str | None = None
    ) -> tuple[str, list[Action]] | JoinRefused:
        result = await self.link.join(code, secret, self.admit)
        if not isinstance(result, JoinRefused):
            self.actions.extend(result[1])
        return result


@pytest.fixture
def anyio_backend() -> str:
    # redis.asyncio runs on asyncio only; test_trio_rejected covers trio.
    return "asyncio"


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def options(redis_url: str, prefix: str) -> BackplaneOptions:
    return BackplaneOptions(
        name="redis",
        url=redis_url,
        key_prefix=prefix,
        heartbeat_interval=0.1,
        node_timeout=0.6,
    )


@asynccontextmanager
async def open_node(
    redis_url: str, prefix: str, **relay_options: Any
) -> AsyncIterator[Node]:
    serializer = Settings().load_serializer()
    backplane = RedisBackplane()
    chosen = options(redis_url, prefix)
    state = backplane.create_state(
        chosen, dumps=serializer.dumps, loads=serializer.loads, **relay_options
    )
    node: Node | None = None

    def run(actions: list[Action]) -> None:
        assert node is not None
        node.actions.extend(actions)

    async with backplane.connect(state, chosen, run) as link:
        assert isinstance(link, RedisRoomLink)
        node = Node(state, link)
        yield node


def control(message: dict[str, Any]) -> str:
    return "S:" + b64encode(json.dumps(message).encode()).decode()


def room_frame(text: str) -> str:
    return "I:aXY=|E:" + b64encode(text.encode()).decode()


async def eventually(check: Any, seconds: float = TIMEOUT) -> None:
    """Wait until ``check()`` is true, polling.

    The conditions span the actions and replicas of several nodes, which no
    single event announces.
    """
    with anyio.fail_after(seconds):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def joined(node: Node, code: str, secret: str | None = None) -> str:
    result = await node.join(code, secret)
    assert not isinstance(result, JoinRefused), result
    return result[0]


async def known(node: Node, code: str, user_id: str) -> None:
    """Wait until ``node``'s replica of the room has ``user_id``.

    A join returns once the joiner's own node applied it; the other nodes
    apply it a little later.
    """
    await eventually(lambda: user_id in node.state.rooms[code].members)


# Rooms and joins.


async def test_room_spans_two_nodes(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        creator = await joined(first, ticket.room_code, ticket.creator_secret)
        assert creator == ticket.user_id
        assert first.admitted == [creator]
        joiner = await joined(second, ticket.room_code)
        assert second.admitted == [joiner]

        (room_joined,) = second.sent_to(joiner)
        assert room_joined["type"] == "_RJ"
        assert room_joined["users"] == [creator, joiner]
        assert room_joined["creatorId"] == creator
        await eventually(
            lambda: any(m["type"] == "_UJ" for m in first.sent_to(creator))
        )
        assert first.state.rooms[ticket.room_code].members == {
            creator: True,
            joiner: False,
        }
        assert second.state.rooms[ticket.room_code].members == {
            creator: True,
            joiner: False,
        }


async def test_refusals_match_one_process(redis_url: str, prefix: str) -> None:
    async with open_node(redis_url, prefix, max_pending_per_room=1) as node:
        ticket = await node.link.create_room(2)
        refused = await node.join(ticket.room_code)
        assert refused == JoinRefused(1008, "room_not_found")  # creator not there
        refused = await node.join(ticket.room_code, "wrong secret")
        assert refused == JoinRefused(1008, "invalid_creator_secret")
        await joined(node, ticket.room_code, ticket.creator_secret)
        refused = await node.join(ticket.room_code, ticket.creator_secret)
        assert refused == JoinRefused(1008, "creator_already_joined")
        await joined(node, ticket.room_code)
        assert await node.join(ticket.room_code) == JoinRefused(1008, "room_full")
        assert await node.join("ZZZZZZ") == JoinRefused(1008, "room_not_found")
        assert await node.join("") == JoinRefused(1008, "missing_room_code")

        other = await node.link.create_room(None)
        await joined(node, other.room_code, other.creator_secret)
        await joined(node, other.room_code)
        refused = await node.join(other.room_code)
        assert refused == JoinRefused(1013, "too_many_pending")


async def test_room_codes_unique_across_nodes(redis_url: str, prefix: str) -> None:
    # One-letter codes collide often, so both nodes must take turns in Redis.
    codes: list[str] = []
    async with (
        open_node(redis_url, prefix, room_code_length=1) as first,
        open_node(redis_url, prefix, room_code_length=1) as second,
    ):

        async def create(node: Node) -> None:
            for _ in range(12):
                try:
                    ticket = await node.link.create_room(None)
                except BackplaneError:
                    return  # every attempt hit a taken code
                codes.append(ticket.room_code)

        async with anyio.create_task_group() as group:
            group.start_soon(create, first)
            group.start_soon(create, second)
        stored = await first.link.client.zrange(f"{prefix}:rooms", 0, -1)
    assert len(codes) >= 10
    assert len(set(codes)) == len(codes)
    assert sorted(c.decode() for c in stored) == sorted(codes)


async def test_max_rooms_counts_cluster(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix, max_rooms=2) as first,
        open_node(redis_url, prefix, max_rooms=2) as second,
    ):
        await first.link.create_room(None)
        await second.link.create_room(None)
        with pytest.raises(RoomLimitError, match="maximum of 2 rooms"):
            await first.link.create_room(None)


async def test_unclaimed_room_expires(redis_url: str, prefix: str) -> None:
    async with open_node(redis_url, prefix, unclaimed_room_timeout=0.2) as node:
        ticket = await node.link.create_room(None)
        await anyio.sleep(0.4)
        refused = await node.join(ticket.room_code, ticket.creator_secret)
        assert refused == JoinRefused(1008, "room_not_found")


async def test_user_ids_unique_in_room(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        await joined(first, ticket.room_code, ticket.creator_secret)
        taken = uuid.UUID("00000000-0000-4000-8000-000000000001")
        fresh = uuid.UUID("00000000-0000-4000-8000-000000000002")
        ids = iter([taken, taken, fresh])
        monkeypatch.setattr("roupn_redis.link.uuid.uuid4", lambda: next(ids))
        one = await joined(first, ticket.room_code)
        other = await joined(second, ticket.room_code)
    assert one == str(taken)
    assert other == str(fresh)


# Routing between nodes.


async def test_frames_cross_nodes(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        code = ticket.room_code
        creator = await joined(first, code, ticket.creator_secret)
        joiner = await joined(second, code)
        await known(first, code, joiner)

        # A room frame skips a joiner that is not verified yet.
        first.receive(creator, room_frame("before"))
        # A direct frame reaches it on the other node.
        first.receive(creator, f"U:{b64encode(joiner.encode()).decode()}|D:e30=")
        await eventually(lambda: len(second.frames_to(joiner)) == 2)
        direct = second.frames_to(joiner)[1]
        assert direct.startswith("T:")
        assert "|D:e30=" in direct

        verify = {"type": "_UV", "userId": joiner}
        first.receive(creator, control(verify))
        await eventually(lambda: second.notices("on_user_verified"))
        assert first.notices("on_user_verified") == [(code, joiner)]
        assert second.state.rooms[code].members[joiner] is True

        first.receive(creator, room_frame("after"))
        second.receive(joiner, room_frame("back"))
        await eventually(lambda: len(second.frames_to(joiner)) == 3)
        await eventually(
            lambda: any("E:" in frame for frame in first.frames_to(creator))
        )
        to_joiner = split_segments(second.frames_to(joiner)[2])
        assert b64decode(to_joiner["E"]) == b"after"
        assert "T" in to_joiner
        (to_creator,) = [f for f in first.frames_to(creator) if "E:" in f]
        assert b64decode(split_segments(to_creator)["E"]) == b"back"


async def test_kick_across_nodes(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        code = ticket.room_code
        creator = await joined(first, code, ticket.creator_secret)
        joiner = await joined(second, code)
        await known(first, code, joiner)
        first.receive(creator, control({"type": "_UK", "userId": joiner}))

        await eventually(lambda: second.closes_of(joiner))
        (closed,) = second.closes_of(joiner)
        assert closed.reason == "kicked"
        await eventually(lambda: first.notices("on_user_leave"))
        assert {"type": "_UL", "userId": joiner}.items() <= first.sent_to(creator)[
            -1
        ].items()
        # The second node held no one else in the room, so it dropped its replica.
        await eventually(lambda: code not in second.state.rooms)
        assert await joined(second, code) != joiner


async def test_close_by_creator_across_nodes(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        code = ticket.room_code
        creator = await joined(first, code, ticket.creator_secret)
        joiner = await joined(second, code)
        first.receive(creator, control({"type": "_RC"}))

        await eventually(lambda: second.closes_of(joiner) and first.closes_of(creator))
        assert second.closes_of(joiner)[0].reason == "room_closed"
        await eventually(lambda: second.notices("on_room_remove"))
        assert first.notices("on_room_remove") == [(code,)]
        client = first.link.client
        assert not await client.exists(f"{prefix}:room:{code}")
        assert await client.zscore(f"{prefix}:rooms", code) is None
        refused = await second.join(code)
        assert refused == JoinRefused(1008, "room_not_found")


async def test_creator_leaving_closes_room(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        code = ticket.room_code
        creator = await joined(first, code, ticket.creator_secret)
        joiner = await joined(second, code)
        await known(first, code, joiner)
        first.receive(creator, control({"type": "_UV", "userId": joiner}))
        await eventually(lambda: second.notices("on_user_verified"))

        first.actions.extend(first.state.leave(creator, "disconnected"))
        await eventually(lambda: second.closes_of(joiner))
        assert second.closes_of(joiner)[0].reason == "room_closed"
        left = [m["userId"] for m in second.sent_to(joiner) if m["type"] == "_UL"]
        assert left == [creator]
        await eventually(lambda: code not in first.state.rooms)


# Dead nodes.


async def test_dead_node_members_removed(redis_url: str, prefix: str) -> None:
    async with open_node(redis_url, prefix) as survivor:
        ticket = await survivor.link.create_room(None)
        code = ticket.room_code
        creator = await joined(survivor, code, ticket.creator_secret)

        with anyio.CancelScope() as scope:
            async with open_node(redis_url, prefix) as doomed:
                joiner = await joined(doomed, code)
                await known(survivor, code, joiner)
                survivor.receive(creator, control({"type": "_UV", "userId": joiner}))
                await eventually(lambda: doomed.notices("on_user_verified"))

                async def vanish() -> None:
                    # A killed process neither sends heartbeats nor cleans up.
                    pass

                doomed.link.stop = vanish  # type: ignore[method-assign]
                scope.cancel()
        node_key = f"{prefix}:node:{doomed.state.node_id}"
        assert await survivor.link.client.exists(node_key)

        await eventually(lambda: survivor.notices("on_user_leave"), seconds=5)
        assert survivor.notices("on_user_leave") == [(code, joiner)]
        left = [m for m in survivor.sent_to(creator) if m["type"] == "_UL"]
        assert [m["userId"] for m in left] == [joiner]
        assert survivor.state.rooms[code].members == {creator: True}
        # The reaper deregisters the dead node once it removed every member.
        client = survivor.link.client
        with anyio.fail_after(5):
            while await client.sismember(f"{prefix}:nodes", doomed.state.node_id):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        assert not await client.exists(f"{node_key}:members")


async def test_lost_heartbeat_closes_members(redis_url: str, prefix: str) -> None:
    # As after a pause longer than the node timeout, or a Redis restart.
    async with open_node(redis_url, prefix) as node:
        ticket = await node.link.create_room(None)
        creator = await joined(node, ticket.room_code, ticket.creator_secret)
        client = node.link.client
        await client.delete(f"{prefix}:node:{node.state.node_id}")
        await eventually(lambda: node.closes_of(creator), seconds=5)
        (closed,) = node.closes_of(creator)
        assert (closed.code, closed.reason) == (1011, "relay_resync")
        await eventually(lambda: not node.state.rooms)
        # The node registers again and serves new rooms.
        assert await client.exists(f"{prefix}:node:{node.state.node_id}")
        again = await node.link.create_room(None)
        await joined(node, again.room_code, again.creator_secret)


async def test_flushed_scripts_reloaded(redis_url: str, prefix: str) -> None:
    # Redis drops loaded scripts when it restarts or runs SCRIPT FLUSH.
    async with open_node(redis_url, prefix) as node:
        await node.link.client.script_flush()
        ticket = await node.link.create_room(None)
        code = ticket.room_code
        creator = await joined(node, code, ticket.creator_secret)
        joiner = await joined(node, code)
        await node.link.client.script_flush()
        node.receive(creator, control({"type": "_UV", "userId": joiner}))
        await eventually(lambda: node.notices("on_user_verified"))
        assert node.state.rooms[code].members == {creator: True, joiner: True}


async def test_stopped_node_leaves_rooms(redis_url: str, prefix: str) -> None:
    async with open_node(redis_url, prefix) as first:
        ticket = await first.link.create_room(None)
        code = ticket.room_code
        creator = await joined(first, code, ticket.creator_secret)
        async with open_node(redis_url, prefix) as second:
            joiner = await joined(second, code)
        # A clean stop removes the members at once, before any timeout.
        with anyio.fail_after(0.5):
            await eventually(lambda: first.notices("on_user_leave"))
        assert first.notices("on_user_leave") == [(code, joiner)]
        assert first.state.rooms[code].members == {creator: True}


async def test_replica_loads_snapshot(redis_url: str, prefix: str) -> None:
    async with (
        open_node(redis_url, prefix) as first,
        open_node(redis_url, prefix) as second,
    ):
        ticket = await first.link.create_room(None)
        code = ticket.room_code
        creator = await joined(first, code, ticket.creator_secret)
        early = await joined(first, code)
        first.receive(creator, control({"type": "_UV", "userId": early}))
        await eventually(lambda: first.notices("on_user_verified"))
        late = await joined(second, code)
        await known(first, code, late)
        (room_joined,) = second.sent_to(late)
        assert room_joined["users"] == [creator, early, late]
        room = second.state.rooms[code]
        assert room.members == {creator: True, early: True, late: False}
        assert room.creator_id == creator
        assert second.state.versions[code] == first.state.versions[code]


async def test_trio_rejected(redis_url: str, prefix: str) -> None:
    errors: list[BaseException] = []

    async def start() -> None:
        try:
            async with open_node(redis_url, prefix):
                pass
        except BackplaneError as exc:
            errors.append(exc)

    await anyio.to_thread.run_sync(lambda: anyio.run(start, backend="trio"))
    (error,) = errors
    assert "runs only on asyncio" in str(error)
    assert "--async-backend asyncio" in str(error)


async def test_unreachable_redis_is_clear() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe closed it.
    with pytest.raises(BackplaneError, match="check that Redis runs"):
        async with open_node(f"redis://127.0.0.1:{port}/0", "unused"):
            pass


async def test_metrics_count_backplane_latency(redis_url: str, prefix: str) -> None:
    pytest.importorskip("prometheus_client")
    backplane = options(redis_url, prefix)
    async with create_server_connector(
        port=0, backplane=backplane, metrics=True
    ) as server:
        ticket = await server.create_room_async()
        rendered = server.metrics.render(None)
    assert ticket.room_code
    assert rendered is not None
    lines = rendered[0].decode().splitlines()
    (count,) = [
        line
        for line in lines
        if line.startswith("roupn_backplane_latency_seconds_count")
    ]
    assert float(count.split()[-1]) >= 1
    (created,) = [
        line for line in lines if line.startswith("roupn_rooms_created_total")
    ]
    assert float(created.split()[-1]) == 1
