"""The names of the backplane's Redis keys and channels, and shared helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.exceptions

__all__ = ["REDIS_ERRORS", "FailureLog", "Keys", "text"]

# Errors of a lost or unreachable Redis server.
REDIS_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


def text(value: bytes | str) -> str:
    """Return a Redis reply as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys and channels of one cluster, under ``prefix``.

    :mod:`roupn_redis.scripts` describes what each key contains.
    """

    prefix: str

    @property
    def rooms(self) -> str:
        return f"{self.prefix}:rooms"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def channel_prefix(self) -> str:
        return f"{self.prefix}:channel:"

    def room(self, code: str) -> str:
        return f"{self.prefix}:room:{code}"

    def members(self, code: str) -> str:
        return f"{self.prefix}:room:{code}:members"

    def channel(self, code: str) -> str:
        return f"{self.prefix}:channel:{code}"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}"

    def node_members(self, node_id: str) -> str:
        return f"{self.prefix}:node:{node_id}:members"

    def reaping(self, node_id: str) -> str:
        return f"{self.prefix}:reaping:{node_id}"


class FailureLog:
    """Logs a repeating Redis failure once at ERROR, then at DEBUG until it ends.

    A task that retries every heartbeat interval while Redis is down would
    otherwise write a line per attempt.
    """

    def __init__(self, logger: logging.Logger, action: str) -> None:
        self.logger = logger
        self.action = action
        self.failing = False

    def failed(self, error: BaseException) -> None:
        """Log that the action failed with ``error``."""
        if self.failing:
            self.logger.debug("= %s failed again: %s", self.action, error)
            return
        self.failing = True
        self.logger.error(
            "= %s failed, retrying and logging again when it works: %s",
            self.action,
            error,
        )

    def succeeded(self) -> None:
        """Log that the action works again, if it had failed."""
        if self.failing:
            self.failing = False
            self.logger.info("= %s works again", self.action)
