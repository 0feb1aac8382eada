"""The backend registry: self-describing classes, one place that resolves ``auto``, and the rule
that ``auto`` is the fastest exact path this machine has."""

from __future__ import annotations

import pytest

from salrt import backends
from salrt.backends.base import Backend
from salrt.errors import UsageError


def test_every_backend_describes_itself() -> None:
    names = backends.names()
    assert len(names) == len(set(names)) >= 6 and "auto" not in names
    for name in names:
        cls = backends.get(name)
        assert issubclass(cls, Backend) and cls.name == name
        assert sum((cls.needs_weights, cls.needs_export, cls.needs_server)) == 1, name  # runs on exactly one thing
        assert cls.devices and all(d in ("cpu", "cuda") for d in cls.devices)
        assert not cls.installed() or cls.graph_precision("fp32") == "fp32"
    rows = backends.describe()
    assert [r["name"] for r in rows] == names
    with pytest.raises(UsageError, match="unknown backend"):
        backends.get("nosuch")


def test_auto_prefers_the_fastest_exact_path() -> None:
    def pick(device: str = "cpu", export: str | None = None, url: str | None = None, can_export: bool = False) -> str:
        return backends.resolve("auto", device, export, url, can_export).name

    eager = pick(can_export=False)
    assert backends.get(eager).needs_weights  # nothing to export from: the model's own weights
    assert pick(url="http://127.0.0.1:1") == "triton" or not backends.get("triton").installed()
    cached = pick(can_export=True)
    if backends.get("openvino").installed() or backends.get("onnxruntime").installed():
        assert backends.get(cached).needs_export  # an export made once beats eager torch on CPU
        if backends.get("openvino").installed():
            assert cached == "openvino"  # 2.0-2.1x the authors' code vs onnxruntime's 1.7x (benchmarks/results)
    assert pick("cuda", can_export=True) == eager  # on CUDA without engines: torch (CUDA graphs, Triton kernels)
    assert backends.resolve("onnxruntime", "cpu", None, None, False).name == "onnxruntime"  # named: as given


def test_a_new_backend_is_one_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a class is all it takes for ``auto`` to consider it."""
    backends.names()  # the real ones first

    class Fastest(Backend):
        name = "test-fastest"
        devices = ("cpu",)
        needs_export = True

        @classmethod
        def auto_rank(cls, device, export, url, can_export):  # type: ignore[no-untyped-def]
            return 1000 if can_export else None

    monkeypatch.setitem(backends._REGISTRY, Fastest.name, Fastest)
    assert backends.resolve("auto", "cpu", None, None, True) is Fastest
    assert backends.resolve("auto", "cpu", None, None, False) is not Fastest
    with pytest.raises(ValueError):
        backends.register(type("Auto", (Backend,), {"name": "auto"}))
