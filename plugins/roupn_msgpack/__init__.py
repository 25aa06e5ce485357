"""The ``msgpack`` serializer: MessagePack, smaller and faster than JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from roupn.errors import MessageError
from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

__all__ = ["MsgpackSerializer"]


class MsgpackSerializer:
    """MessagePack with strict map keys and UTF-8 strings; needs ``roupn[msgpack]``."""

    name: ClassVar[str] = "msgpack"
    content_type: ClassVar[str] = "application/msgpack"
    binary: ClassVar[bool] = True

    def __init__(self) -> None:
        import msgpack

        self._packer = msgpack.Packer(use_bin_type=True)
        self._msgpack = msgpack

    def dumps(self, message: Any) -> bytes:
        try:
            data: bytes = self._packer.pack(message)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            self._packer.reset()
            raise MessageError(f"message cannot be encoded as msgpack: {exc}") from None
        return data

    def loads(self, data: bytes) -> Any:
        try:
            return self._msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (
            ValueError,
            TypeError,
            RecursionError,
            self._msgpack.UnpackException,
        ) as exc:
            raise MessageError(f"message is not valid msgpack: {exc}") from None


@hookimpl
def roupn_serializers() -> Iterable[Backend]:
    return [
        Backend(
            "msgpack",
            "roupn_msgpack:MsgpackSerializer",
            summary="MessagePack, compact binary",
            requires=("msgpack",),
            extra="msgpack",
        )
    ]
