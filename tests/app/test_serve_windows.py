"""``salrt serve``'s stand-in for Triton's sequence batcher (the frames-once model's windows):
start, continue, unknown streams, slots, idle release, end. No server needed."""

from __future__ import annotations

import numpy as np
import pytest

from salrt.app.serve import WindowStore
from salrt.errors import SalrtError


def test_windows_per_stream() -> None:
    now = [0.0]
    store = WindowStore((2, 3), slots=2, idle_s=10.0, clock=lambda: now[0])
    assert not store.take("a", start=True).any()  # a stream starts from a zero window
    store.put("a", np.ones((2, 3), np.uint8))
    with pytest.raises(SalrtError, match="START flag"):  # Triton's wording: the client resends
        store.take("b", start=False)
    store.take("b", start=True)
    store.put("b", np.full((2, 3), 2, np.uint8))
    assert store.take("a", start=False).max() == 1 and store.take("b", start=False).max() == 2  # never mixed
    with pytest.raises(SalrtError, match="no free stream slot: this server holds 2 streams"):
        store.take("c", start=True)
    assert store.take("a", start=True).max() == 0  # a restart of a held stream needs no new slot
    store.release("a")
    store.release("a")  # twice is harmless
    store.take("c", start=True)
    store.put("c", np.ones((2, 3), np.uint8))
    now[0] = 10.5  # b silent for longer than idle_s: released (a client that disappeared)
    store.put("c", np.ones((2, 3), np.uint8))
    store.sweep()
    assert "b" not in store.windows and "c" in store.windows and store.released_idle == 1
    with pytest.raises(SalrtError, match="START flag"):
        store.take("b", start=False)
