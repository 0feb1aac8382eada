"""Run, encode or evaluate many inputs as one Ray job (:mod:`salrt.cluster`) from a RunSpec."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from salrt.spec import RunSpec


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray job runs: ``address`` (None: a local cluster), model ``workers``
    (None: one per GPU, else one per ``worker_cpus`` cores), ``worker_gpus``, and ``resume``
    (skip inputs whose outputs are complete)."""

    address: str | None = None
    workers: int | None = None
    worker_cpus: float = 1.0
    worker_gpus: float | None = None
    resume: bool = False


def read_input_list(path: str) -> list[str]:
    """Inputs one per line (blank lines and ``#`` comments skipped)."""
    from salrt.cluster import read_input_list as read

    return read(path)


def start(spec: RunSpec, ray: RayOptions, log: Callable[[str], None] = lambda s: None) -> RunSpec:
    """``spec`` prepared once for the workers (its backend resolved, a cached export made), the same
    refusals as a local run, then the cluster reached: what a job needs before its first input."""
    from salrt import pipeline
    from salrt.cluster import connect

    spec = pipeline.prepare(spec, progress=log)
    if spec.checkpoint is None and not spec.random_weights and spec.export_dir is None and not spec.url:
        pipeline.load_weights(spec)  # the same one-line refusal as a local run, before the cluster starts
    started = connect(ray.address, timeout_s=spec.timeout_s)
    log(f"cluster ready in {started:.1f} s")
    return spec


def run_job(
    spec: RunSpec,
    items: list[Any],
    outputs: Any,
    out: str,
    options: dict[str, Any],
    ray: RayOptions,
    *,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
    started: bool = False,
) -> Any:
    """Run ``items`` (:class:`salrt.cluster.Item`) on Ray; the job's :class:`salrt.cluster.JobReport`.
    ``started``: :func:`start` was called already (its spec given)."""
    from salrt.cluster import run_job as cluster_job

    if not started:
        spec = start(spec, ray, log)
    return cluster_job(
        items,
        outputs,
        out,
        spec=spec,
        options=options,
        address=ray.address,
        workers=ray.workers,
        worker_cpus=ray.worker_cpus,
        worker_gpus=ray.worker_gpus,
        resume=ray.resume,
        timeout_s=spec.timeout_s,
        progress=progress,
        log=log,
    )
