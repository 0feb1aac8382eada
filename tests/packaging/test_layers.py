"""The package's shape: layers that point down (import-linter's contracts in pyproject.toml), models
that load no training or evaluation code, a CLI that starts without torch, modules of a readable
size, and backend names only where backends live."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "salrt"


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    r = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 broken" in r.stdout


def _modules_after(code: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(r.stdout.split())


def test_models_load_no_training_evaluation_or_metrics() -> None:
    loaded = _modules_after("import salrt.models")
    bad = sorted(
        m for m in loaded if m.split(".")[:2] in (["salrt", "train"], ["salrt", "evaluation"], ["salrt", "metrics"])
    )
    assert bad == []


def test_cli_help_imports_no_torch() -> None:
    loaded = _modules_after("from salrt.cli import build_parser\nbuild_parser().format_help()")
    assert "torch" not in loaded
    r = subprocess.run([sys.executable, "-m", "salrt.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: salrt" in r.stdout


def test_paths_are_import_names() -> None:
    import salrt

    assert Path(salrt.__file__).resolve().parent == PACKAGE
    assert not (ROOT / "engine").exists() and not (ROOT / "kernels").exists() and not (ROOT / "export").exists()


def test_no_module_is_a_god_file() -> None:
    sizes = {p.relative_to(PACKAGE): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 620} == {}


def test_backend_names_live_in_the_backends() -> None:
    """No code outside backends/ branches on a backend's name: comparisons of a backend variable with
    a quoted name, or a quoted name given as a backend, appear only in the backends' own modules
    (everything else asks the registry: needs_weights, needs_export, auto_rank, ...)."""
    from salrt import backends

    names = "|".join(map(re.escape, backends.names()))
    branching = re.compile(
        rf"""backend\w*\s*(==|!=)\s*["']({names})["']|backend\w*\s+(not\s+)?in\s+\(["']"""
        rf"""|backend=["']({names})["']|backends\.get\(["']"""
    )
    offenders = []
    for p in PACKAGE.rglob("*.py"):
        if p.parent.name == "backends":
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if branching.search(line.split("#")[0]):
                offenders.append(f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}")
    assert offenders == []
