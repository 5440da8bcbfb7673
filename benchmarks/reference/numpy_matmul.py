#!/usr/bin/env python3
"""numpy (OpenBLAS) float32 matmul on the shapes of `kiln bench`, for ratios measured in one sitting.

Run as:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 benchmarks/reference/numpy_matmul.py [--json FILE]
(the environment may pin OpenBLAS to an older kernel; unsetting those two lets it pick its best).
Not part of the build or of CI.
"""
import json
import sys
import time

import numpy as np

# (name, M, K, N, transpose A, transpose B): C[M,N] = op(A) @ op(B), as `kiln bench` names them.
SHAPES = [(f"matmul {n}^3", n, n, n, False, False) for n in (256, 512, 1024, 2048)] + [
    ("mlp fc1 forward (nt)", 128, 784, 256, False, True),
    ("mlp fc1 dW (tn)", 256, 128, 784, True, False),
    ("mlp fc1 dX (nn)", 128, 256, 784, False, False),
    ("mlp fc2 forward (nt)", 128, 256, 128, False, True),
    ("mlp fc2 dW (tn)", 128, 128, 256, True, False),
    ("mlp fc2 dX (nn)", 128, 128, 256, False, False),
    ("mlp fc3 forward (nt)", 128, 128, 10, False, True),
    ("mlp fc3 dW (tn)", 10, 128, 128, True, False),
    ("mlp fc3 dX (nn)", 128, 10, 128, False, False),
]


def time_matmul(m, k, n, ta, tb, repeats=20):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    a_op, b_op = (a.T if ta else a), (b.T if tb else b)
    out = np.empty((m, n), dtype=np.float32)
    for _ in range(3):
        np.matmul(a_op, b_op, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a_op, b_op, out=out)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    results = []
    for name, m, k, n, ta, tb in SHAPES:
        seconds = time_matmul(m, k, n, ta, tb)
        gflops = 2 * m * n * k / seconds / 1e9
        results.append({"name": name, "shape": [m, k, n], "median_ms": seconds * 1e3, "gflops": gflops})
        print(f"{name:24s} {m:5d}x{k:5d}x{n:5d}  {seconds * 1e3:9.4f} ms  {gflops:7.1f} GFLOP/s")
    if "--json" in sys.argv:
        with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
            json.dump({"numpy": np.__version__, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
