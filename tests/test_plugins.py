"""The plugin kernel: registration by name, entry points, and clear errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import pytest

import roupn
from roupn.cli import main
from roupn.conformance import SerializerConformance
from roupn.errors import MissingDependencyError, UnknownBackendError
from roupn.hookspecs import hookimpl
from roupn.interfaces import Serializer
from roupn.plugins import Backend, BackendKind, Registry, make_plugin_manager


class ReverseSerializer:
    name: ClassVar[str] = "reverse"
    content_type: ClassVar[str] = "application/x-reverse"
    binary: ClassVar[bool] = False

    def dumps(self, message: Any) -> bytes:
        return str(message).encode()[::-1]

    def loads(self, data: bytes) -> Any:
        return data[::-1].decode()


class FakePlugin:
    @hookimpl
    def roupn_serializers(self) -> Iterable[Backend]:
        return [
            Backend("reverse", f"{__name__}:ReverseSerializer", summary="test only"),
            Backend(
                "absent",
                "roupn_absent_backend:Nothing",
                requires=("roupn_absent_module",),
                extra="absent",
            ),
        ]


def isolated_registry() -> Registry:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(FakePlugin())
    return Registry.from_plugin_manager(manager)


def test_default_plugins_registered() -> None:
    registry = roupn.get_registry()
    assert {"json", "msgpack"} <= set(registry.names(BackendKind.SERIALIZER))
    assert registry.names(BackendKind.TRANSPORT) == ["memory", "websockets"]
    assert "webcrypto" in registry.names(BackendKind.CIPHER_SUITE)
    defaults = {"json", "msgpack", "memory", "websockets", "webcrypto", "nacl"}
    for backend in registry.all():
        assert backend.kind is not None
        if backend.name in defaults:
            assert backend.distribution == "roupn"


def test_fake_plugin_loads_by_name() -> None:
    registry = isolated_registry()
    serializer = registry.load(BackendKind.SERIALIZER, "reverse")
    assert serializer.dumps("abc") == b"cba"
    assert registry.get(BackendKind.SERIALIZER, "reverse").summary == "test only"


def test_unknown_name_lists_available() -> None:
    registry = isolated_registry()
    with pytest.raises(UnknownBackendError) as info:
        registry.load(BackendKind.SERIALIZER, "yaml")
    message = str(info.value)
    assert "'yaml'" in message
    assert "absent, reverse" in message
    assert info.value.available == ["absent", "reverse"]


def test_missing_dependency_names_extra() -> None:
    registry = isolated_registry()
    backend = registry.get(BackendKind.SERIALIZER, "absent")
    assert not backend.usable
    assert backend.missing_modules() == ["roupn_absent_module"]
    with pytest.raises(MissingDependencyError) as info:
        backend.load()
    assert "pip install 'roupn[absent]'" in str(info.value)
    assert info.value.module == "roupn_absent_module"


def test_settings_unknown_backend() -> None:
    with pytest.raises(UnknownBackendError, match="registered cipher suite backends"):
        roupn.Settings(cipher_suite="rot13").load_cipher_suite()


def test_unknown_server_option_rejected() -> None:
    with pytest.raises(TypeError, match="on_room_message"):
        roupn.create_server_connector(on_nothing=print)


def test_plugins_command_lists_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["KIND", "NAME", "DISTRIBUTION", "USABLE"]
    assert any(line.startswith("serializer") and " json " in line for line in lines)
    assert any(
        line.startswith("transport") and " websockets " in line for line in lines
    )
    assert any(
        line.startswith("cipher suite") and " webcrypto " in line for line in lines
    )


def test_json_serializer_round_trip() -> None:
    serializer = roupn.Settings().load_serializer()
    message = {"text": "ünïcödé ✓", "n": 1, "list": [1, None, True]}
    data = serializer.dumps(message)
    assert data == '{"text":"ünïcödé ✓","n":1,"list":[1,null,true]}'.encode()
    assert serializer.loads(data) == message


class TestJsonSerializer(SerializerConformance):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return roupn.Settings(serializer="json").load_serializer()


class TestMsgpackSerializer(SerializerConformance):
    @pytest.fixture
    def serializer(self) -> Serializer:
        return roupn.Settings(serializer="msgpack").load_serializer()
