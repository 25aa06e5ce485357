"""The settings object that selects backends by name, shared by relay and client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from .interfaces import CipherSuite, DiffStrategy, Serializer, Transport
from .plugins import BackendKind, get_registry

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The backend of each kind to use, by registered name.

    The defaults speak the roupn 0.1 protocol of the JavaScript library.
    """

    transport: str = "websockets"
    cipher_suite: str = "webcrypto"
    serializer: str = "json"
    diff_strategy: str = "snapshot"

    @classmethod
    def native(cls, **choices: str) -> Settings:
        """Return the native profile: the ``nacl`` suite and ``msgpack`` binary frames.

        Faster and stronger than roupn 0.1, for rooms whose members all use roupn for
        Python; needs ``pip install 'roupn[nacl,msgpack]'``.
        """
        return cls(**{"cipher_suite": "nacl", "serializer": "msgpack", **choices})

    def load_transport(self) -> Transport:
        """Make the chosen transport; raises if it is unknown or not installed."""
        return cast(
            Transport, get_registry().load(BackendKind.TRANSPORT, self.transport)
        )

    def load_cipher_suite(self) -> CipherSuite:
        """Make the chosen cipher suite; raises if it is unknown or not installed."""
        registry = get_registry()
        return cast(
            CipherSuite, registry.load(BackendKind.CIPHER_SUITE, self.cipher_suite)
        )

    def load_serializer(self) -> Serializer:
        """Make the chosen serializer; raises if it is unknown or not installed."""
        return cast(
            Serializer, get_registry().load(BackendKind.SERIALIZER, self.serializer)
        )

    def load_diff_strategy(self) -> DiffStrategy:
        """Make the chosen diff strategy; raises if it is unknown or not installed."""
        registry = get_registry()
        return cast(
            DiffStrategy, registry.load(BackendKind.DIFF_STRATEGY, self.diff_strategy)
        )

    def check(self) -> None:
        """Check that every chosen backend except the diff strategy can be loaded.

        Raises:
            UnknownBackendError: a name is not registered.
            MissingDependencyError: a chosen backend's dependency is not installed.
        """
        registry = get_registry()
        for kind, name in (
            (BackendKind.TRANSPORT, self.transport),
            (BackendKind.CIPHER_SUITE, self.cipher_suite),
            (BackendKind.SERIALIZER, self.serializer),
        ):
            backend = registry.get(kind, name)
            missing = backend.missing_modules()
            if missing:
                backend.load()
