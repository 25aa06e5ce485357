"""Conformance tests that a backend plugin runs against its own implementation.

Each class contains the pytest tests for one kind of backend. Subclass it in a test
module (name the subclass ``Test...`` so that pytest collects it) and define the
fixture that makes your backend::

    import pytest
    from roupn.conformance import SerializerConformance
    from roupn_cbor import CborSerializer


    class TestCborSerializer(SerializerConformance):
        @pytest.fixture
        def serializer(self) -> CborSerializer:
            return CborSerializer()

The fixture each class needs:

- :class:`SerializerConformance`: ``serializer``
- :class:`CipherSuiteConformance`: ``cipher_suite``
- :class:`TransportConformance`: ``transport``, served on 127.0.0.1 by the tests
- :class:`DiffStrategyConformance`: ``diff_strategy``

Each class also runs a whole room with the backend, when the backend is registered
under its ``name`` through the ``roupn`` entry point group. The async tests run on
asyncio and on trio through anyio's pytest plugin. The suite needs pytest,
hypothesis and trio: ``pip install 'roupn[conformance]'``.
"""

from __future__ import annotations

import importlib

_missing: list[str] = []
for _name in ("pytest", "hypothesis", "trio"):
    try:
        importlib.import_module(_name)
    except ImportError:
        _missing.append(_name)
if _missing:
    raise ModuleNotFoundError(
        f"roupn.conformance needs {', '.join(_missing)}, which "
        f"{'is' if len(_missing) == 1 else 'are'} not installed: "
        "pip install 'roupn[conformance]'",
        name=_missing[0],
    )

import pytest  # noqa: E402

# pytest rewrites the asserts of these modules, so a failing check shows its values.
pytest.register_assert_rewrite(
    "roupn.conformance.cipher_suites",
    "roupn.conformance.diff_strategies",
    "roupn.conformance.rooms",
    "roupn.conformance.serializers",
    "roupn.conformance.transports",
)

from .cipher_suites import CipherSuiteConformance  # noqa: E402
from .diff_strategies import DiffStrategyConformance  # noqa: E402
from .serializers import SerializerConformance  # noqa: E402
from .transports import TransportConformance  # noqa: E402

__all__ = [
    "CipherSuiteConformance",
    "DiffStrategyConformance",
    "SerializerConformance",
    "TransportConformance",
]
