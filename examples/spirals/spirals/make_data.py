"""Write ``data/points.csv``: 1800 points on three noisy spiral arms (x, y, arm).

``python -m spirals.make_data`` makes it again (the project ships the file it wrote).
"""

from pathlib import Path

import numpy as np

POINTS = Path(__file__).with_name("data") / "points.csv"


def make(n_per_arm: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for arm in range(3):
        t = rng.uniform(0.25, 1.0, n_per_arm)
        angle = 2 * np.pi * t + arm * 2 * np.pi / 3
        x, y = t * np.cos(angle), t * np.sin(angle)
        rows.append(np.stack([x + rng.normal(0, 0.03, n_per_arm), y + rng.normal(0, 0.03, n_per_arm),
                              np.full(n_per_arm, arm)], axis=1))
    points = np.concatenate(rows)
    return points[rng.permutation(len(points))]


if __name__ == "__main__":
    POINTS.parent.mkdir(exist_ok=True)
    np.savetxt(POINTS, make(), fmt=["%.5f", "%.5f", "%d"], delimiter=",", header="x,y,arm", comments="")
    print(f"wrote {POINTS}")
