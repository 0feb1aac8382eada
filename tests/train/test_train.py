"""salrt.train: the losses against the metrics they mirror, every model's recipe, exact resume,
refusals, non-finite losses, DistributedDataParallel (gloo, 2 processes), the CLI, and
train -> export -> onnxruntime equality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import salrt
from salrt import losses as L
from salrt import metrics as M
from salrt.cli import main
from salrt.evaluation import av_dataset
from salrt.io.contract import InputContract
from salrt.io.synthetic import make_dataset
from salrt.models import MODELS
from salrt.train import ClipDataset, Trainer, TrainingError, TrainOptions, build_cache, check_videos, collate

ALL = sorted(MODELS)


# ----------------------------------------------------------------------------- losses
def test_losses_equal_the_metrics_they_mirror() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 1, 24, 40, generator=g) ** 3
    gt = torch.rand(4, 1, 24, 40, generator=g) ** 4
    fix = (torch.rand(4, 1, 24, 40, generator=g) > 0.97).float()
    p, q, f = pred.numpy()[:, 0], gt.numpy()[:, 0], fix.numpy()[:, 0] > 0.5
    pairs = {
        "kld": (L.kld(pred, gt), np.mean([M.kld(p[i], q[i]) for i in range(4)])),
        "cc": (L.cc(pred, gt), np.mean([M.cc(p[i], q[i]) for i in range(4)])),
        "sim": (L.sim(pred, gt), np.mean([M.sim(p[i], q[i]) for i in range(4)])),
        "nss": (L.nss(pred, fix), np.mean([M.nss(p[i], f[i]) for i in range(4)])),
    }
    for name, (ours, ref) in pairs.items():
        assert float(ours) == pytest.approx(float(ref), rel=1e-4, abs=1e-5), name
    x = pred.clone().requires_grad_(True)
    (L.kld(x, gt) - 0.1 * L.cc(x, gt) - 0.1 * L.sim(x, gt) - 0.1 * L.nss(x, fix)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert float(L.mse_sum(pred, gt)) == pytest.approx(float(((pred - gt) ** 2).sum() / 4), rel=1e-6)


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("syn"), n_train=2, n_val=1, seconds=0.64, width=160, height=96)


def _clips(root: Path, name: str, subset: str, cache: Path) -> ClipDataset:
    contract = InputContract.of(MODELS[name][1].preset("tiny"))
    return ClipDataset(build_cache(av_dataset(root, "synthetic", 1, subset), contract, cache, stride=4))


def test_synthetic_dataset_and_clip_cache(dataset: Path, tmp_path: Path) -> None:
    videos = av_dataset(dataset, "synthetic", 1, "train")
    assert [v.name for v in videos] == ["syn0000", "syn0001"] and check_videos(videos) == []
    ds = _clips(dataset, "diffsal", "train", tmp_path)
    item = ds[0]
    assert item["video"].shape == (3, 16, 64, 128) and item["audio"].shape == (1, 9, 32, 64)
    assert item["map"].shape == (1, 64, 128) and 0 <= item["map"].min() and item["map"].max() <= 1.0
    assert item["fixations"].sum() > 0 and item["source"] == "syn0000#1"
    # the cached clip is exactly what `salrt run` feeds the model for that frame
    from salrt.io import open_media

    v = videos[0]
    opts = dict(InputContract.of(MODELS["diffsal"][1].preset("tiny")).media_options(), fps=v.fps, audio=v.audio)
    first = next(iter(open_media(v.source, format="image2", options={"framerate": "25", "start_number": "1"}, **opts)))
    assert np.array_equal(first.video, item["video"]) and np.array_equal(first.audio, item["audio"])
    mtime = (ds.folders[0] / "video.npy").stat().st_mtime_ns
    again = _clips(dataset, "diffsal", "train", tmp_path)  # resumable: complete folders are kept
    assert len(again) == len(ds) and (ds.folders[0] / "video.npy").stat().st_mtime_ns == mtime


def test_bad_data_is_named_before_training(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(dataset, root)
    (root / "annotations" / "Synthetic" / "syn0001" / "fixation" / "fixMap_00003.png").unlink()
    shutil.rmtree(root / "annotations" / "Synthetic" / "syn0002" / "maps")
    probs = check_videos(av_dataset(root, "synthetic", 1, "train") + av_dataset(root, "synthetic", 1, "test"))
    assert probs == ["syn0001: 1 maps without fixations (first: frame 3)", "syn0002: no saliency maps"]
    rc = main(
        [
            "train",
            "--model",
            "diffsal",
            "--config",
            "tiny",
            "--dataset",
            "synthetic",
            "--root",
            str(root),
            "-o",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "syn0001: 1 maps without fixations" in err and "(+1 more)" in err and err.count("\n") == 0
    assert not (tmp_path / "out" / "train_state.pt").exists()


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", ALL)
def test_every_model_trains_with_its_papers_objective(name: str, dataset: Path, tmp_path: Path) -> None:
    model = salrt.load_model(name, config="tiny").requires_grad_(True).train()
    recipe = model.training_recipe()
    assert recipe.source and recipe.batch_size >= 1 and recipe.epochs >= 1
    b = collate([_clips(dataset, name, "train", tmp_path)[i] for i in range(2)])
    terms = recipe.loss(model, b, torch.Generator().manual_seed(0))
    assert torch.isfinite(terms["total"]) and terms["total"].requires_grad
    terms["total"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0.8 * sum(1 for _ in model.parameters())  # nearly every parameter learns
    opt = recipe.optimizer(model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def _opts(tmp: Path, **kw: object) -> TrainOptions:
    base = dict(model="avrsp", config="tiny", output=str(tmp), epochs=2, batch=2, log_every=1, quiet=True)
    return TrainOptions(**{**base, **kw})


def test_resume_is_exact(dataset: Path, tmp_path: Path) -> None:
    tr, va = _clips(dataset, "diffsal", "train", tmp_path / "c"), _clips(dataset, "diffsal", "test", tmp_path / "c")
    straight = Trainer(_opts(tmp_path / "a", model="diffsal", checkpoint_every=1), tr, va)
    straight.fit()
    first = Trainer(_opts(tmp_path / "b", model="diffsal", checkpoint_every=1, max_steps=3), tr, va)
    first.fit()
    assert first.step == 3 and first.epoch == 0  # stopped inside the first epoch
    resumed = Trainer(_opts(tmp_path / "b", model="diffsal", checkpoint_every=1, resume=True), tr, va)
    assert (resumed.epoch, resumed.batch_in_epoch, resumed.step) == (0, 3, 3)
    resumed.fit()
    assert resumed.step == straight.step
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r for r in straight.history if r["kind"] == "val"] == [r for r in resumed.history if r["kind"] == "val"]
    out = tmp_path / "a"
    for f in ("train_state.pt", "log.csv", "log.json", "curves.png", "best/model.safetensors", "last/config.json"):
        assert (out / f).is_file(), f
    rows = json.loads((out / "log.json").read_text())
    assert {"cc", "nss", "sim", "kld", "auc_judd"} <= set(next(r for r in rows if r["kind"] == "val"))
    with pytest.raises(TrainingError, match="resume refused"):
        Trainer(_opts(tmp_path / "a", model="diffsal", config="paper", resume=True), tr, va)
    with pytest.raises(TrainingError, match="resume refused"):
        Trainer(_opts(tmp_path / "a", model="mubic", resume=True), tr, va)


def test_non_finite_loss_stops_with_the_step_and_the_clips(dataset: Path, tmp_path: Path) -> None:
    tr = _clips(dataset, "avrsp", "train", tmp_path / "c")
    t = Trainer(_opts(tmp_path / "o", checkpoint_every=1), tr, None)
    real = t.objective.loss
    calls = {"n": 0}

    def poisoned(m, b, g):
        calls["n"] += 1
        out = real(m, b, g)
        return {**out, "total": out["total"] * float("nan")} if calls["n"] == 3 else out

    t.objective.loss = poisoned
    with pytest.raises(TrainingError) as e:
        t.fit()
    msg = str(e.value)
    assert "non-finite loss" in msg and "at step 2" in msg and "syn000" in msg and "train_state.pt" in msg


def test_cli_train_then_run_and_export_the_checkpoint(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--model",
            "diffsal",
            "--config",
            "tiny",
            "--dataset",
            "synthetic",
            "--root",
            str(dataset),
            "-o",
            str(out),
            "--epochs",
            "1",
            "--batch",
            "2",
            "--lr",
            "1e-3",
            "--quiet",
        ]
    )
    assert rc == 0 and (out / "best" / "model.safetensors").is_file()
    model = salrt.load_model("diffsal", checkpoint=out / "best")
    tuned = Trainer(_opts(tmp_path / "ft", model="diffsal", init_from=str(out / "best")), ClipDataset([]), None)
    for (k, a), b in zip(model.state_dict().items(), tuned.model.state_dict().values()):  # --init-from
        assert torch.equal(a, b), k
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.export.onnx import export_onnx
    from salrt.models.synthetic import synthetic_inputs

    export_onnx(model, tmp_path / "exp", batch="2", steps=4)
    c = model.config
    v, a, n = synthetic_inputs(c.video_shape, c.audio_shape, 2, seed=1)
    ref = model.sample(v, a, steps=4, noise=n).numpy()
    got = OnnxRuntimeBackend(str(tmp_path / "exp")).sample(v.numpy(), a.numpy(), steps=4, noise=n.numpy())
    assert np.abs(got - ref).max() < 1e-4
    clip = dataset / "video_frames" / "Synthetic" / "syn0002" / "img_%05d.jpg"
    rc = main(
        [
            "run",
            str(clip),
            "--model",
            "diffsal",
            "--checkpoint",
            str(out / "best"),
            "--fps",
            "25",
            "--outputs",
            "npy",
            "-o",
            str(tmp_path / "maps"),
            "--quiet",
        ]
    )
    assert rc == 0 and any((tmp_path / "maps").rglob("*.npy"))


def test_distributed_data_parallel_on_cpu(dataset: Path, tmp_path: Path) -> None:
    """torchrun, 2 processes, gloo on loopback: both ranks step in sync and rank 0 writes."""
    out = tmp_path / "ddp"
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port, not a fixed one another run may hold
        "--nproc_per_node",
        "2",
        "-m",
        "salrt.cli",
        "train",
        "--model",
        "avrsp",
        "--config",
        "tiny",
        "--dataset",
        "synthetic",
        "--root",
        str(dataset),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--batch",
        "2",
        "--log-every",
        "1",
        "--decode-workers",
        "0",
        "--quiet",
    ]
    # its own session, killed as a group on timeout: subprocess.run's timeout kills torchrun only,
    # then waits forever on the pipes its two workers still hold
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in 300 s: {err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    st = torch.load(out / "train_state.pt", weights_only=False)
    n_train = len(_clips(dataset, "avrsp", "train", tmp_path / "c"))
    per_rank = -(-n_train // 2)  # each rank takes half of the clips (padded to equal halves)
    assert st["step"] == per_rank // 2 and st["epoch"] == 1  # two per step (a lone last clip joins the batch before)
    assert (out / "best" / "model.safetensors").is_file()
    # validation ran on rank 0's clip while rank 1 had none: the all-reduce still matched
    val = [row for row in json.loads((out / "log.json").read_text()) if row["kind"] == "val"]
    assert len(val) == 1 and np.isfinite(val[0]["cc"])
    # every rank's weights, hashed at the end and gathered: identical, and those rank 0 wrote
    ranks = json.loads((out / "ranks.json").read_text())
    assert ranks["world"] == 2 and len(set(ranks["digests"])) == 1
    written = salrt.load_model("avrsp", checkpoint=out / "last")
    import hashlib

    h = hashlib.sha256()
    for k, v in written.named_parameters():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    assert h.hexdigest() == ranks["digests"][0]


def test_a_last_single_clip_joins_the_batch_before_it() -> None:
    """No clip lost or repeated when the last batch would hold one clip (it joins the one before)."""
    from types import SimpleNamespace

    from salrt.train.trainer import Trainer

    for n, batch in ((5, 2), (3, 2), (9, 4), (4, 2), (1, 2)):
        got = Trainer._batches(SimpleNamespace(batch=batch), list(range(n)))
        assert sorted(i for b in got for i in b) == list(range(n)), (n, batch, got)
        assert all(len(b) > 1 for b in got) or n == 1
