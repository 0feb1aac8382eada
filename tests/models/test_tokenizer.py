"""salrt's CLIP tokenizer equals OpenAI's reference tokenizer on 200+ committed captions (ids
recorded from the reference by tests/data/make_clip_tokenizer_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from salrt.models.clip_text import CLIPTokenizer

pytest.importorskip("regex")  # salrt[text]
pytest.importorskip("ftfy")

DATA = Path(__file__).resolve().parents[1] / "data" / "clip_tokenizer_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(reference: dict, tmp_path_factory: pytest.TempPathFactory) -> CLIPTokenizer:
    """A merges file with CLIP's rules at their own ranks (the ones the captions use) and inert
    private-use pairs elsewhere, so every id equals the full vocabulary's."""
    used = {int(k): v for k, v in reference["merges"].items()}
    lines = [used.get(r, f"\ue000{r} \ue001") for r in range(reference["merges_total"])]
    p = tmp_path_factory.mktemp("bpe") / "merges.txt"
    p.write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return CLIPTokenizer(p, context=reference["context"])


def test_corpus_covers_the_hard_cases(reference: dict) -> None:
    caps = reference["captions"]
    assert len(caps) >= 200
    assert any("²" in c for c in caps) and any("ｈ" in c for c in caps) and any("🙂" in c for c in caps)
    assert any("é" in c for c in caps) and any("&amp;" in c for c in caps) and any("Ã©" in c for c in caps)
    assert any(len(ids) == reference["context"] for ids in reference["ids"])  # truncated captions


def test_ids_equal_the_reference_tokenizer(reference: dict, tokenizer: CLIPTokenizer) -> None:
    got = tokenizer(reference["captions"])
    bad = []
    for i, (cap, ids) in enumerate(zip(reference["captions"], reference["ids"])):
        row = got[i]
        if list(row[: len(ids)]) != ids or row[len(ids) :].any():
            bad.append((cap, ids, row[: len(ids) + 2].tolist()))
    assert not bad, f"{len(bad)} captions differ, first: {bad[0]}"


def test_unicode_digits_and_full_width_text(tokenizer: CLIPTokenizer) -> None:
    # the two cases a plain `re` port gets wrong: \p{N} (superscripts are numbers, one token each)
    # and ftfy's NFKC repair of full-width letters (7 tokens, not 15)
    sq = tokenizer.encode("x² + y² = r²")
    assert len(sq) == 8
    assert tokenizer.encode("ｈｅｌｌｏ　ｗｏｒｌｄ") == tokenizer.encode("hello world")
    assert tokenizer(["<|endoftext|>"])[0][:3].tolist() == [tokenizer.sot, tokenizer.eot, tokenizer.eot]
    assert np.count_nonzero(tokenizer(["a " * 200])[0]) == 77
