"""Random and mutated frames: decoders raise only FrameError, relays keep routing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import load_vector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_relay_state import control, joined, room_frame, sends
from test_session import room_with_joiner

from roupn.errors import FrameError
from roupn.frames import Frame, decode_binary, decode_text, encode_binary, encode_text
from roupn.relay import RelayState

KEYS = "TSEIUDVKPGXa"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

segment_frames = st.dictionaries(
    st.sampled_from(list(KEYS)), st.binary(max_size=48), max_size=6
)
frame_text = st.text(alphabet="STEIUDVKPG|:=+/ABCabc0123456789\u00e9\x00", max_size=200)


def recorded_frames() -> list[str]:
    """Return every frame of the recorded JavaScript session, in and out."""
    vector = load_vector("roupn-0.1-session.json")
    return [
        str(frame["data"])
        for client in vector["clients"].values()
        for frame in client["frames"]
    ]


@st.composite
def mutated(draw: st.DrawFn, frames: list[str]) -> str:
    """Draw a recorded frame with characters replaced, inserted or cut."""
    text = draw(st.sampled_from(frames))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["replace", "insert", "cut"]))
        character = draw(st.sampled_from("|:=+/AZaz09T\u00e9"))
        if operation == "insert":
            text = text[:position] + character + text[position:]
        elif operation == "replace":
            text = text[:position] + character + text[position + 1 :]
        else:
            text = text[:position]
    return text


def text_frames(frames: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        frame_text, mutated(frames), segment_frames.map(encode_text), st.text()
    )


# Frame decoders.


def test_decode_text_fuzz() -> None:
    frames = recorded_frames()

    @FUZZ
    @given(text_frames(frames))
    def check(text: str) -> None:
        try:
            decoded = decode_text(text)
        except FrameError:
            return
        assert all(isinstance(value, bytes) for value in decoded.values())

    check()


@FUZZ
@given(st.one_of(st.binary(max_size=200), segment_frames.map(encode_binary)))
def test_decode_binary_fuzz(data: bytes) -> None:
    try:
        decoded = decode_binary(data)
    except FrameError:
        return
    assert encode_binary(decoded) == data


@FUZZ
@given(segment_frames)
def test_text_round_trip(frame: Frame) -> None:
    assert decode_text(encode_text(frame)) == frame


# The relay state.


def dumps(message: Any) -> bytes:
    return json.dumps(message).encode()


def new_room(relay: RelayState) -> tuple[str, str, str]:
    """Create a room with a verified joiner; return its code, creator and joiner."""
    ticket = relay.create_room()
    creator, _ = joined(relay, ticket.room_code, ticket.creator_secret)
    joiner, _ = joined(relay, ticket.room_code)
    verified = {"type": "_UV", "userId": joiner}
    if relay.binary:
        relay.receive(creator, encode_binary({"S": dumps(verified)}))
    else:
        relay.receive(creator, control(verified))
    room = relay.get_room(ticket.room_code)
    assert room is not None
    assert room.verified_ids == [creator, joiner]
    return ticket.room_code, creator, joiner


def test_relay_receive_fuzz() -> None:
    frames = recorded_frames()
    relay = RelayState(dumps=dumps, loads=json.loads)
    good_code, good_creator, good_joiner = new_room(relay)
    attack = {"code": "", "creator": "", "joiner": ""}

    @FUZZ
    @given(text_frames(frames), st.booleans())
    def check(text: str, from_creator: bool) -> None:
        if relay.room_of(attack["creator"]) is None:
            attack["code"], attack["creator"], attack["joiner"] = new_room(relay)
        elif relay.room_of(attack["joiner"]) is None:
            attack["joiner"], _ = joined(relay, attack["code"])
        sender = attack["creator"] if from_creator else attack["joiner"]

        actions = relay.receive(sender, text)
        for action in actions:
            assert getattr(action, "user_id", None) not in (good_creator, good_joiner)

        routed = sends(relay.receive(good_creator, room_frame()))
        assert list(routed) == [good_joiner]

    check()
    assert relay.get_room(good_code) is not None


def test_binary_relay_receive_fuzz() -> None:
    relay = RelayState(dumps=dumps, loads=json.loads, binary=True)
    _, good_creator, good_joiner = new_room(relay)
    _, creator, joiner = new_room(relay)
    good_frame = encode_binary({"I": b"0" * 12, "E": b"ciphertext"})

    @FUZZ
    @given(st.one_of(st.binary(max_size=200), segment_frames.map(encode_binary)))
    def check(data: bytes) -> None:
        nonlocal creator, joiner
        if relay.room_of(creator) is None:
            _, creator, joiner = new_room(relay)
        elif relay.room_of(joiner) is None:
            joiner, _ = joined(relay, relay.room_of(creator).code)  # type: ignore[union-attr]
        relay.receive(joiner, data)

        routed = sends(relay.receive(good_creator, good_frame))
        assert list(routed) == [good_joiner]

    check()


# Room sessions.


@pytest.mark.usefixtures("quick_keys")
def test_session_receive_fuzz() -> None:
    frames = recorded_frames()
    room, creator, joiner = room_with_joiner()
    room.verify(creator, joiner)
    sessions = [room.sessions[creator], room.sessions[joiner]]

    @FUZZ
    @given(
        st.one_of(
            segment_frames,
            text_frames(frames).map(_decoded_or_empty),
        ),
        st.sampled_from([0, 1]),
    )
    def check(frame: Frame, member: int) -> None:
        # Errors in frames become on_error notices, so nothing may raise here.
        sessions[member].receive(frame)

    check()


def _decoded_or_empty(text: str) -> Frame:
    try:
        return decode_text(text)
    except FrameError:
        return {}
