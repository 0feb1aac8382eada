"""The training loop, the same for every model (its objective, optimiser and schedule come from
:meth:`training_recipe`): mixed precision on GPU, gradient accumulation and clipping, a
checkpoint every N steps that resumes exactly (model, optimiser, scheduler, scaler, every RNG,
data position), validation with the paper metrics every epoch, best-checkpoint selection, a
progress bar, CSV/JSON logs and PNG curves, and DistributedDataParallel under ``torchrun``.

Outputs in ``output/``: ``train_state.pt`` (resume), ``last/`` and ``best/`` (salrt checkpoints
that ``salrt run/export/eval`` take as they are), ``log.csv``, ``log.json``, ``curves.png``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from salrt.errors import SalrtError, UsageError
from salrt.train.data import ClipDataset, collate


class TrainingError(SalrtError):
    """Training stopped (non-finite loss, a resume that does not match)."""


@dataclass
class TrainOptions:
    """Settings of one run; None takes the model's recipe (paper) value."""

    model: str
    config: str = "tiny"
    output: str = "train_out"
    epochs: int | None = None
    batch: int | None = None
    lr: float | None = None
    accumulate: int = 1
    grad_clip: float | None = None
    precision: str = "fp32"  # bf16 / fp16: autocast (CUDA)
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    resume: bool = False
    init_from: str | None = None
    backbones: dict[str, str] = field(default_factory=dict)
    val_steps: int = 4  # DDIM steps when validating diffusion models
    max_steps: int | None = None  # stop (with a checkpoint) after this many optimiser steps
    quiet: bool = False


class _Objective(nn.Module):
    """The model plus its recipe's loss as one module, so DistributedDataParallel sees a forward."""

    def __init__(self, model: nn.Module, loss: Callable) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch: dict[str, Any], gen: torch.Generator) -> dict[str, torch.Tensor]:
        return self.loss(self.model, batch, gen)


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loss": gen.get_state(),
    }


def _set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen.set_state(state["loss"])


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Trains ``opts.model`` on ``train`` clips, validating on ``val`` after every epoch."""

    def __init__(
        self, opts: TrainOptions, train: ClipDataset, val: ClipDataset | None, log: Callable[[str], None] | None = None
    ) -> None:
        import salrt

        self.opts, self.train_set, self.val_set = opts, train, val
        self.say = log or (lambda s: None)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = torch.device(opts.device)
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
        if opts.precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"unknown precision {opts.precision!r}: fp32, bf16 or fp16")
        if opts.precision != "fp32" and self.device.type != "cuda":
            raise UsageError(f"--precision {opts.precision} trains with autocast on a CUDA device; use fp32 on CPU")
        if opts.accumulate < 1:
            raise UsageError("--accumulate must be >= 1")
        torch.manual_seed(opts.seed)
        self.model = salrt.load_model(
            opts.model, checkpoint=opts.init_from, config=opts.config, pretrained=opts.backbones or None
        ).to(self.device)
        self.model.requires_grad_(True).train()
        self.config_dict = self.model.config.to_dict()
        self.recipe = self.model.training_recipe()
        self.epochs = opts.epochs or self.recipe.epochs
        self.batch = opts.batch or self.recipe.batch_size
        self.clip = opts.grad_clip if opts.grad_clip is not None else self.recipe.grad_clip
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.recipe.optimizer(params)
        if opts.lr is not None:
            for g in self.optimizer.param_groups:
                g["lr"] = opts.lr
        self.scheduler = self.recipe.scheduler(self.optimizer, self.epochs) if self.recipe.scheduler else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=opts.precision == "fp16")
        self.gen = torch.Generator(device=self.device).manual_seed(opts.seed * 1000 + self.rank)
        self.objective: nn.Module = _Objective(self.model, self.recipe.loss)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.objective = DistributedDataParallel(self.objective, device_ids=ids, find_unused_parameters=True)
        self.out = Path(opts.output)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "train_state.pt"
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best: float | None = None
        self.history: list[dict[str, Any]] = []
        if opts.resume:
            self._resume()

    # -- checkpoints ---------------------------------------------------------------------------
    def _resume(self) -> None:
        if not self.state_path.is_file():
            raise TrainingError(f"--resume: no {self.state_path} to resume from")
        st = torch.load(self.state_path, map_location=self.device, weights_only=False)
        if st["model_name"] != self.opts.model or st["config"] != self.config_dict:
            raise TrainingError(
                f"{self.state_path}: a checkpoint of {st['model_name']!r} with another config, not of "
                f"{self.opts.model!r} ({self.opts.config}): resume refused"
            )
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        if self.scheduler is not None and st.get("scheduler") is not None:
            self.scheduler.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.batch_in_epoch, self.step = st["epoch"], st["batch_in_epoch"], st["step"]
        self.best, self.history = st["best"], st["history"]
        _set_rng_state(st["rng"], self.gen)
        self.say(f"resumed at epoch {self.epoch + 1}, batch {self.batch_in_epoch}, step {self.step}")

    def save_state(self) -> Path:
        """``train_state.pt``: everything an exact resume needs (rank 0 writes it)."""
        if self.rank == 0:
            st = {
                "model_name": self.opts.model,
                "config": self.config_dict,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "step": self.step,
                "best": self.best,
                "history": self.history,
                "rng": _rng_state(self.gen),
                "options": asdict(self.opts),
            }
            _atomic_torch_save(st, self.state_path)
        return self.state_path

    def _save_model(self, name: str) -> Path:
        from salrt.checkpoint import save_salrt

        d = self.out / name
        if self.rank == 0:
            tmp = self.out / f".{name}.tmp"
            save_salrt(self.model, tmp)
            import shutil

            shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)
        return d

    # -- data ----------------------------------------------------------------------------------
    def _order(self, epoch: int) -> list[int]:
        """This rank's clip order for ``epoch``: a permutation seeded by (seed, epoch), sharded."""
        perm = np.random.default_rng([self.opts.seed, epoch]).permutation(len(self.train_set))
        pad = -len(perm) % self.world  # every rank the same number of clips (as DistributedSampler pads)
        perm = np.concatenate([perm, perm[:pad]])
        return [int(i) for i in perm[self.rank :: self.world]]

    def _batches(self, order: list[int]) -> list[list[int]]:
        """Batches of ``self.batch``; a last batch of one clip joins the one before (BatchNorm cannot
        train on a single value per channel, and no clip is left out)."""
        batches = [order[i : i + self.batch] for i in range(0, len(order), self.batch)]
        if len(batches) > 1 and len(batches[-1]) == 1 and self.batch > 1:
            last = batches.pop()  # (popped first: an index taken before the pop would name another batch)
            batches[-1] = batches[-1] + last
        return batches

    def _loader(self, order: list[int], start: int) -> Any:
        batches = self._batches(order)[start:]
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=self.opts.workers,
            persistent_workers=False,
        ), len(batches) + start

    # -- loop ----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from salrt.console import Bar, stderr_console

        if len(self.train_set) == 0:
            raise TrainingError("no training clips")
        per_epoch = len(self._batches(self._order(0)))
        total = per_epoch * self.epochs
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.opts.precision)
        bar = Bar("training", total, "step", self.opts.quiet or self.rank != 0, stderr_console())
        bar.advance(self.epoch * per_epoch + self.batch_in_epoch)
        last_good = self.state_path if self.state_path.is_file() else None
        stop = False
        t_log, clips_log = time.perf_counter(), 0
        while self.epoch < self.epochs and not stop:
            loader, n_batches = self._loader(self._order(self.epoch), self.batch_in_epoch)
            self.objective.train()
            running: dict[str, float] = {}
            for batch in loader:
                batch = _to(batch, self.device)
                with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                    terms = self.objective(batch, self.gen)
                loss = terms["total"]
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"non-finite loss ({float(loss.detach())}) at step {self.step}, epoch {self.epoch + 1}, batch "
                        f"{self.batch_in_epoch}: clips {', '.join(batch['source'])}; last good checkpoint: "
                        f"{last_good or 'none yet'}"
                    )
                self.scaler.scale(loss / self.opts.accumulate).backward()
                self.batch_in_epoch += 1
                clips_log += len(batch["source"]) * self.world
                for k, v in terms.items():
                    running[k] = running.get(k, 0.0) + float(v.detach())
                running["_n"] = running.get("_n", 0.0) + 1
                if self.batch_in_epoch % self.opts.accumulate == 0 or self.batch_in_epoch == n_batches:
                    self._optimizer_step()
                    if self.step % self.opts.log_every == 0:
                        dt = time.perf_counter() - t_log
                        self._log_row("train", running, clips_log / max(dt, 1e-9))
                        running, t_log, clips_log = {}, time.perf_counter(), 0
                    if self.step % self.opts.checkpoint_every == 0:
                        last_good = self.save_state()
                    if self.opts.max_steps is not None and self.step >= self.opts.max_steps:
                        stop = True
                bar.advance()
                if stop:
                    break
            if stop and self.batch_in_epoch < n_batches:
                break
            if running.get("_n"):
                dt = time.perf_counter() - t_log
                self._log_row("train", running, clips_log / max(dt, 1e-9))
                running, t_log, clips_log = {}, time.perf_counter(), 0
            self._end_epoch()
        bar.close()
        agree = self._ranks_agree()
        last_good = self.save_state()
        self._save_model("last")
        self._barrier()
        return {"epochs": self.epoch, "step": self.step, "best_cc": self.best, "output": str(self.out),
                "ranks_agree": agree}  # fmt: skip

    def weights_digest(self) -> str:
        """sha256 of every parameter's bytes, in order. (Buffers such as batch-norm running
        statistics are rank 0's: DDP broadcasts them at each forward, and each rank's last forward
        updates its own copy from its own batch.)"""
        import hashlib

        h = hashlib.sha256()
        for k, v in self.model.named_parameters():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _ranks_agree(self) -> bool | None:
        """Under DDP, whether every rank ended with bit-identical parameters (else TrainingError: the
        ranks diverged and the checkpoint rank 0 writes is not what the others trained); None alone."""
        if self.world == 1:
            return None
        import torch.distributed as dist

        digests: list[Any] = [None] * self.world
        dist.all_gather_object(digests, self.weights_digest())
        if len(set(digests)) != 1:
            raise TrainingError(f"the {self.world} ranks ended with different weights: {digests}")
        self.say(f"weights identical on all {self.world} ranks (sha256 {digests[0][:16]})")
        if self.rank == 0:
            (self.out / "ranks.json").write_text(json.dumps({"world": self.world, "digests": digests}))
        return True

    def _optimizer_step(self) -> None:
        if self.clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        metrics = self.validate() if self.val_set is not None and len(self.val_set) else {}
        if metrics:
            self._log_row("val", metrics, None)
        if self.scheduler is not None:
            if self.recipe.schedule_on == "plateau":
                if metrics:
                    self.scheduler.step(metrics["cc"])
            else:
                self.scheduler.step()
        if metrics and (self.best is None or metrics["cc"] > self.best):
            self.best = metrics["cc"]
            self._save_model("best")
        elif not metrics and self.rank == 0:
            self._save_model("best")  # no validation set: the latest is the best known
        self.save_state()
        self._save_model("last")
        self._write_logs()

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    # -- validation ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """CC, NSS, SIM, KLD, AUC-J (salrt.metrics, per clip, averaged) of the model's maps on the
        validation clips, sampled with fixed noise (the same every epoch)."""
        from salrt import metrics as M

        assert self.val_set is not None
        self.model.eval()
        sums: dict[str, float] = {}
        n = 0
        rng = np.random.default_rng(0)
        gen = torch.Generator(device=self.device).manual_seed(12345)
        order = list(range(len(self.val_set)))[self.rank :: self.world]
        for i in range(0, len(order), self.batch):
            b = _to(collate([self.val_set[j] for j in order[i : i + self.batch]]), self.device)
            pred = self.model.validation_maps(b, self.opts.val_steps, gen)  # (N,1,H,W)
            lead = b["map"].dim() - 3  # sequences (B,L,1,H,W) score every frame
            p = pred.float().cpu().numpy()[:, 0]
            g = b["map"].float().flatten(0, lead - 1).cpu().numpy()[:, 0]
            f = b["fixations"].flatten(0, lead - 1).cpu().numpy()[:, 0] > 0.5
            if "has" in b:  # frames without a target (a teacher stride > 1) are not scored
                keep = b["has"].flatten().cpu().numpy()
                p, g, f = p[keep], g[keep], f[keep]
            for k in range(p.shape[0]):
                vals = {
                    "cc": M.cc(p[k], g[k]),
                    "sim": M.sim(p[k], g[k]),
                    "kld": M.kld(p[k], g[k]),
                    "nss": M.nss(p[k], f[k]) if f[k].any() else float("nan"),
                    "auc_judd": M.auc_judd(p[k], f[k], rng=rng) if f[k].any() else float("nan"),
                }
                for name, v in vals.items():
                    if np.isfinite(v):
                        sums[name] = sums.get(name, 0.0) + v
                        sums[f"_n_{name}"] = sums.get(f"_n_{name}", 0.0) + 1
                n += 1
        if self.world > 1:
            import torch.distributed as dist

            # a fixed key list: a rank with no validation clips (or no fixations) still sends
            # the same tensor shape, else gloo's all_reduce waits forever on mismatched sizes
            keys = [f"{pre}{m}" for m in ("cc", "nss", "sim", "kld", "auc_judd") for pre in ("", "_n_")]
            t = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64)
            dist.all_reduce(t)
            sums = dict(zip(keys, t.tolist()))
        self.model.train()
        return {k: sums[k] / sums[f"_n_{k}"] for k in ("cc", "nss", "sim", "kld", "auc_judd") if sums.get(f"_n_{k}")}

    # -- logs ----------------------------------------------------------------------------------
    def _log_row(self, kind: str, values: dict[str, float], clips_per_s: float | None) -> None:
        if kind == "val":  # after the epoch ended: self.epoch already counts it
            row: dict[str, Any] = {"kind": kind, "epoch": self.epoch, "step": self.step, **values}
        else:  # running sums over "_n" batches; the epoch under way, 1-based
            n = values.get("_n", 1.0)
            row = {"kind": kind, "epoch": self.epoch + 1, "step": self.step}
            row.update({k: v / n for k, v in values.items() if not k.startswith("_")})
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        if clips_per_s is not None:
            row["clips_per_s"] = clips_per_s
        self.history.append(row)
        if kind == "val":
            txt = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
            self.say(f"epoch {self.epoch}: validation {txt}")

    def _write_logs(self) -> None:
        if self.rank != 0:
            return
        (self.out / "log.json").write_text(json.dumps(self.history, indent=1))
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        with (self.out / "log.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)
        self._plot()

    def _plot(self) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        train = [r for r in self.history if r["kind"] == "train"]
        val = [r for r in self.history if r["kind"] == "val"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        if train:
            axes[0].plot([r["step"] for r in train], [r["total"] for r in train])
        axes[0].set(xlabel="optimiser step", ylabel="training loss", title=f"{self.opts.model} ({self.opts.config})")
        for m in ("cc", "sim", "auc_judd"):
            if val and m in val[0]:
                axes[1].plot([r["epoch"] for r in val], [r[m] for r in val], marker="o", label=m)
        axes[1].set(xlabel="epoch", ylabel="validation", title="validation metrics")
        if val:
            axes[1].legend()
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=100)
        plt.close(fig)


def train(opts: TrainOptions, train_set: ClipDataset, val_set: ClipDataset | None = None, log: Any = None) -> dict:
    """Train and return ``{"epochs", "step", "best_cc", "output"}`` (see :class:`Trainer`)."""
    return Trainer(opts, train_set, val_set, log).fit()
