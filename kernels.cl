// Kiln's OpenCL C kernels (OpenCL C 1.2, no extensions required).
// This file is embedded into the binaries at build time; nothing reads it at run time.
//
// Build options set per device by KernelConfig (Sources/Kernels/Kernels.swift):
//   KILN_CPU or KILN_GPU   the strategy family (serial loops per row vs local-memory trees)
//   KILN_VEC               the device's native float vector width (1, 2, 4, 8 or 16). On PoCL it is
//                          the SIMD width of the host (8 for AVX2, 16 for AVX-512): wider types split
//                          into out-of-line calls for builtins such as fma (AVX2: float8 fma ran at
//                          153 GFLOP/s, float16 at 56).

#ifndef KILN_VEC
#define KILN_VEC 8
#endif

// floatv: a vector of KILN_VEC floats; vloadv/vstorev load and store one at index i.
#if KILN_VEC == 16
typedef float16 floatv;
#define vloadv vload16
#define vstorev vstore16
#elif KILN_VEC == 8
typedef float8 floatv;
#define vloadv vload8
#define vstorev vstore8
#elif KILN_VEC == 4
typedef float4 floatv;
#define vloadv vload4
#define vstorev vstore4
#elif KILN_VEC == 2
typedef float2 floatv;
#define vloadv vload2
#define vstorev vstore2
#else
typedef float floatv;
#define vloadv(i, p) ((p)[(i)])
#define vstorev(v, i, p) ((p)[(i)] = (v))
#endif

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

// FMA throughput: 8 independent accumulators of the native vector width (a CPU needs that many
// in flight to fill its FMA pipes; a GPU hides latency across work-items anyway).
// 2 * KILN_VEC * 8 * 4 flops an iteration.
__kernel void bench_fma(const int iterations, const float a, const float b, __global float* out) {
    const floatv x = (floatv)(a);
    const floatv y = (floatv)(b);
    floatv c0 = (floatv)(get_global_id(0)), c1 = c0 + 1.0f, c2 = c0 + 2.0f, c3 = c0 + 3.0f;
    floatv c4 = c0 + 4.0f, c5 = c0 + 5.0f, c6 = c0 + 6.0f, c7 = c0 + 7.0f;
    for (int i = 0; i < iterations; ++i) {
        for (int j = 0; j < 4; ++j) {
            c0 = fma(c0, x, y); c1 = fma(c1, x, y); c2 = fma(c2, x, y); c3 = fma(c3, x, y);
            c4 = fma(c4, x, y); c5 = fma(c5, x, y); c6 = fma(c6, x, y); c7 = fma(c7, x, y);
        }
    }
    // Stored so the compiler cannot drop the loop; `out` has KILN_VEC floats per work-item.
    vstorev(((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)), get_global_id(0), out);
}

// Copy bandwidth: nv blocks of KILN_VEC floats, one block a work-item.
__kernel void bench_copy(const int nv, __global const float* x, __global float* y) {
    const int i = get_global_id(0);
    if (i < nv) vstorev(vloadv(i, x), i, y);
}

// ============================================================================================
// END SECTION matmul
// ============================================================================================
