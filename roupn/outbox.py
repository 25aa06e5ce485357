"""Per-member send buffers of the relay: bounded in bytes, written in batches."""

from __future__ import annotations

import logging
from typing import cast

import anyio

from .errors import ConnectionClosedError
from .interfaces import Connection, EncodingConnection

__all__ = ["CLOSE_TIMEOUT", "DEFAULT_MAX_SEND_BUFFER", "Outbox"]

logger = logging.getLogger(__name__)

# Bytes a member's send buffer may hold before the member counts as too slow:
# room for two frames of the largest size a member may send (1 MiB each with the
# default limits).
DEFAULT_MAX_SEND_BUFFER = 2 * 2**20

# Seconds a queued closing handshake may take once the frames before it are out.
CLOSE_TIMEOUT = 5.0


class Outbox:
    """The frames waiting to be written to one member's connection.

    :meth:`put` queues a frame without waiting, and :meth:`run`, in a task of its
    own, writes everything queued since its last write in one call. A
    connection that implements
    :class:`~roupn.interfaces.EncodingConnection` gets its frames encoded once
    per wire format (``encoded`` in :meth:`put` caches them across the members
    of a broadcast) and written with one ``send_encoded`` call per batch.

    ``max_bytes`` bounds the bytes queued plus those in the write in progress
    (characters for text frames on connections that encode frames themselves).
    A frame that would go over it is not queued, and :meth:`put` returns False,
    so the caller can disconnect the member. A frame larger than ``max_bytes``
    is still queued when nothing else is buffered.
    """

    def __init__(self, connection: Connection, max_bytes: int | None) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1 or None, not {max_bytes}")
        self.connection = connection
        self.max_bytes = max_bytes
        self._encoder: EncodingConnection | None = None
        self.wire_format: str | None = None
        if isinstance(connection, EncodingConnection):
            self.wire_format = connection.wire_format
            if self.wire_format is not None:
                self._encoder = connection
        self._frames: list[str | bytes] = []
        self.queued_bytes = 0
        self.writing_bytes = 0
        self.overflowed = False
        self._close: tuple[int, str] | None = None
        self._closed = False
        self._wakeup: anyio.Event | None = None

    @property
    def buffered_bytes(self) -> int:
        """The bytes queued plus those of the write in progress."""
        return self.queued_bytes + self.writing_bytes

    def put(self, frame: str | bytes, encoded: dict[str, bytes]) -> bool:
        """Queue a frame; return False if it would put the buffer over its limit.

        ``encoded`` maps wire formats to this frame's encoding. Pass the same dict
        for every member a frame goes to, so the frame is encoded once per format.
        Frames put after :meth:`close` or a failed put are dropped.
        """
        if self._closed or self.overflowed:
            return True
        item: str | bytes = frame
        wire_format = self.wire_format
        if self._encoder is not None and wire_format is not None:
            cached = encoded.get(wire_format)
            if cached is None:
                cached = encoded[wire_format] = self._encoder.encode(frame)
            item = cached
        size = len(item)
        buffered = self.queued_bytes + self.writing_bytes
        if self.max_bytes is not None and buffered and buffered + size > self.max_bytes:
            self.overflowed = True
            return False
        self._frames.append(item)
        self.queued_bytes += size
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()
        return True

    def close(self, code: int, reason: str) -> None:
        """Close the connection with a closing handshake once the queue is written."""
        if self._closed:
            return
        self._closed = True
        self._close = (code, reason)
        self._wake()

    def discard(self) -> None:
        """Drop the queued frames and stop :meth:`run` without closing anything."""
        self._closed = True
        self._close = None
        self._frames = []
        self.queued_bytes = 0
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    async def run(self) -> None:
        """Write queued frames in batches until closed or the connection fails."""
        connection = self.connection
        encoder = self._encoder
        while True:
            if not self._frames:
                if self._closed:
                    break
                wakeup = self._wakeup = anyio.Event()
                await wakeup.wait()
                continue
            frames = self._frames
            self._frames = []
            self.writing_bytes = self.queued_bytes
            self.queued_bytes = 0
            try:
                if encoder is not None:
                    # put() queues only encoded bytes for such a connection.
                    await encoder.send_encoded(cast(list[bytes], frames))
                else:
                    for frame in frames:
                        await connection.send(frame)
            except ConnectionClosedError as exc:
                logger.debug(
                    "> %s closed while writing: %s", connection.remote_address, exc
                )
                self._closed = True
                self._close = None
                return
            finally:
                self.writing_bytes = 0
        if self._close is not None:
            code, reason = self._close
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await connection.close(code, reason)
