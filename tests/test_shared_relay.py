"""The shared relay state machine without Redis: commands out, events in."""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from typing import Any

import pytest

from roupn.errors import RoomError, RoomNotFoundError
from roupn.frames import split_segments
from roupn.relay import Action, Broadcast, Close, Notice, Send
from roupn.shared_relay import (
    CloseRoom,
    Event,
    MemberRecord,
    PublishFrame,
    RemoveMember,
    RoomSnapshot,
    SharedRelayState,
    VerifyUser,
    decode_event,
    encode_frame_event,
)

CODE = "ABCDEF"
CREATOR = "creator-id"
JOINER = "joiner-id"
REMOTE = "remote-id"


def make_state(**options: Any) -> SharedRelayState:
    state = SharedRelayState(
        node_id="node-1",
        dumps=lambda message: json.dumps(message).encode(),
        loads=json.loads,
        clock=lambda: 1000.0,
        **options,
    )
    state.load(
        RoomSnapshot(
            code=CODE,
            creator_id=CREATOR,
            max_users=10,
            created_at=990.0,
            creator_joined=True,
            version=3,
            members=[
                MemberRecord(REMOTE, 2, True, 995.0, "node-2"),
                MemberRecord(CREATOR, 1, True, 991.0, "node-1"),
            ],
        )
    )
    state.local.add(CREATOR)
    return state


def control(message: dict[str, Any]) -> str:
    return "S:" + b64encode(json.dumps(message).encode()).decode()


def sends(actions: list[Action]) -> dict[str, str | bytes]:
    """Return the frame each user gets, from Send and Broadcast actions."""
    frames: dict[str, str | bytes] = {}
    for action in actions:
        if isinstance(action, Send):
            frames[action.user_id] = action.frame
        elif isinstance(action, Broadcast):
            frames.update(dict.fromkeys(action.user_ids, action.frame))
    return frames


def test_snapshot_keeps_join_order() -> None:
    state = make_state()
    room = state.rooms[CODE]
    assert list(room.members) == [CREATOR, REMOTE]
    assert state.room_of(REMOTE) is room
    assert state.versions[CODE] == 3
    assert state.local_members(CODE) == [CREATOR]


def test_join_event_admits_and_announces() -> None:
    state = make_state()
    state.begin_join(CODE, JOINER)
    event = Event("join", version=4, user_id=JOINER, joined_at=999.0)
    actions = state.apply(CODE, event)
    to = sends(actions)
    joined = json.loads(b64decode(split_segments(str(to[JOINER]))["S"]))
    assert joined["users"] == [CREATOR, REMOTE, JOINER]
    assert JOINER in to
    assert CREATOR in to
    assert REMOTE in to
    assert Notice("on_user_join", (CODE, JOINER)) in actions
    assert state.rooms[CODE].pending_since[JOINER] == 999.0
    state.end_join(JOINER, admitted=True)
    assert JOINER in state.local


def test_old_events_skipped() -> None:
    state = make_state()
    assert state.apply(CODE, Event("left", version=3, user_id=REMOTE)) == []
    assert REMOTE in state.rooms[CODE].members


def test_lost_event_closes_local_members() -> None:
    state = make_state()
    actions = state.apply(CODE, Event("left", version=5, user_id=REMOTE))
    assert actions == [Close(CREATOR, 1011, "relay_resync")]
    assert list(state.outbox) == [RemoveMember(CODE, CREATOR, "relay_resync", 1011)]
    assert CODE not in state.rooms


def test_room_frame_becomes_command() -> None:
    notified: list[bool] = []
    state = make_state()
    state.notify = lambda: notified.append(True)
    actions = state.receive(CREATOR, "I:aXY=|E:Y2lwaGVy")
    assert actions == [Notice("on_room_message", (CODE, CREATOR, "I:aXY=|E:Y2lwaGVy"))]
    (command,) = state.outbox
    assert isinstance(command, PublishFrame)
    assert command.receiver is None
    assert str(command.frame).startswith("T:")
    assert str(command.frame).endswith("|I:aXY=|E:Y2lwaGVy")
    assert notified == [True]


def test_frame_event_reaches_local_only() -> None:
    state = make_state()
    frame = "T:MQ==|I:aXY=|E:Y2lwaGVy"
    actions = state.apply(CODE, Event("frame", user_id=REMOTE, frame=frame))
    assert actions == [Broadcast((CREATOR,), frame)]
    # A frame from someone who already left is dropped.
    assert state.apply(CODE, Event("frame", user_id="gone", frame=frame)) == []


def test_direct_frame_to_unknown_dropped() -> None:
    state = make_state()
    receiver = b64encode(b"nobody").decode()
    state.receive(CREATOR, f"U:{receiver}|D:e30=")
    assert not state.outbox


def test_control_messages_become_commands() -> None:
    state = make_state()
    state.receive(CREATOR, control({"type": "_UV", "userId": REMOTE}))
    state.receive(CREATOR, control({"type": "_UK", "userId": REMOTE}))
    state.receive(CREATOR, control({"type": "_RC"}))
    verify, kick, close = state.outbox
    assert isinstance(verify, VerifyUser) and verify.user_id == REMOTE
    assert kick == RemoveMember(CODE, REMOTE, "kicked", 1000)
    assert close == CloseRoom(CODE, "closed_by_creator")
    # Nothing changed before the events come back.
    assert REMOTE in state.rooms[CODE].members


def test_leave_closes_local_socket_once() -> None:
    state = make_state()
    assert state.leave(CREATOR, "too_slow", 1013) == [Close(CREATOR, 1013, "too_slow")]
    assert state.leave(CREATOR, "disconnected") == []
    assert list(state.outbox) == [RemoveMember(CODE, CREATOR, "too_slow", 1013)]


def test_creator_left_event_removes_room() -> None:
    state = make_state()
    actions = state.apply(
        CODE, Event("left", version=4, user_id=CREATOR, reason="disconnected")
    )
    assert Close(CREATOR, 1000, "disconnected") in actions
    assert Notice("on_room_remove", (CODE,)) in actions
    assert CODE not in state.rooms
    assert CREATOR not in state.local


def test_verified_event_marks_member() -> None:
    state = make_state()
    state.apply(CODE, Event("join", version=4, user_id=JOINER, joined_at=999.0))
    actions = state.apply(
        CODE, Event("verified", version=5, user_id=JOINER, frame="T:MQ==|S:e30=")
    )
    assert sends(actions) == {REMOTE: "T:MQ==|S:e30="}
    assert state.rooms[CODE].members[JOINER] is True
    assert JOINER not in state.rooms[CODE].pending_since


def test_expiry_only_for_local_joiners() -> None:
    state = make_state(verification_timeout=5.0)
    state.apply(CODE, Event("join", version=4, user_id=JOINER, joined_at=900.0))
    state.apply(CODE, Event("join", version=5, user_id="other", joined_at=900.0))
    state.local.add(JOINER)
    actions = state.expire()
    assert actions == [Close(JOINER, 1008, "verification_timeout")]
    assert list(state.outbox) == [
        RemoveMember(CODE, JOINER, "verification_timeout", 1008)
    ]


def test_sync_create_and_join_raise() -> None:
    state = make_state()
    with pytest.raises(RoomError, match="create_room_async"):
        state.create_room()
    with pytest.raises(RoomError):
        state.join(CODE)


def test_relay_messages_published() -> None:
    state = make_state()
    state.message_room(CODE, {"type": "_MS"})
    state.message_user(CODE, REMOTE, {"type": "_MS"})
    to_room, to_user = state.outbox
    assert isinstance(to_room, PublishFrame) and to_room.sender is None
    assert isinstance(to_user, PublishFrame) and to_user.receiver == REMOTE
    with pytest.raises(RoomNotFoundError):
        state.message_user(CODE, "nobody", {"type": "_MS"})


@pytest.mark.parametrize("frame", ["T:MQ==|E:YQ==", b"\x00\x01binary\n"])
def test_frame_event_round_trip(frame: str | bytes) -> None:
    data = encode_frame_event("sender", "receiver", frame)
    event = decode_event(data, binary=isinstance(frame, bytes))
    assert event.kind == "frame"
    assert event.user_id == "sender"
    assert event.receiver == "receiver"
    assert event.frame == frame


def test_invalid_event_rejected() -> None:
    with pytest.raises(ValueError):
        decode_event(b"[1, 2]\nframe", binary=False)
    with pytest.raises(ValueError):
        decode_event(b"not json", binary=False)
