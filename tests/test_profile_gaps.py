"""Gaps that docs/security.md lists, mostly of the roupn 0.1 profile.

Each test fails once its gap closes, so that the page gets updated with the code.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_native import errors_of, held_frames, messages_of
from test_session import Room

from roupn import Settings
from roupn.interfaces import MessageContext
from roupn.session import Notice, SendFrame

pytestmark = pytest.mark.usefixtures("quick_keys")

COMPATIBLE = Settings()
NATIVE = Settings.native()


def verified_room(
    members: int, settings: Settings = COMPATIBLE
) -> tuple[Room, str, list[str]]:
    room = Room(settings)
    creator = room.add(creator=True)
    joiners = []
    for _ in range(members):
        joiner = room.add()
        room.deliver()
        room.verify(creator, joiner)
        joiners.append(joiner)
    return room, creator, joiners


def send_room(room: Room, sender: str, data: dict[str, Any]) -> None:
    room.run([room.sessions[sender].seal_room_message(data)], sender)


def test_replayed_message_delivered_in_0_1() -> None:
    room, creator, (joiner,) = verified_room(1)
    send_room(room, creator, {"n": 1})
    (frame,) = held_frames(room, joiner)
    room.inbox.extend([(joiner, frame), (joiner, frame)])
    room.deliver()
    assert [message["n"] for message in messages_of(room, joiner)] == [1, 1]
    assert errors_of(room, joiner) == []


def test_reordered_messages_delivered_in_0_1() -> None:
    room, creator, (joiner,) = verified_room(1)
    for n in (1, 2):
        send_room(room, creator, {"n": n})
    first, second = held_frames(room, joiner)
    room.inbox.extend([(joiner, second), (joiner, first)])
    room.deliver()
    assert [message["n"] for message in messages_of(room, joiner)] == [2, 1]
    assert errors_of(room, joiner) == []


def test_kicked_member_reads_on_in_0_1() -> None:
    room, creator, (kept, kicked) = verified_room(2)
    kicked_session = room.sessions[kicked]
    room.run([room.sessions[creator].kick(kicked)], creator)
    room.deliver()
    assert room.closed[kicked] == (1000, "kicked")

    # A relay that keeps forwarding to the kicked member lets it read on, because
    # roupn 0.1 never replaces the room key.
    send_room(room, creator, {"after": "kick"})
    (frame,) = held_frames(room, kept)
    notices = kicked_session.receive(room.decode(frame))
    read = [
        notice.args[0].data
        for notice in notices
        if isinstance(notice, Notice) and notice.event == "on_message"
    ]
    assert [message["after"] for message in read] == ["kick"]


@pytest.mark.parametrize("settings", [COMPATIBLE, NATIVE], ids=["0.1", "native"])
def test_member_can_name_other_sender(settings: Settings) -> None:
    # Every member has the room key, so a room message proves only that some
    # member wrote it, in both profiles.
    room, creator, (forger, victim) = verified_room(2, settings)
    forger_session = room.sessions[forger]
    assert forger_session.room_key is not None
    message = {"text": "forged", "sender": victim, "senderTime": 1_800_000_000_000}
    context = MessageContext(room.ticket.room_code, victim, forger_session.epoch, 1)
    fields = room.suite.seal_room(
        forger_session.room_key, room.serializer.dumps(message), context
    )
    room.run([SendFrame(fields)], forger)
    room.deliver()
    ((received,),) = room.events(creator, "on_message")
    assert received.data["text"] == "forged"
    assert received.sender == victim
    assert errors_of(room, creator) == []
