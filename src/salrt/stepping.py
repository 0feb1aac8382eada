"""Streaming models' state, one per input (the runtime's model thread owns it): which frames can
share a model call, and the state each frame continues from. No torch, no backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def waves(jobs: Sequence[Any], source_of: Any = lambda j: j.source) -> list[list[Any]]:
    """``jobs`` in order, split into waves of at most one job per input: an input's frames depend
    on each other in order; different inputs share a call."""
    out: list[list[Any]] = []
    waiting = list(jobs)
    while waiting:
        wave: list[Any] = []
        later: list[Any] = []
        for j in waiting:
            (later if any(source_of(w) == source_of(j) for w in wave) else wave).append(j)
        out.append(wave)
        waiting = later
    return out


class StreamStates:
    """The state of each input's stream: ``before(source, index)`` is the state frame ``index``
    continues from (the start state when it does not follow the previous frame by ``stride``:
    clips dropped, a reconnect; context from before a gap would describe another moment),
    ``after(source, index, state)`` records the next one, ``end(source)`` frees it."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], stride: int, inputs: int) -> None:
        self.zeros = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
        self.stride = stride
        self.states: dict[int, tuple[int, dict[str, np.ndarray]]] = {}
        self.resets = [0] * inputs  # times an input's state restarted after its start

    def before(self, source: int, index: int) -> dict[str, np.ndarray]:
        prev = self.states.get(source)
        if prev is not None and index - prev[0] == self.stride:
            return prev[1]
        self.resets[source] += prev is not None
        return self.zeros

    def batch(self, sources_indices: Sequence[tuple[int, int]]) -> dict[str, np.ndarray]:
        """The stacked states (B, ...) of a wave's frames."""
        parts = [self.before(s, i) for s, i in sources_indices]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.zeros}

    def after(self, source: int, index: int, state: dict[str, np.ndarray]) -> None:
        self.states[source] = (index, {k: np.array(v, np.float32, copy=True) for k, v in state.items()})

    def end(self, source: int) -> None:
        self.states.pop(source, None)
