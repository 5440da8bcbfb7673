import numpy as np, time, sys
n = int(sys.argv[1]); a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32); a @ b
t = []
for i in range(7):
    s = time.perf_counter(); a @ b; t.append(time.perf_counter() - s)
t.sort(); print("numpy %d %.3f ms %.1f GFLOP/s" % (n, t[3] * 1e3, 2 * n**3 / t[3] * 1e-9))
