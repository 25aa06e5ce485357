"""The relay's routing rules, driven directly without sockets."""

from __future__ import annotations

import json
import re
import uuid
from base64 import b64decode, b64encode
from typing import Any

import pytest

from roupn.frames import decode_text, split_segments
from roupn.messages import CODE_ALPHABET
from roupn.relay import Broadcast, Close, JoinRefused, Notice, RelayState, Send


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def dumps(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


def make_relay(**options: Any) -> tuple[RelayState, FakeClock]:
    clock = FakeClock()
    return RelayState(dumps=dumps, loads=loads, clock=clock, **options), clock


def control(message: dict[str, Any]) -> str:
    return "S:" + b64encode(dumps(message)).decode()


def room_frame() -> str:
    return (
        "I:"
        + b64encode(b64encode(b"iv")).decode()
        + "|E:"
        + b64encode(b"Y2lwaGVy").decode()
    )


def direct_frame(receiver: str) -> str:
    return (
        "P:"
        + b64encode(b"eA==").decode()
        + "|U:"
        + b64encode(receiver.encode()).decode()
    )


def sends(actions: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for action in actions:
        if isinstance(action, Send):
            out.setdefault(action.user_id, []).append(action.frame)
        elif isinstance(action, Broadcast):
            for user_id in action.user_ids:
                out.setdefault(user_id, []).append(action.frame)
    return out


def closes(actions: list[Any]) -> dict[str, tuple[int, str]]:
    return {a.user_id: (a.code, a.reason) for a in actions if isinstance(a, Close)}


def message_of(frame: str) -> dict[str, Any]:
    return json.loads(decode_text(frame)["S"])


def joined(
    relay: RelayState, code: str, secret: str | None = None
) -> tuple[str, list[Any]]:
    result = relay.join(code, secret)
    assert not isinstance(result, JoinRefused), result
    return result


def room_with_members(
    relay: RelayState, joiners: int = 2, verify: bool = True
) -> tuple[str, str, list[str]]:
    ticket = relay.create_room()
    creator, _ = joined(relay, ticket.room_code, ticket.creator_secret)
    others = []
    for _ in range(joiners):
        user, _ = joined(relay, ticket.room_code)
        if verify:
            relay.receive(creator, control({"type": "_UV", "userId": user}))
        others.append(user)
    return ticket.room_code, creator, others


def test_create_room_ticket() -> None:
    relay, _ = make_relay()
    ticket = relay.create_room()
    assert re.fullmatch(f"[{CODE_ALPHABET}]{{6}}", ticket.room_code)
    assert uuid.UUID(ticket.creator_secret).version == 4
    assert uuid.UUID(ticket.user_id).version == 4
    assert ticket.to_message() == {
        "creatorSecret": ticket.creator_secret,
        "roomCode": ticket.room_code,
        "userId": ticket.user_id,
    }


def test_room_codes_unique() -> None:
    relay, _ = make_relay(room_code_length=1)
    codes = {relay.create_room().room_code for _ in range(len(CODE_ALPHABET))}
    assert len(codes) == len(CODE_ALPHABET)


def test_creator_join_gets_room_joined() -> None:
    relay, _ = make_relay()
    ticket = relay.create_room()
    user_id, actions = joined(relay, ticket.room_code, ticket.creator_secret)
    assert user_id == ticket.user_id
    first = sends(actions)[user_id][0]
    assert "T" not in split_segments(first)
    assert message_of(first) == {
        "type": "_RJ",
        "creatorId": user_id,
        "userId": user_id,
        "users": [user_id],
    }


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (None, "missing_room_code"),
        ("", "missing_room_code"),
        ("ZZZZZZ", "room_not_found"),
    ],
)
def test_join_refused_without_room(code: str | None, reason: str) -> None:
    relay, _ = make_relay()
    assert relay.join(code) == JoinRefused(1008, reason)


def test_joiner_before_creator_refused() -> None:
    relay, _ = make_relay()
    ticket = relay.create_room()
    assert relay.join(ticket.room_code) == JoinRefused(1008, "room_not_found")


def test_creator_secret_reuse_refused() -> None:
    relay, _ = make_relay()
    ticket = relay.create_room()
    joined(relay, ticket.room_code, ticket.creator_secret)
    refused = relay.join(ticket.room_code, ticket.creator_secret)
    assert refused == JoinRefused(1008, "creator_already_joined")


def test_wrong_creator_secret_refused() -> None:
    relay, _ = make_relay()
    ticket = relay.create_room()
    refused = relay.join(ticket.room_code, str(uuid.uuid4()))
    assert refused == JoinRefused(1008, "invalid_creator_secret")


def test_secret_of_other_room_refused() -> None:
    relay, _ = make_relay()
    first = relay.create_room()
    second = relay.create_room()
    assert isinstance(relay.join(second.room_code, first.creator_secret), JoinRefused)


@pytest.mark.parametrize(("limit", "capacity"), [(None, 3), (2, 2), (10, 3)])
def test_room_full(limit: int | None, capacity: int) -> None:
    relay, _ = make_relay(max_users_per_room=3)
    ticket = relay.create_room(limit)
    joined(relay, ticket.room_code, ticket.creator_secret)
    for _ in range(capacity - 1):
        joined(relay, ticket.room_code)
    assert relay.join(ticket.room_code) == JoinRefused(1008, "room_full")


def test_invalid_limit_rejected() -> None:
    relay, _ = make_relay()
    with pytest.raises(ValueError, match="at least 1"):
        relay.create_room(0)


def test_user_joined_reaches_verified_only() -> None:
    relay, _ = make_relay()
    code, creator, (verified, unverified) = room_with_members(relay, 2, verify=False)
    relay.receive(creator, control({"type": "_UV", "userId": verified}))
    newcomer, actions = joined(relay, code)
    out = sends(actions)
    assert set(out) == {newcomer, creator, verified}
    announce = message_of(out[creator][0])
    assert announce == {"type": "_UJ", "userId": newcomer}
    assert "T" in split_segments(out[creator][0])
    assert unverified not in out


def test_joiner_sees_members_in_join_order() -> None:
    relay, _ = make_relay()
    code, creator, others = room_with_members(relay, 2)
    newcomer, actions = joined(relay, code)
    assert message_of(sends(actions)[newcomer][0])["users"] == [
        creator,
        *others,
        newcomer,
    ]


def test_direct_frame_forwarded_unchanged() -> None:
    relay, clock = make_relay()
    _, creator, (joiner, _) = room_with_members(relay, 2, verify=False)
    frame = direct_frame(creator)
    out = sends(relay.receive(joiner, frame))
    assert list(out) == [creator]
    forwarded = out[creator][0]
    expected_time = b64encode(str(int(clock.now * 1000)).encode()).decode()
    assert forwarded == f"T:{expected_time}|{frame}"


def test_direct_frame_to_stranger_dropped() -> None:
    relay, _ = make_relay()
    _, _, (joiner, _) = room_with_members(relay, 2)
    _other_code, other_creator, _ = room_with_members(relay, 0)
    assert sends(relay.receive(joiner, direct_frame(other_creator))) == {}
    assert sends(relay.receive(joiner, direct_frame("nobody"))) == {}


def test_room_frame_reaches_other_verified() -> None:
    relay, _ = make_relay()
    code, creator, (first, second) = room_with_members(relay, 2)
    _pending, _ = joined(relay, code)
    out = sends(relay.receive(first, room_frame()))
    assert set(out) == {creator, second}
    assert out[creator][0].endswith("|" + room_frame())


def test_room_frame_from_unverified_dropped() -> None:
    relay, _ = make_relay()
    _, _, (joiner,) = room_with_members(relay, 1, verify=False)
    assert sends(relay.receive(joiner, room_frame())) == {}


def test_control_from_non_creator_ignored() -> None:
    relay, _ = make_relay()
    code, creator, (joiner, other) = room_with_members(relay, 2)
    for message in (
        {"type": "_RC"},
        {"type": "_UK", "userId": other},
        {"type": "_UV", "userId": other},
    ):
        assert sends(relay.receive(joiner, control(message))) == {}
    room = relay.get_room(code)
    assert room is not None
    assert list(room.members) == [creator, joiner, other]


def test_verification_forwarded_then_marked() -> None:
    relay, _ = make_relay()
    code, creator, (verified,) = room_with_members(relay, 1)
    pending, _ = joined(relay, code)
    frame = control({"type": "_UV", "userId": pending})
    out = sends(relay.receive(creator, frame))
    assert list(out) == [verified]
    assert out[verified][0].endswith("|" + frame)
    room = relay.get_room(code)
    assert room is not None
    assert room.members[pending] is True


def test_kick_closes_and_announces() -> None:
    relay, _ = make_relay()
    code, creator, (kicked, stays) = room_with_members(relay, 2)
    actions = relay.receive(creator, control({"type": "_UK", "userId": kicked}))
    assert closes(actions) == {kicked: (1000, "kicked")}
    out = sends(actions)
    assert message_of(out[stays][0]) == {"type": "_UL", "userId": kicked}
    assert kicked not in out
    room = relay.get_room(code)
    assert room is not None
    assert kicked not in room.members


def test_kick_of_creator_ignored() -> None:
    relay, _ = make_relay()
    code, creator, _ = room_with_members(relay, 1)
    assert relay.receive(creator, control({"type": "_UK", "userId": creator}))[1:] == []
    assert relay.get_room(code) is not None


def test_room_closed_removes_everyone() -> None:
    relay, _ = make_relay()
    code, creator, others = room_with_members(relay, 2)
    actions = relay.receive(creator, control({"type": "_RC"}))
    assert set(closes(actions)) == {creator, *others}
    assert relay.get_room(code) is None
    assert Notice("on_room_remove", (code,)) in actions
    assert relay.room_of(creator) is None


def test_creator_leaving_removes_room() -> None:
    relay, _ = make_relay()
    _code, creator, others = room_with_members(relay, 2)
    actions = relay.leave(creator)
    assert set(closes(actions)) == {creator, *others}
    assert relay.rooms == {}


def test_last_joiner_leaving_keeps_room() -> None:
    relay, _ = make_relay()
    code, creator, (joiner,) = room_with_members(relay, 1)
    out = sends(relay.leave(joiner))
    assert message_of(out[creator][0]) == {"type": "_UL", "userId": joiner}
    assert relay.get_room(code) is not None


@pytest.mark.parametrize(
    "frame",
    [
        "U:!!!notbase64",
        "S:" + b64encode(b"not json").decode(),
        "S:" + b64encode(b"[1,2]").decode(),
        "S:" + b64encode(b'{"type":"_ZZ"}').decode(),
        "S:" + b64encode(b'{"type":"_UK","userId":7}').decode(),
        "U:" + b64encode(b"\xff\xfe").decode(),
        "X:abc|U:YQ==|U:YQ==",
        "",
        "no separators at all",
    ],
)
def test_malformed_frames_never_raise(frame: str) -> None:
    relay, _ = make_relay()
    _code, creator, (joiner,) = room_with_members(relay, 1)
    for sender in (creator, joiner):
        relay.receive(sender, frame)
    # The other room keeps working whatever happened to this one.
    _other_code, other_creator, (other_joiner,) = room_with_members(relay, 1)
    assert other_creator in sends(relay.receive(other_joiner, room_frame()))


def test_duplicate_key_closes_sender() -> None:
    relay, _ = make_relay()
    _, _creator, (joiner,) = room_with_members(relay, 1)
    actions = relay.receive(joiner, "U:YQ==|U:YQ==")
    assert closes(actions) == {joiner: (1008, "invalid_frame")}


def test_unclaimed_room_expires() -> None:
    relay, clock = make_relay(unclaimed_room_timeout=30)
    waiting = relay.create_room()
    claimed = relay.create_room()
    joined(relay, claimed.room_code, claimed.creator_secret)
    clock.now += 29
    assert relay.expire_unclaimed() == []
    clock.now += 2
    actions = relay.expire_unclaimed()
    assert Notice("on_room_remove", (waiting.room_code,)) in actions
    assert relay.get_room(waiting.room_code) is None
    assert relay.get_room(claimed.room_code) is not None


def test_relay_messages() -> None:
    relay, _ = make_relay()
    code, creator, (verified,) = room_with_members(relay, 1)
    pending, _ = joined(relay, code)
    out = sends(relay.message_room(code, {"type": "_MS", "text": "maintenance"}))
    assert set(out) == {creator, verified}
    out = sends(relay.message_user(code, pending, {"type": "_MS"}))
    assert list(out) == [pending]


def test_secret_never_stored() -> None:
    relay, _ = make_relay()
    ticket = relay.create_room()
    room = relay.get_room(ticket.room_code)
    assert room is not None
    assert ticket.creator_secret.encode() not in room.creator_secret_hash
    assert b64decode(b64encode(room.creator_secret_hash)) == room.creator_secret_hash
