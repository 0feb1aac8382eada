"""Metrics against values produced by running the reference's metrics code on the same maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from salrt import metrics as M

REF = np.load(Path(__file__).resolve().parents[1] / "data" / "reference_metrics.npz")
CASES = range(6)


def _case(c: int) -> tuple[np.ndarray, ...]:
    return tuple(REF[f"c{c}_{k}"] for k in ("pred", "gt", "fix", "other"))


@pytest.mark.parametrize("c", CASES)
def test_equal_to_reference(c: int) -> None:
    p, g, f, o = _case(c)
    got = {
        "cc": M.cc(p, g),
        "nss": M.nss(p, f),
        "sim": M.sim(p, g),
        "auc_judd_nojitter": M.auc_judd(p, f, jitter=False),
        "auc_judd_jitter": M.auc_judd(p, f, rng=np.random.RandomState(100 + c)),
        "auc_borji": M.auc_borji(p, f, rng=np.random.RandomState(200 + c)),
        "auc_shuffled": M.auc_shuffled(p, f, o, rng=np.random.RandomState(300 + c)),
    }
    for name, value in got.items():
        assert abs(value - float(REF[f"c{c}_{name}"])) < 1e-6, name


def test_informative_cases_are_informative() -> None:
    # guards against a fixture of chance-level values only
    assert float(REF["c0_cc"]) > 0.8 and float(REF["c0_auc_judd_nojitter"]) > 0.7


def test_inputs_are_not_mutated() -> None:
    p, g, f, _ = _case(0)
    p2 = p.copy()
    M.auc_judd(p2, f, rng=np.random.RandomState(0))
    np.testing.assert_array_equal(p, p2)


def test_kld_definition() -> None:
    p, g, _, _ = _case(2)
    pn, gn = p / p.sum(), g / g.sum()
    expected = sum(float(gv * np.log(M.EPS + gv / (pv + M.EPS))) for pv, gv in zip(pn.ravel(), gn.ravel()))
    assert M.kld(p, g) == pytest.approx(expected, rel=1e-10)
    assert M.kld(g, g) == pytest.approx(0.0, abs=1e-9)


def test_kld_reference_values() -> None:
    """Values fixed outside the formula: a closed form (uniform prediction, one-pixel truth: log 4),
    the order of the arguments (KL(truth || prediction), the MIT benchmark's), and scipy's own
    relative entropy where no value is near zero (eps is then negligible)."""
    from scipy.stats import entropy

    uniform, point = np.ones((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]])
    assert M.kld(uniform, point) == pytest.approx(np.log(4.0), rel=1e-12)  # 1 * log(1 / 0.25)
    # reversed: three pixels of truth 0.25 where the prediction is 0, bounded by eps (MIT's eps = 2^-52)
    closed = 0.75 * np.log(M.EPS + 0.25 / M.EPS) + 0.25 * np.log(M.EPS + 0.25 / (1 + M.EPS))
    assert M.kld(point, uniform) == pytest.approx(closed, rel=1e-12) and closed == pytest.approx(25.64645, abs=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, g = rng.random((6, 7)) + 0.1, rng.random((6, 7)) + 0.1
        assert M.kld(p, g) == pytest.approx(entropy(g.ravel(), p.ravel()), rel=1e-9)


def test_degenerate_inputs_give_nan() -> None:
    p, g, f, o = _case(0)
    empty = np.zeros_like(f)
    for v in (M.nss(p, empty), M.auc_judd(p, empty), M.auc_borji(p, empty), M.auc_shuffled(p, empty, o)):
        assert np.isnan(v)
    const = np.ones_like(p)
    assert np.isnan(M.cc(const, g)) and np.isnan(M.nss(const, f)) and np.isnan(M.sim(const, g))
    with pytest.raises(ValueError):
        M.auc_shuffled(p, f, o[:-1])
    with pytest.raises(ValueError):
        M.cc(p[None], g)


def test_auc_judd_matches_the_plain_loop() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((40, 50)) ** 2
    p[10:20, 10:20] = 0.5  # ties
    f = rng.random((40, 50)) > 0.95
    s = (p - p.min()) / (p.max() - p.min())
    th = np.sort(s[f])[::-1]
    tp, fp = [0.0], [0.0]
    for k, t in enumerate(th):
        tp.append((k + 1) / len(th))
        fp.append(((s >= t).sum() - k - 1) / (s.size - len(th)))
    tp.append(1.0)
    fp.append(1.0)
    loop = sum((fp[i + 1] - fp[i]) * (tp[i + 1] + tp[i]) / 2 for i in range(len(tp) - 1))
    assert M.auc_judd(p, f, jitter=False) == pytest.approx(loop, abs=1e-12)


def test_torch_batch_equals_numpy() -> None:
    cases = [_case(c) for c in (0, 2, 4)]
    shape = cases[0][0].shape
    cases = [c for c in cases if c[0].shape == shape] or cases[:1]
    rng = np.random.default_rng(1)
    preds = np.stack([rng.random(shape) for _ in range(3)])
    gts = np.stack([rng.random(shape) ** 2 for _ in range(3)])
    fix = np.stack([rng.random(shape) > 0.9 for _ in range(3)])
    fix[2] = False
    out = M.batch_metrics_torch(torch.from_numpy(preds), torch.from_numpy(gts), torch.from_numpy(fix))
    for b in range(3):
        for name, fn, ref in (("cc", M.cc, gts), ("sim", M.sim, gts), ("kld", M.kld, gts)):
            assert float(out[name][b]) == pytest.approx(fn(preds[b], ref[b]), abs=1e-9)
        if b < 2:
            assert float(out["nss"][b]) == pytest.approx(M.nss(preds[b], fix[b]), abs=1e-9)
            assert float(out["auc_judd"][b]) == pytest.approx(M.auc_judd(preds[b], fix[b], jitter=False), abs=1e-9)
        else:
            assert np.isnan(float(out["nss"][b])) and np.isnan(float(out["auc_judd"][b]))
