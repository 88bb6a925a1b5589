"""A learner whose answer is known in closed form, for the core tests.

Plain SGD on ``loss(w) = a/2 * |w|^2``: each step multiplies ``w`` by
``1 - lr * a``, so the loss falls for ``lr < 2/a`` and grows without bound for
``lr > 2/a``. A momentum-free "optimizer state" (a step counter) lets the tests
check that the state is restored too. ``floor`` adds a constant, like the
irreducible part of a cross-entropy, so the loss falls to a floor instead of
to zero (a curve the suggestion rules can read).
"""

from __future__ import annotations

import copy

import numpy as np


class QuadraticLearner:
    def __init__(self, a: float = 1.0, w0=(1.0, -2.0, 0.5), floor: float = 0.0):
        self.a = a
        self.floor = floor
        self.w = np.array(w0, dtype=np.float64)
        self.lr = 0.001  # SPEC §2: the optimizer's rate before the finder sets one
        self.num_updates = 0
        self.calls: list[tuple[float | None, bool]] = []
        self.fail_at: int | None = None  # raise on this call (0-based), to test restore
        self.loss_override: dict[int, float] = {}  # call index -> loss to report instead

    def iteration(self, lr: float | None = None, take_step: bool = True) -> float:
        call = len(self.calls)
        self.calls.append((lr, take_step))
        if self.fail_at == call:
            raise RuntimeError(f"injected failure at call {call}")
        if lr is not None:
            self.lr = lr
        loss = self.floor + 0.5 * self.a * float(self.w @ self.w)
        if take_step:
            self.w = self.w - self.lr * self.a * self.w
            self.num_updates += 1
        return self.loss_override.get(call, loss)

    def snapshot(self):
        return copy.deepcopy((self.w, self.lr, self.num_updates))

    def restore(self, snapshot) -> None:
        w, self.lr, self.num_updates = copy.deepcopy(snapshot)
        self.w = w

    def state(self):
        return self.w.tobytes(), self.lr, self.num_updates
