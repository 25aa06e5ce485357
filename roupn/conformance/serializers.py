"""Conformance tests for serializers: round trips, edge values and errors."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..changes import json_equal
from ..errors import MessageError
from ..interfaces import Serializer
from ..plugins import BackendKind
from ..settings import Settings
from .rooms import quick_cipher_suite, registered_name, run_room
from .values import json_values, messages

__all__ = ["SerializerConformance"]

# The serializer fixture makes a stateless object, so sharing it between the
# examples of one test is fine, and so is running one test method on the
# instances of several subclasses.
PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
    ],
)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = [{"leaf": None}]
    for _ in range(depth - 1):
        value = [value]
    return value


# Values at the edges of what roupn messages carry, each sent as a message field.
EDGE_VALUES: dict[str, Any] = {
    "empty object": {},
    "empty array": [],
    "empty string": "",
    "null": None,
    "true and false": [True, False],
    "zero int and float": [0, 0.0, -0.0],
    "one int float bool": [1, 1.0, True],
    "largest signed 64-bit": 2**63 - 1,
    "smallest signed 64-bit": -(2**63),
    "largest safe JavaScript integer": 2**53 - 1,
    "largest double": 1.7976931348623157e308,
    "smallest subnormal double": 5e-324,
    "non-ASCII text": "h\u00e9llo \u2713 \u65e5\u672c",
    "astral plane text": "\U0001d11e \U0001f600",
    "control characters": "\x00\x01\x1f\x7f",
    "quotes and escapes": '"\\/\b\f\n\r\t',
    "long text": "x" * 100_000,
    "non-ASCII keys": {"\u00e9": 1, "\U0001f600": 2, "": 3},
    "nested 50 deep": _nested(50),
    "wide array": list(range(10_000)),
    "wide object": {str(index): index for index in range(2_000)},
}


class _Unsupported:
    """A value of a class that no serializer can encode."""


class SerializerConformance:
    """Tests for a :class:`~roupn.interfaces.Serializer`.

    Provide a ``serializer`` fixture that returns the serializer to test.
    """

    @pytest.fixture
    def serializer(self) -> Serializer:
        raise NotImplementedError(
            "define a 'serializer' fixture in your subclass of SerializerConformance"
        )

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    # The interface.

    def test_matches_interface(self, serializer: Serializer) -> None:
        assert isinstance(serializer, Serializer)
        assert isinstance(serializer.name, str)
        assert serializer.name
        assert isinstance(serializer.content_type, str)
        assert "/" in serializer.content_type
        assert isinstance(serializer.binary, bool)

    def test_dumps_returns_bytes(self, serializer: Serializer) -> None:
        data = serializer.dumps({"type": "message", "text": "hello"})
        assert type(data) is bytes

    def test_text_serializer_writes_utf8(self, serializer: Serializer) -> None:
        # A serializer that is not binary feeds text frames, so its output must be
        # UTF-8 text.
        if serializer.binary:
            pytest.skip("binary serializer: frames may carry any bytes")
        data = serializer.dumps({"text": "h\u00e9llo \U0001f600", "n": [1, None]})
        data.decode("utf-8")

    # Round trips.

    @pytest.mark.parametrize("name", sorted(EDGE_VALUES))
    def test_edge_value_round_trip(self, serializer: Serializer, name: str) -> None:
        message = {"value": EDGE_VALUES[name]}
        decoded = serializer.loads(serializer.dumps(message))
        assert json_equal(decoded, message), f"{name} changed in a round trip"

    def test_tuple_decodes_as_array(self, serializer: Serializer) -> None:
        decoded = serializer.loads(serializer.dumps({"pair": (1, "a")}))
        assert decoded == {"pair": [1, "a"]}
        assert type(decoded["pair"]) is list

    @PROPERTIES
    @given(message=messages)
    def test_message_round_trip(
        self, serializer: Serializer, message: dict[str, Any]
    ) -> None:
        decoded = serializer.loads(serializer.dumps(message))
        assert json_equal(decoded, message)

    @PROPERTIES
    @given(value=json_values)
    def test_value_round_trip(self, serializer: Serializer, value: Any) -> None:
        decoded = serializer.loads(serializer.dumps({"value": value}))
        assert json_equal(decoded, {"value": value})

    # Errors.

    @pytest.mark.parametrize(
        "value",
        [object(), _Unsupported(), print, {"nested": [1, {"deeper": object()}]}],
        ids=["object", "instance", "function", "nested object"],
    )
    def test_dumps_rejects_unsupported(
        self, serializer: Serializer, value: Any
    ) -> None:
        with pytest.raises(MessageError):
            serializer.dumps({"value": value})

    def test_dumps_rejects_cycle(self, serializer: Serializer) -> None:
        cycle: list[Any] = []
        cycle.append(cycle)
        with pytest.raises(MessageError):
            serializer.dumps({"value": cycle})

    def test_dumps_rejects_or_keeps_deep_nesting(self, serializer: Serializer) -> None:
        # Past Python's recursion limit: a MessageError, never a RecursionError
        # or a crash of the interpreter.
        deep: list[Any] = []
        for _ in range(100_000):
            deep = [deep]
        with contextlib.suppress(MessageError):
            data = serializer.dumps({"value": deep})
            with contextlib.suppress(MessageError):
                serializer.loads(data)

    def test_dumps_still_works_after_error(self, serializer: Serializer) -> None:
        with pytest.raises(MessageError):
            serializer.dumps({"first": 1, "value": object()})
        message = {"after": "error"}
        assert serializer.loads(serializer.dumps(message)) == message

    @pytest.mark.parametrize(
        "data",
        [b"", b"\xff\xff\xff\xff", b"\xc1", b"\x00\xff\xfe\x80"],
        ids=["empty", "four ff", "c1", "mixed"],
    )
    def test_loads_rejects_garbage(self, serializer: Serializer, data: bytes) -> None:
        with pytest.raises(MessageError):
            serializer.loads(data)

    def test_loads_rejects_truncated(self, serializer: Serializer) -> None:
        data = serializer.dumps({"text": "a message long enough to cut", "n": 12345})
        for length in (1, len(data) // 2, len(data) - 1):
            with pytest.raises(MessageError):
                serializer.loads(data[:length])

    def test_loads_rejects_trailing_data(self, serializer: Serializer) -> None:
        # One frame contains one message, so bytes after it are an error.
        data = serializer.dumps({"text": "one message"})
        with pytest.raises(MessageError):
            serializer.loads(data + data)

    @PROPERTIES
    @given(data=st.binary(max_size=200))
    def test_loads_raises_only_message_error(
        self, serializer: Serializer, data: bytes
    ) -> None:
        # Hostile peers send any bytes; the only error a caller has to catch is
        # MessageError.
        with contextlib.suppress(MessageError):
            serializer.loads(data)

    @PROPERTIES
    @given(message=messages, data=st.data())
    def test_loads_of_mutated_message(
        self, serializer: Serializer, message: dict[str, Any], data: st.DataObject
    ) -> None:
        encoded = bytearray(serializer.dumps(message))
        if not encoded:
            return
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
        with contextlib.suppress(MessageError):
            serializer.loads(bytes(encoded))

    # In a room.

    @pytest.mark.anyio
    async def test_room_end_to_end(self, serializer: Serializer) -> None:
        # Skipped unless the serializer is registered under its name.
        name = registered_name(BackendKind.SERIALIZER, serializer)
        settings = Settings(
            transport="memory", cipher_suite=quick_cipher_suite(), serializer=name
        )
        await run_room(settings)
