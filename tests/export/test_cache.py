"""The export cache behind ``--backend auto``: keyed by what decides an export, reused, remade when
unreadable, and safe when two processes ask at once."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from salrt.export.cache import cached, content_digest, export_key


def _fake_export(folder: Path) -> None:
    time.sleep(0.3)  # long enough for a racing process to arrive
    (folder / "manifest.json").write_text(json.dumps({"stamp": time.time_ns()}))


def _key(**changes: object) -> str:
    base = dict(
        model="diffsal", config="tiny", checkpoint=None, seed=0, backbones=(), precision="fp32", batch="1", steps=4
    )
    return export_key(**{**base, **changes})  # type: ignore[arg-type]


def test_key_follows_everything_that_decides_an_export(tmp_path: Path) -> None:
    ck = tmp_path / "w.pth"
    ck.write_bytes(b"weights-1")
    k = _key(checkpoint=str(ck))
    assert _key(checkpoint=str(ck)) == k and _key(checkpoint=str(ck), seed=5) == k  # the seed: synthetic weights only
    others = [_key(model="mubic"), _key(config="paper"), _key(precision="fp16"), _key(batch="2"), _key(steps=2),
              _key(seed=1), _key(extra="tensorrt:fp16"), _key(backbones=(("vggish", str(ck)),))]  # fmt: skip
    assert len({k, _key(), *others}) == 2 + len(others)
    ck.write_bytes(b"weights-2")  # same path, new content: a new export
    assert _key(checkpoint=str(ck)) != k
    d = tmp_path / "salrt_ckpt"
    d.mkdir()
    (d / "config.json").write_text("{}")
    before = content_digest(d)
    (d / "config.json").write_text('{"a": 1}')
    assert content_digest(d) != before


def test_made_once_then_reused_and_remade_when_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import salrt.export.cache as cache

    monkeypatch.setattr(cache, "is_current", lambda d: (Path(d) / "manifest.json").is_file())
    notes: list[str] = []
    made = []
    folder, new = cached("k1", lambda f: (made.append(1), _fake_export(f)), cache_dir=str(tmp_path), log=notes.append)
    assert new and folder == tmp_path / "exports" / "k1" and len(made) == 1
    assert any("once" in n for n in notes) and any("one-time cost" in n for n in notes)
    again, new = cached("k1", lambda f: (made.append(1), _fake_export(f)), cache_dir=str(tmp_path))
    assert again == folder and not new and len(made) == 1
    (folder / "manifest.json").unlink()  # a broken entry is made again
    _, new = cached("k1", _fake_export, cache_dir=str(tmp_path))
    assert new and (folder / "manifest.json").is_file()
    assert not [p for p in (tmp_path / "exports").iterdir() if p.name.startswith(".k1.")]  # no debris


def _race(root: str, queue: multiprocessing.Queue) -> None:
    import salrt.export.cache as cache

    cache.is_current = lambda d: (Path(d) / "manifest.json").is_file()  # type: ignore[assignment]
    folder, new = cache.cached("race", _fake_export, cache_dir=root)
    queue.put((str(folder), new, (folder / "manifest.json").read_text()))


def test_two_processes_share_one_export(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(r[1] for r in results) == [False, True]  # one made it, the other waited and reused it
    assert results[0][0] == results[1][0] and results[0][2] == results[1][2]
