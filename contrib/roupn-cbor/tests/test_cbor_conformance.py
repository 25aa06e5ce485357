"""The cbor serializer against roupn's serializer conformance tests."""

from __future__ import annotations

import pytest

pytest.importorskip("roupn_cbor", reason="pip install ./contrib/roupn-cbor to test it")

from roupn_cbor import CborSerializer

from roupn import BackendKind, get_registry
from roupn.conformance import SerializerConformance


class TestCborSerializer(SerializerConformance):
    @pytest.fixture
    def serializer(self) -> CborSerializer:
        return CborSerializer()


def test_registered_through_entry_point() -> None:
    backend = get_registry().get(BackendKind.SERIALIZER, "cbor")
    assert backend.distribution == "roupn-cbor"
    assert isinstance(backend.load(), CborSerializer)
