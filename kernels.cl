// Kiln's OpenCL C kernels (OpenCL C 1.2, no extensions required).
// This file is embedded into the binaries at build time; nothing reads it at run time.

// ---------------------------------------------------------------------------------------------
// Data movement
// ---------------------------------------------------------------------------------------------

// x[i] = value for i < n.
__kernel void fill_f32(const int n, const float value, __global float* x) {
    const int i = get_global_id(0);
    if (i < n) x[i] = value;
}

// y[i] += alpha * x[i] for i < n.
__kernel void axpy_f32(const int n, const float alpha, __global const float* x, __global float* y) {
    const int i = get_global_id(0);
    if (i < n) y[i] += alpha * x[i];
}

// ============================================================================================
// SECTION elementwise-reductions-softmax: element-wise ops, activations, reductions, softmax,
// cross-entropy, data movement
// ============================================================================================

// ============================================================================================
// END SECTION elementwise-reductions-softmax
// ============================================================================================

// ============================================================================================
// SECTION norm-random-optim: batch norm, counter-based random numbers, dropout, optimizers
// ============================================================================================

// ============================================================================================
// END SECTION norm-random-optim
// ============================================================================================

// ============================================================================================
// SECTION matmul
// ============================================================================================

// ---------------------------------------------------------------------------------------------
// Microkernels the benchmark suite uses to measure the device's own ceilings.
// ---------------------------------------------------------------------------------------------

// Does nothing: its queued cost is the launch latency.
__kernel void bench_empty(__global float* unused) { }

// FMA throughput: 8 independent float16 accumulators (a CPU needs that many in flight to fill
// its FMA pipes; a GPU hides latency across work-items anyway). 2 * 16 * 8 * 4 flops an iteration.
__kernel void bench_fma(const int iterations, const float a, const float b, __global float* out) {
    const float16 x = (float16)(a);
    const float16 y = (float16)(b);
    float16 c0 = (float16)(get_global_id(0)), c1 = c0 + 1.0f, c2 = c0 + 2.0f, c3 = c0 + 3.0f;
    float16 c4 = c0 + 4.0f, c5 = c0 + 5.0f, c6 = c0 + 6.0f, c7 = c0 + 7.0f;
    for (int i = 0; i < iterations; ++i) {
        for (int j = 0; j < 4; ++j) {
            c0 = fma(c0, x, y); c1 = fma(c1, x, y); c2 = fma(c2, x, y); c3 = fma(c3, x, y);
            c4 = fma(c4, x, y); c5 = fma(c5, x, y); c6 = fma(c6, x, y); c7 = fma(c7, x, y);
        }
    }
    const float16 s = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7));
    // Written so the compiler cannot drop the loop; `out` has one float per work-item.
    out[get_global_id(0)] = s.s0 + s.s1 + s.s2 + s.s3 + s.s4 + s.s5 + s.s6 + s.s7
                          + s.s8 + s.s9 + s.sa + s.sb + s.sc + s.sd + s.se + s.sf;
}

// Copy bandwidth: n16 blocks of 16 floats, one block a work-item.
__kernel void bench_copy(const int n16, __global const float* x, __global float* y) {
    const int i = get_global_id(0);
    if (i < n16) vstore16(vload16(i, x), i, y);
}

// ============================================================================================
// END SECTION matmul
// ============================================================================================
