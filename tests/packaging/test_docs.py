"""The documentation builds in strict mode: a broken link, a missing anchor or a page left out of
the navigation fails (mkdocs.yml's validation settings)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docs_build_strict(tmp_path: Path) -> None:
    exe = shutil.which("mkdocs")
    if exe is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    r = subprocess.run(
        [exe, "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")}
    assert {"index", "architecture", "run", "export", "what-was-run"} <= pages
    assert all(
        (tmp_path / "site" / (p if p == "index" else f"{p}/index")).with_suffix(".html").is_file() for p in pages
    )


def test_readme_links_resolve() -> None:
    """Every relative link in the README names a file of the repository."""
    import re

    text = (ROOT / "README.md").read_text()
    links = [m for m in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in m]
    assert links, "the README links to the docs"
    missing = [m for m in links if not (ROOT / m).exists()]
    assert missing == []
