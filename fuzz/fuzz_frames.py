"""Coverage-guided fuzzing of the frame decoders, the message checks and the relay.

This harness runs under atheris (libFuzzer for Python), outside the test suite::

    pip install atheris
    python fuzz/make_seeds.py /tmp/roupn-corpus
    python fuzz/fuzz_frames.py -max_total_time=300 /tmp/roupn-corpus

Arguments after the script go to libFuzzer. The folder starts with the seeds
and keeps the inputs that reached new code, so a later run starts from them.
A crash writes the input to ``crash-<hash>`` and stops, and
``python fuzz/fuzz_frames.py crash-<hash>`` runs that one input again.

The first byte of each input picks a target, and the rest is its input:

- the text and binary frame decoders, which may raise only ``FrameError``;
- the JSON and msgpack serializers' ``loads`` followed by the state update
  checks (``validate_change`` and ``apply_changes``), which may raise only
  ``MessageError`` and must leave the document as it was when they do;
- the relay's state machine in the text and binary profiles, fed a frame from a
  member of one room, which must never raise, address a user of another room,
  or stop routing that other room.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import atheris  # type: ignore[import-untyped]
from roupn_json import JsonSerializer
from roupn_msgpack import MsgpackSerializer

from roupn.changes import apply_changes, copy_json
from roupn.errors import FrameError, MessageError
from roupn.frames import decode_binary, decode_text, encode_binary, encode_text
from roupn.relay import Close, JoinRefused, RelayState, Send

# The relay logs each rejected frame, which would bury libFuzzer's output.
logging.disable(logging.CRITICAL)

JSON = JsonSerializer()
MSGPACK = MsgpackSerializer()

# The document that state updates change. Every input starts from a copy of it.
DOCUMENT: dict[str, Any] = {
    "title": "plan",
    "items": [{"done": False, "text": "a"}, {"done": True, "text": "b"}],
    "owner": {"name": "Ada", "tags": ["x", "y"]},
    "count": 3,
}


def canonical(document: dict[str, Any]) -> str:
    """Return a form of ``document`` that compares equal when its content does.

    ``json.dumps`` writes NaN as ``NaN``, so a NaN value compares equal to itself
    here, and sorted keys make the order of insertion irrelevant.
    """
    return json.dumps(document, sort_keys=True)


# Frame decoders.


def fuzz_text_frame(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        frame = decode_text(text)
    except FrameError:
        return
    assert decode_text(encode_text(frame)) == frame


def fuzz_binary_frame(data: bytes) -> None:
    try:
        frame = decode_binary(data)
    except FrameError:
        return
    assert encode_binary(frame) == data


# Message checks.


def fuzz_state_update(
    data: bytes, serializer: JsonSerializer | MsgpackSerializer
) -> None:
    try:
        changes = serializer.loads(data)
    except MessageError:
        return
    document = copy_json(DOCUMENT)
    before = canonical(document)
    try:
        inverse = apply_changes(document, changes)
    except MessageError:
        assert canonical(document) == before, "a rejected update changed the document"
        return
    apply_changes(document, inverse, inverse=False)
    assert canonical(document) == before, "undoing an update left a change"


# The relay state.


class RelayTarget:
    """A relay with a room that the input attacks and a room that must keep working."""

    def __init__(self, binary: bool) -> None:
        serializer = MSGPACK if binary else JSON
        self.binary = binary
        self.relay = RelayState(
            dumps=serializer.dumps, loads=serializer.loads, binary=binary
        )
        self.serializer = serializer
        self.good_creator, self.good_joiner = self.new_room()
        self.creator, self.joiner = self.new_room()

    def encode(self, frame: dict[str, bytes]) -> str | bytes:
        return encode_binary(frame) if self.binary else encode_text(frame)

    def new_room(self) -> tuple[str, str]:
        """Create a room with its creator and one verified joiner."""
        ticket = self.relay.create_room()
        creator = self.relay.join(ticket.room_code, ticket.creator_secret)
        joiner = self.relay.join(ticket.room_code)
        assert not isinstance(creator, JoinRefused), creator
        assert not isinstance(joiner, JoinRefused), joiner
        verified = {"type": "_UV", "userId": joiner[0]}
        control = self.encode({"S": self.serializer.dumps(verified)})
        self.relay.receive(creator[0], control)
        return creator[0], joiner[0]

    def attack(self, data: bytes) -> None:
        relay = self.relay
        if relay.room_of(self.creator) is None:
            self.creator, self.joiner = self.new_room()
        elif relay.room_of(self.joiner) is None:
            room = relay.room_of(self.creator)
            assert room is not None
            joined = relay.join(room.code)
            if isinstance(joined, JoinRefused):
                self.creator, self.joiner = self.new_room()
            else:
                self.joiner = joined[0]

        sender = self.creator if data[:1] == b"\x01" else self.joiner
        message: str | bytes = data[1:]
        if not self.binary:
            message = data[1:].decode("utf-8", errors="replace")
        attacked_room = relay.room_of(sender)
        assert attacked_room is not None
        members = set(attacked_room.members)
        for action in relay.receive(sender, message):
            if isinstance(action, Send | Close):
                assert action.user_id in members, "a frame reached another room"

        good_frame = self.encode({"I": b"0" * 12, "E": b"ciphertext"})
        routed = relay.receive(self.good_creator, good_frame)
        receivers = [action.user_id for action in routed if isinstance(action, Send)]
        assert receivers == [self.good_joiner], "the other room stopped routing"
        self.check_tables()

    def check_tables(self) -> None:
        """Check that every member's room exists and lists the member."""
        relay = self.relay
        for code, room in relay.rooms.items():
            for user_id in room.members:
                assert relay.room_of(user_id) is room, (code, user_id)
        for user_id in relay._room_of_user:
            member_room = relay.room_of(user_id)
            assert member_room is not None, user_id
            assert user_id in member_room.members, user_id


TEXT_RELAY = RelayTarget(binary=False)
BINARY_RELAY = RelayTarget(binary=True)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, rest = data[0] % 6, data[1:]
    if target == 0:
        fuzz_text_frame(rest)
    elif target == 1:
        fuzz_binary_frame(rest)
    elif target == 2:
        fuzz_state_update(rest, JSON)
    elif target == 3:
        fuzz_state_update(rest, MSGPACK)
    elif target == 4:
        TEXT_RELAY.attack(rest)
    else:
        BINARY_RELAY.attack(rest)


def main() -> None:
    # atheris warns that instrument_imports() may miss modules that the import
    # hook of an editable install loads, so every function loaded by now is
    # instrumented instead.
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
