"""The ``cbor`` serializer: CBOR (RFC 8949) through the cbor2 package."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, ClassVar

from roupn.errors import MessageError
from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

__all__ = ["CborSerializer"]


class CborSerializer:
    """CBOR with string map keys only, so that every message is also valid JSON data."""

    name: ClassVar[str] = "cbor"
    content_type: ClassVar[str] = "application/cbor"
    binary: ClassVar[bool] = True

    def __init__(self) -> None:
        import cbor2

        self._cbor2 = cbor2

    def dumps(self, message: Any) -> bytes:
        # cbor2 6.3 crashes the interpreter (a C stack overflow) on nesting some
        # thousands deep, so the depth is checked before encoding.
        _check_json_like(message)
        try:
            data: bytes = self._cbor2.dumps(message)
        except (
            self._cbor2.CBOREncodeError,
            TypeError,
            ValueError,
            RecursionError,
        ) as exc:
            raise MessageError(f"message cannot be encoded as CBOR: {exc}") from None
        return data

    def loads(self, data: bytes) -> Any:
        stream = io.BytesIO(data)
        try:
            message = self._cbor2.CBORDecoder(stream).decode()
        except (
            self._cbor2.CBORDecodeError,
            ValueError,
            TypeError,
            RecursionError,
        ) as exc:
            raise MessageError(f"message is not valid CBOR: {exc}") from None
        extra = len(data) - stream.tell()
        if extra:
            raise MessageError(
                f"message has {extra} bytes after its CBOR value; send one value"
            )
        _check_json_like(message)
        return message


def _check_json_like(value: Any, depth: int = 0) -> None:
    """Reject values that JSON cannot hold, such as bytes, tags or int keys."""
    if depth > 200:
        raise MessageError("message nests arrays or maps too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MessageError(
                    f"message has a map key of type {type(key).__name__}"
                )
            _check_json_like(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json_like(item, depth + 1)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise MessageError(
            f"message contains a {type(value).__name__}, which JSON cannot represent"
        )


@hookimpl
def roupn_serializers() -> Iterable[Backend]:
    return [
        Backend(
            "cbor",
            "roupn_cbor:CborSerializer",
            summary="CBOR (RFC 8949), compact binary",
            requires=("cbor2",),
        )
    ]
