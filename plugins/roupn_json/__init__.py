"""The ``json`` serializer: compact UTF-8 JSON, as the JavaScript library writes it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

from roupn.errors import MessageError
from roupn.hookspecs import hookimpl
from roupn.plugins import Backend

__all__ = ["JsonSerializer"]


class JsonSerializer:
    """Compact JSON without ASCII escaping, like ``JSON.stringify``."""

    name: ClassVar[str] = "json"
    content_type: ClassVar[str] = "application/json"
    binary: ClassVar[bool] = False

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        self._decoder = json.JSONDecoder()

    def dumps(self, message: Any) -> bytes:
        try:
            return self._encoder.encode(message).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise MessageError(f"message cannot be encoded as JSON: {exc}") from None

    def loads(self, data: bytes) -> Any:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"message is not valid UTF-8: {exc}") from None
        try:
            return self._decoder.decode(text)
        except ValueError as exc:
            raise MessageError(f"message is not valid JSON: {exc}") from None
        except RecursionError:
            raise MessageError("message nests arrays or objects too deeply") from None


@hookimpl
def roupn_serializers() -> Iterable[Backend]:
    return [
        Backend(
            "json",
            "roupn_json:JsonSerializer",
            summary="compact UTF-8 JSON (roupn 0.1 compatible)",
        )
    ]
