"""The shared document: recorded JavaScript updates, ordering, and convergence."""

from __future__ import annotations

import json
import random
import time
from base64 import b64decode
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from conftest import load_vector
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import roupn
from roupn import ConnectionState, Settings
from roupn.document import SharedDocument
from roupn.session import Message
from roupn.testing import EventRecorder

TIMEOUT = 30


@pytest.fixture(params=["snapshot", "tracked"])
def diff_strategy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def recorded_sync_messages() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the decrypted _SS and _SU messages in sending order, and the steps."""
    vector = load_vector("roupn-0.1-sync-session.json")
    keys = {key["algorithm"]: key for key in vector["clients"]["creator"]["keys"]}
    room_key = AESGCM(b64decode(keys["AES-GCM"]["raw"]))
    messages = []
    for side in ("creator", "joiner"):
        for frame in vector["clients"][side]["frames"]:
            if frame["dir"] != "out":
                continue
            segments = dict(part.split(":", 1) for part in frame["data"].split("|"))
            if "E" not in segments:
                continue
            iv = b64decode(b64decode(segments["I"]))
            ciphertext = b64decode(b64decode(segments["E"]))
            messages.append(json.loads(room_key.decrypt(iv, ciphertext, None)))
    messages.sort(key=lambda message: message["senderTime"])
    return messages, vector["steps"]


def test_recorded_updates_give_recorded_documents(diff_strategy: str) -> None:
    messages, steps = recorded_sync_messages()
    assert [m["type"] for m in messages] == ["_SS", "_SU", "_SU", "_SU", "_SU"]
    assert len(steps) == len(messages)
    strategy = Settings(diff_strategy=diff_strategy).load_diff_strategy()
    observer = SharedDocument(strategy, {"unrelated": True})
    for message, step in zip(messages, steps, strict=True):
        if message["type"] == "_SS":
            observer.receive_sync(message)
        else:
            assert observer.receive_update(message)
        assert observer.document == step["creator"], step["label"]
        assert observer.document == step["joiner"], step["label"]


def test_recorded_updates_in_any_order(diff_strategy: str) -> None:
    """Updates that arrive out of order are put back in order by their keys."""
    messages, steps = recorded_sync_messages()
    strategy = Settings(diff_strategy=diff_strategy).load_diff_strategy()
    sync, *updates = messages
    for seed in range(20):
        shuffled = updates[:]
        random.Random(seed).shuffle(shuffled)
        observer = SharedDocument(strategy, {})
        observer.receive_sync(sync)
        for message in shuffled:
            observer.receive_update(message)
        assert observer.document == steps[-1]["creator"], f"seed {seed}"


def test_repeated_update_ignored(diff_strategy: str) -> None:
    messages, steps = recorded_sync_messages()
    strategy = Settings(diff_strategy=diff_strategy).load_diff_strategy()
    observer = SharedDocument(strategy, {})
    observer.receive_sync(messages[0])
    assert observer.receive_update(messages[1])
    assert not observer.receive_update(messages[1])
    assert observer.document == steps[1]["creator"]


def test_inapplicable_update_kept_without_effect(diff_strategy: str) -> None:
    strategy = Settings(diff_strategy=diff_strategy).load_diff_strategy()
    document = SharedDocument(strategy, {"keep": [1, 2]})
    message = {
        "identifier": "x",
        "stateDelta": [
            {"type": "set", "path": ["keep", "0"], "new": 5},
            {"type": "delete", "path": ["missing"]},
        ],
        "senderTime": 1,
        "sender": "a",
    }
    assert document.receive_update(message)
    assert document.document == {"keep": [1, 2]}
    assert len(document.log) == 1


@pytest.mark.parametrize(
    "message",
    [
        {"identifier": 5, "stateDelta": [], "senderTime": 1, "sender": "a"},
        {"identifier": "x", "stateDelta": "no", "senderTime": 1, "sender": "a"},
        {"identifier": "x", "stateDelta": [], "senderTime": "1", "sender": "a"},
        {"identifier": "x", "stateDelta": [], "senderTime": 1, "sender": None},
        {
            "identifier": "x",
            "stateDelta": [{"type": "nope"}],
            "senderTime": 1,
            "sender": "a",
        },
        {
            "identifier": "x",
            "stateDelta": [{"type": "set", "path": "a"}],
            "senderTime": 1,
            "sender": "a",
        },
    ],
)
def test_invalid_update_changes_nothing(
    diff_strategy: str, message: dict[str, Any]
) -> None:
    strategy = Settings(diff_strategy=diff_strategy).load_diff_strategy()
    document = SharedDocument(strategy, {"keep": [1, 2]})
    with pytest.raises(roupn.MessageError):
        document.receive_update(message)
    assert document.document == {"keep": [1, 2]}
    assert len(document.log) == 0


# Convergence of real synchronizers with random delays.


class DelayingSynchronizer(roupn.ClientSynchronizer):
    """Delays each incoming update at random, keeping each sender's order.

    Updates of different senders therefore reach each member in a different
    order, as they would through a relay whose links to members differ in speed.
    """

    rng: random.Random

    def __init__(self, rng: random.Random, **options: Any) -> None:
        super().__init__(**options)
        self.rng = rng
        self.applied = 0
        self.sent = 0
        self._progress = anyio.Event()
        self._channels: dict[str, Any] = {}

    async def wait_applied(self, count: int) -> None:
        while self.applied < count:
            self._progress = anyio.Event()
            await self._progress.wait()

    def _take_local_update(self) -> Any:
        taken = super()._take_local_update()
        if taken is not None:
            self.sent += 1
        return taken

    async def _intercept_message(self, message: Message) -> bool:
        if message.data.get("type") != "_SU" or message.sender is None:
            return await super()._intercept_message(message)
        channel = self._channels.get(message.sender)
        if channel is None:
            send, receive = anyio.create_memory_object_stream[Message](1000)
            self._channels[message.sender] = send
            assert self._task_group is not None
            self._task_group.start_soon(self._drain, receive)
            channel = send
        channel.send_nowait(message)
        return True

    async def _drain(self, receive: Any) -> None:
        async for message in receive:
            await anyio.sleep(self.rng.random() * 0.004)
            await roupn.ClientSynchronizer._intercept_message(self, message)
            self.applied += 1
            self._progress.set()


def random_edit(rng: random.Random, document: dict[str, Any], who: int) -> None:
    """Make one random edit of the kinds a real app makes."""
    choice = rng.randrange(6)
    key = f"k{rng.randrange(6)}"
    if choice == 0:
        document[key] = rng.choice([None, True, rng.randrange(100), f"v{who}", [1], {}])
    elif choice == 1:
        document.pop(key, None)
    elif choice == 2:
        items = document.setdefault("list", [])
        if isinstance(items, list):
            items.append({"by": who, "n": rng.randrange(100)})
    elif choice == 3:
        items = document.get("list")
        if isinstance(items, list) and items:
            items.pop()
    elif choice == 4:
        nested = document.setdefault("nested", {})
        if isinstance(nested, dict):
            nested[key] = {"deep": [who, rng.randrange(10)]}
    else:
        items = document.get("list")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            items[0]["n"] = rng.randrange(100)


@pytest.fixture
async def room_of_five(
    diff_strategy: str,
) -> AsyncIterator[list[DelayingSynchronizer]]:
    settings = Settings(transport="memory", diff_strategy=diff_strategy)
    async with roupn.create_server_connector(
        host="test", port=0, settings=settings
    ) as relay:
        members = [
            DelayingSynchronizer(
                random.Random(index),
                server_url=relay.url,
                settings=settings,
                synchronisation_interval=None,
                public_state={"title": "start"},
            )
            for index in range(5)
        ]
        async with AsyncExitStack() as stack:
            for member in members:
                await stack.enter_async_context(member)
            creator, *joiners = members
            creator_events = EventRecorder(creator, TIMEOUT)
            code = await creator.create_room()
            for joiner in joiners:
                joiner_events = EventRecorder(joiner, TIMEOUT)
                await joiner.join_room(code)
                (shown,) = await joiner_events.wait_for("on_user_verification_code")
                await creator_events.wait_for(
                    "on_user_verification_code",
                    lambda event, joiner=joiner: event["userId"] == joiner.user_id,
                )
                assert joiner.user_id is not None
                assert await creator.verify_user(joiner.user_id, shown["code"])
                await joiner_events.wait_for(
                    "on_connection", lambda state: state is ConnectionState.CONNECTED
                )
                await joiner_events.wait_for("on_state_change")
            yield members


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_members_converge(room_of_five: list[DelayingSynchronizer]) -> None:
    members = room_of_five
    for member in members:
        assert member.public_state == {"title": "start"}
    for seed in range(200):
        rng = random.Random(seed)
        for member in members:
            member.rng.seed(rng.random())
        async with anyio.create_task_group() as group:
            for who, member in enumerate(members):
                group.start_soon(
                    edit_and_send, member, random.Random(rng.random()), who
                )
        total = sum(member.sent for member in members)
        with anyio.fail_after(TIMEOUT):
            for member in members:
                await member.wait_applied(total - member.sent)
        first = members[0].public_state
        for index, member in enumerate(members[1:], 1):
            assert member.public_state == first, f"seed {seed}: member {index} differs"
    assert any(member._document.log.rollbacks for member in members)


async def edit_and_send(
    member: DelayingSynchronizer, rng: random.Random, who: int
) -> None:
    for _ in range(2):
        for _ in range(rng.randrange(1, 4)):
            random_edit(rng, member.public_state, who)
        if await member.send_update() is None:
            # Nothing changed: send a real edit so every member counts the same.
            member.public_state[f"touch{who}"] = rng.random()
            await member.send_update()
        await anyio.sleep(rng.random() * 0.002)


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_todo_list_over_websockets(diff_strategy: str) -> None:
    """Three people share a to-do list through a relay on real sockets."""
    settings = Settings(transport="websockets", diff_strategy=diff_strategy)
    async with roupn.create_server_connector(
        host="127.0.0.1", port=0, settings=settings
    ) as relay:
        private: dict[str, Any] = {}
        alice = roupn.create_client_synchronizer(
            {"server_url": relay.url, "settings": settings},
            private,
            {"title": "groceries", "todos": []},
        )
        bob = roupn.create_client_synchronizer(
            {"server_url": relay.url, "settings": settings}, None, {"todos": ["stale"]}
        )
        carol = roupn.create_client_synchronizer(
            {"server_url": relay.url, "settings": settings}
        )
        async with alice, bob, carol:
            alice_events = EventRecorder(alice, TIMEOUT)
            code = await alice.create_room()
            assert private["room_code"] == code
            assert private["connection_state"] is ConnectionState.CONNECTED
            for joiner in (bob, carol):
                events = EventRecorder(joiner, TIMEOUT)
                await joiner.join_room(code)
                (shown,) = await events.wait_for("on_user_verification_code")
                assert joiner.private_state["verification_code"] == shown["code"]
                await alice_events.wait_for(
                    "on_user_verification_code",
                    lambda event, joiner=joiner: event["userId"] == joiner.user_id,
                )
                assert joiner.user_id is not None
                assert await alice.verify_user(joiner.user_id, shown["code"])
                await events.wait_for("on_state_change")
                assert joiner.public_state == {"title": "groceries", "todos": []}

            with pytest.raises(TypeError):
                alice.private_state["room_code"] = "changed"  # type: ignore[index]

            bob_events = EventRecorder(bob, TIMEOUT)
            carol_events = EventRecorder(carol, TIMEOUT)
            alice.public_state["todos"].append({"text": "milk", "done": False})
            bob.public_state["todos"].append({"text": "bread", "done": False})
            carol.public_state["title"] = "weekend groceries"
            await alice.send_update()
            await bob.send_update()
            await carol.send_update()
            # A full sync from a verification may also arrive meanwhile, so wait
            # for the edits themselves rather than for a number of changes.
            for member, events in (
                (alice, alice_events),
                (bob, bob_events),
                (carol, carol_events),
            ):
                while not has_all_edits(member.public_state):
                    seen = len(events.of("on_state_change"))
                    await events.wait_for_count("on_state_change", seen + 1)

            assert alice.public_state == bob.public_state == carol.public_state
            todos = alice.public_state["todos"]
            assert sorted(todo["text"] for todo in todos) == ["bread", "milk"]
            assert alice.public_state["title"] == "weekend groceries"


def has_all_edits(state: dict[str, Any]) -> bool:
    texts = sorted(todo["text"] for todo in state.get("todos", []))
    return texts == ["bread", "milk"] and state.get("title") == "weekend groceries"


def test_reply_ordered_after_update_from_future() -> None:
    """An update built on another one sorts after it, whatever the two clocks read."""
    strategy = Settings().load_diff_strategy()
    ahead = SharedDocument(strategy, {"status": "draft"})
    behind = SharedDocument(strategy, {"status": "draft"})

    ahead.document["status"] = "review"
    first_changes = ahead.take_local()
    first = {"sender": "b-ahead", "senderTime": 5_000, "stateDelta": first_changes}
    ahead.record_local((5_000, "b-ahead", "u1"), first_changes)
    assert behind.receive_update({**first, "identifier": "u1"})

    # The second member's clock reads 1,000 ms, far behind the first one's.
    behind.document["status"] = "done"
    second_changes = behind.take_local()
    second_time = max(1_000, behind.next_time())
    assert second_time > 5_000
    behind.record_local((second_time, "a-behind", "u2"), second_changes)
    second = {"sender": "a-behind", "senderTime": second_time}
    assert ahead.receive_update(
        {**second, "identifier": "u2", "stateDelta": second_changes}
    )

    assert ahead.document == {"status": "done"}
    assert behind.document == {"status": "done"}


@pytest.mark.anyio
@pytest.mark.usefixtures("quick_keys")
async def test_reply_to_fast_clock_sent_later() -> None:
    settings = Settings(transport="memory")
    async with roupn.create_server_connector(
        host="test", port=0, settings=settings
    ) as relay:
        options = {
            "server_url": relay.url,
            "settings": settings,
            "synchronisation_interval": None,
        }
        alice = roupn.create_client_synchronizer(options, None, {"status": "draft"})
        bob = roupn.create_client_synchronizer(options)
        async with alice, bob:
            alice_events = EventRecorder(alice, TIMEOUT)
            bob_events = EventRecorder(bob, TIMEOUT)
            code = await alice.create_room()
            await bob.join_room(code)
            (shown,) = await bob_events.wait_for("on_user_verification_code")
            await alice_events.wait_for("on_user_verification_code")
            assert bob.user_id is not None
            assert await alice.verify_user(bob.user_id, shown["code"])
            await bob_events.wait_for("on_state_change")

            # Alice's clock runs a minute ahead of Bob's.
            session = alice._current()
            session._clock = lambda: time.time() + 60
            alice.public_state["status"] = "review"
            await alice.send_update()
            await bob_events.wait_for_count("on_state_change", 2)
            assert bob.public_state == {"status": "review"}

            bob.public_state["status"] = "done"
            await bob.send_update()
            await alice_events.wait_for("on_state_change")
            assert alice.public_state == {"status": "done"}
            assert bob.public_state == {"status": "done"}
