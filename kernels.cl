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

// Conventions of this section. Sizes are int; every kernel guards its items against the sizes,
// because the launchers round the global size up to a multiple of the group size. Shapes are
// row-major [rows, cols]. Results never depend on scheduling: each output is combined in a fixed
// order (a serial loop on a CPU, a fixed tree over a fixed group size on a GPU); no atomics.

// ---- Vector width of element-wise kernels ---------------------------------------------------
// A work-item handles EW_W consecutive floats. On a CPU (PoCL) an explicit vector of the native
// width (KILN_VEC: float16 on AVX-512, float8 on AVX2) is what keeps these loop-free bodies on full SIMD (PoCL's own vectorizer stops at 8 wide, and float4 is the
// slowest choice there); on a GPU float4 keeps accesses coalesced with plenty of items. The Swift
// side mirrors this width in `KernelLibrary.elementwiseWidth`.
#ifdef KILN_GPU
#define EW_W 4
#define floatW float4
#define intW int4
#define vloadW vload4
#define vstoreW vstore4
#define convert_floatW convert_float4
#define EW_IOTA ((int4)(0, 1, 2, 3))
#elif KILN_VEC >= 16
#define EW_W 16
#define floatW float16
#define intW int16
#define vloadW vload16
#define vstoreW vstore16
#define convert_floatW convert_float16
#define EW_IOTA ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
// An AVX2 host (native width 8): 16-wide builtins (exp, erf, fma) become out-of-line calls there.
#define EW_W 8
#define floatW float8
#define intW int8
#define vloadW vload8
#define vstoreW vstore8
#define convert_floatW convert_float8
#define EW_IOTA ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#endif

// Work-group size of the GPU tree reductions (a power of two; local arrays are this long). The
// launchers pass it or a smaller power of two; kernels read get_local_size().
#define KILN_TREE 256

// ---- Element-wise binary ops with broadcasting ------------------------------------------------
// out[r, c] = a[r, c] OP b[r * bsr + c * bsc]. One kernel per operator covers every broadcast of
// the second operand: same shape (launched as a single row: bsr = 0, bsc = 1), row vector [C]
// (0, 1), column vector [R] (1, 0), 1-element buffer (0, 0). Work-item g covers EW_W columns of
// row g / chunks (chunks = ceil(cols / EW_W)); the last chunk of a row takes the scalar path.
#define EW_ADD(x, y) ((x) + (y))
#define EW_SUB(x, y) ((x) - (y))
#define EW_MUL(x, y) ((x) * (y))
#define EW_DIV(x, y) ((x) / (y))

#define EW_BINARY(name, OP)                                                                      \
__kernel void name(const int rows, const int cols, const int chunks, const int bsr,             \
                   const int bsc, __global const float* a, __global const float* b,             \
                   __global float* out) {                                                        \
    const int g = get_global_id(0);                                                              \
    if (g >= rows * chunks) return;                                                              \
    const int r = g / chunks;                                                                    \
    const int c0 = (g - r * chunks) * EW_W;                                                      \
    __global const float* arow = a + r * cols;                                                   \
    __global const float* brow = b + r * bsr;                                                    \
    __global float* orow = out + r * cols;                                                       \
    if (c0 + EW_W <= cols) {                                                                     \
        const floatW y = bsc ? vloadW(0, brow + c0) : (floatW)(brow[0]);                         \
        vstoreW(OP(vloadW(0, arow + c0), y), 0, orow + c0);                                      \
    } else {                                                                                     \
        for (int c = c0; c < cols; ++c) orow[c] = OP(arow[c], brow[c * bsc]);                    \
    }                                                                                            \
}

// out[i] = a[i] OP s for a scalar kernel argument s.
#define EW_BINARY_SCALAR(name, OP)                                                               \
__kernel void name(const int n, const float s, __global const float* a, __global float* out) {  \
    const int i0 = get_global_id(0) * EW_W;                                                      \
    if (i0 >= n) return;                                                                         \
    if (i0 + EW_W <= n) {                                                                        \
        vstoreW(OP(vloadW(0, a + i0), (floatW)(s)), 0, out + i0);                                \
    } else {                                                                                     \
        for (int i = i0; i < n; ++i) out[i] = OP(a[i], s);                                       \
    }                                                                                            \
}

EW_BINARY(ew_add, EW_ADD)
EW_BINARY(ew_sub, EW_SUB)
EW_BINARY(ew_mul, EW_MUL)
EW_BINARY(ew_div, EW_DIV)
EW_BINARY_SCALAR(ew_add_scalar, EW_ADD)
EW_BINARY_SCALAR(ew_sub_scalar, EW_SUB)
EW_BINARY_SCALAR(ew_mul_scalar, EW_MUL)
EW_BINARY_SCALAR(ew_div_scalar, EW_DIV)

// ---- Element-wise unary ops and activations ---------------------------------------------------
// y[i] = F(x[i]) with up to two float parameters p0, p1. F(v, p0, p1, T) is written once for
// both a floatW vector and a scalar float (T); OpenCL's built-ins are overloaded for both.
#define UN_NEG(v, p0, p1, T) (-(v))
#define UN_EXP(v, p0, p1, T) exp(v)
#define UN_LOG(v, p0, p1, T) log(v)
#define UN_SQRT(v, p0, p1, T) sqrt(v)
#define UN_POW(v, p0, p1, T) pow(v, p0)
// fmin/fmax rather than clamp(): clamp() is undefined when min > max.
#define UN_CLAMP(v, p0, p1, T) fmin(fmax(v, p0), p1)
// select(a, b, c) = c ? b : a per lane; a NaN input stays NaN (NaN < 0 is false), as in PyTorch.
#define UN_RELU(v, p0, p1, T) select(v, (T)(0.0f), (v) < 0.0f)
#define UN_LEAKY_RELU(v, p0, p1, T) select(v, (v) * (p0), (v) < 0.0f)
// 1 / (1 + e^-x): exp overflows to inf for x < -88 and the result is a correct 0, never NaN.
#define UN_SIGMOID(v, p0, p1, T) ((T)(1.0f) / ((T)(1.0f) + exp(-(v))))
// The built-in tanh: on PoCL as fast as exp-based forms (5.6 GB/s at float16, where an
// expm1-based form ran at 0.9) and accurate near 0.
#define UN_TANH(v, p0, p1, T) tanh(v)
// The exact GELU x * Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)) the normal CDF (PyTorch's default,
// not the tanh approximation). Phi comes from erfc (below), not from erf: PoCL's vector erf runs
// at 0.8 GB/s against 3.5, and 1 + erf(x) loses all precision in the negative tail.
#define UN_GELU(v, p0, p1, T) ((v) * KILN_PHI(v, T))

// erfc(z) for z >= 0 with a relative error below 1.2e-7 everywhere (Numerical Recipes' erfcc, a
// Chebyshev fit), from one exp; t = 1 / (1 + z / 2). Written for both float and floatW.
#define KILN_ERFC_T(z) (1.0f / (1.0f + 0.5f * (z)))
#define KILN_ERFC(z, t)                                                                          \
    ((t) * exp(-(z) * (z) - 1.26551223f + (t) * (1.00002368f + (t) * (0.37409196f + (t) *        \
     (0.09678418f + (t) * (-0.18628806f + (t) * (0.27886807f + (t) * (-1.13520398f + (t) *        \
     (1.48851587f + (t) * (-0.82215223f + (t) * 0.17087277f))))))))))
// Phi(x) = erfc(-x / sqrt 2) / 2: from the tail erfc(|x| / sqrt 2) directly for x <= 0 (accurate
// relative to the tiny result) and as 1 - tail for x > 0. Functions, not one macro, so the tail
// (an exp and a polynomial) is computed once: the macro form evaluated it twice.
#define KILN_PHI_FN(T)                                                                           \
inline T kiln_phi_##T(const T v) {                                                               \
    const T z = fabs(v) * M_SQRT1_2_F;                                                          \
    const T tail = 0.5f * KILN_ERFC(z, KILN_ERFC_T(z));                                          \
    return select(tail, 1.0f - tail, v > 0.0f);                                                  \
}
KILN_PHI_FN(float)
KILN_PHI_FN(float4)
KILN_PHI_FN(float8)
KILN_PHI_FN(float16)
// T is the (expanded) element type, float or floatW's vector type, which picks the function.
#define KILN_PHI(v, T) KILN_PHI_(v, T)
#define KILN_PHI_(v, T) kiln_phi_##T(v)

#define EW_UNARY(name, F)                                                                        \
__kernel void name(const int n, const float p0, const float p1, __global const float* x,        \
                   __global float* y) {                                                          \
    const int i0 = get_global_id(0) * EW_W;                                                      \
    if (i0 >= n) return;                                                                         \
    if (i0 + EW_W <= n) {                                                                        \
        vstoreW(F(vloadW(0, x + i0), (floatW)(p0), (floatW)(p1), floatW), 0, y + i0);           \
    } else {                                                                                     \
        for (int i = i0; i < n; ++i) y[i] = F(x[i], p0, p1, float);                              \
    }                                                                                            \
}

EW_UNARY(ew_neg, UN_NEG)
EW_UNARY(ew_exp, UN_EXP)
EW_UNARY(ew_log, UN_LOG)
EW_UNARY(ew_sqrt, UN_SQRT)
EW_UNARY(ew_pow, UN_POW)
EW_UNARY(ew_clamp, UN_CLAMP)
EW_UNARY(act_relu, UN_RELU)
EW_UNARY(act_leaky_relu, UN_LEAKY_RELU)
EW_UNARY(act_sigmoid, UN_SIGMOID)
EW_UNARY(act_tanh, UN_TANH)
EW_UNARY(act_gelu, UN_GELU)

// ---- Activation backward ----------------------------------------------------------------------
// dx[i] = G(dy[i], s[i]) (or dx[i] += ... when accumulate != 0), where s is the saved forward
// input x (relu, leaky relu, gelu) or the forward output y (sigmoid, tanh: cheaper, no exp).
#define BW_RELU(d, s, p, T) select((T)(0.0f), d, (s) > 0.0f)
#define BW_LEAKY_RELU(d, s, p, T) select((d) * (p), d, (s) > 0.0f)
#define BW_SIGMOID(d, s, p, T) ((d) * (s) * ((T)(1.0f) - (s)))
#define BW_TANH(d, s, p, T) ((d) * ((T)(1.0f) - (s) * (s)))
// d/dx GELU = Phi(x) + x phi(x), Phi the normal CDF, phi(x) = exp(-x^2/2) / sqrt(2 pi).
#define BW_GELU(d, s, p, T) ((d) * (KILN_PHI(s, T) + (s) * exp(-0.5f * (s) * (s)) * 0.3989422804014327f))

#define EW_BACKWARD(name, G)                                                                     \
__kernel void name(const int n, const float p, const int accumulate, __global const float* dy,  \
                   __global const float* s, __global float* dx) {                                \
    const int i0 = get_global_id(0) * EW_W;                                                      \
    if (i0 >= n) return;                                                                         \
    if (i0 + EW_W <= n) {                                                                        \
        floatW g = G(vloadW(0, dy + i0), vloadW(0, s + i0), p, floatW);                          \
        if (accumulate) g += vloadW(0, dx + i0);                                                 \
        vstoreW(g, 0, dx + i0);                                                                  \
    } else {                                                                                     \
        for (int i = i0; i < n; ++i) {                                                           \
            const float g = G(dy[i], s[i], p, float);                                           \
            dx[i] = accumulate ? dx[i] + g : g;                                                  \
        }                                                                                        \
    }                                                                                            \
}

EW_BACKWARD(act_relu_backward, BW_RELU)
EW_BACKWARD(act_leaky_relu_backward, BW_LEAKY_RELU)
EW_BACKWARD(act_sigmoid_backward, BW_SIGMOID)
EW_BACKWARD(act_tanh_backward, BW_TANH)
EW_BACKWARD(act_gelu_backward, BW_GELU)

// ---- Serial row helpers (CPU path) -------------------------------------------------------------
// Fixed-order reductions of n contiguous floats: four float16 accumulators over blocks of 64,
// then 16 at a time, then a fixed tree over the lanes, then the scalar tail. Deterministic for a
// given n. Compiled on every device; the CPU kernels use them.
#define KILN_LANES16(a, OP) \
    OP(OP(OP(OP((a).s0, (a).s8), OP((a).s4, (a).sc)), OP(OP((a).s2, (a).sa), OP((a).s6, (a).se))), \
       OP(OP(OP((a).s1, (a).s9), OP((a).s5, (a).sd)), OP(OP((a).s3, (a).sb), OP((a).s7, (a).sf))))
#define KILN_PLUS(a, b) ((a) + (b))

// sum x[i].
inline float kiln_row_sum(__global const float* x, const int n) {
    float16 a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 += vload16(0, x + i);
        a1 += vload16(0, x + i + 16);
        a2 += vload16(0, x + i + 32);
        a3 += vload16(0, x + i + 48);
    }
    for (; i + 16 <= n; i += 16) a0 += vload16(0, x + i);
    const float16 a = (a0 + a1) + (a2 + a3);
    float s = KILN_LANES16(a, KILN_PLUS);
    for (; i < n; ++i) s += x[i];
    return s;
}

// max x[i] (-INFINITY for n = 0; fmax skips NaN).
inline float kiln_row_max(__global const float* x, const int n) {
    float16 a0 = -INFINITY, a1 = -INFINITY, a2 = -INFINITY, a3 = -INFINITY;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = fmax(a0, vload16(0, x + i));
        a1 = fmax(a1, vload16(0, x + i + 16));
        a2 = fmax(a2, vload16(0, x + i + 32));
        a3 = fmax(a3, vload16(0, x + i + 48));
    }
    for (; i + 16 <= n; i += 16) a0 = fmax(a0, vload16(0, x + i));
    const float16 a = fmax(fmax(a0, a1), fmax(a2, a3));
    float m = KILN_LANES16(a, fmax);
    for (; i < n; ++i) m = fmax(m, x[i]);
    return m;
}

// The first index of the largest x[i] (0 when every value is -inf or NaN). Each lane keeps its
// first maximum (strict >); lanes are then merged by value, ties to the smaller index, so the
// result is the first maximum overall (PyTorch's tie rule). Writes the maximum to *best.
inline int kiln_row_argmax(__global const float* x, const int n, float* best) {
    float m = -INFINITY;
    int mi = 0, i = 0;
    if (n >= 16) {
        const int16 iota = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        float16 bv = vload16(0, x);
        int16 bi = iota;
        for (i = 16; i + 16 <= n; i += 16) {
            const float16 v = vload16(0, x + i);
            const int16 gt = v > bv;
            bv = select(bv, v, gt);
            bi = select(bi, iota + i, gt);
        }
        float vs[16];
        int is[16];
        vstore16(bv, 0, vs);
        vstore16(bi, 0, is);
        for (int l = 0; l < 16; ++l) {
            if (vs[l] > m || (vs[l] == m && is[l] < mi)) { m = vs[l]; mi = is[l]; }
        }
    }
    for (; i < n; ++i) {
        if (x[i] > m) { m = x[i]; mi = i; }
    }
    *best = m;
    return mi;
}

// sum exp(x[i] - m), and sum (x[i] - m) into *shifted (for label smoothing). Every term of the second
// sum is <= 0, so it has no cancellation even for logits of +-1e4.
inline float kiln_row_sum_exp(__global const float* x, const int n, const float m, float* shifted) {
    float16 e0 = 0.0f, e1 = 0.0f, d0 = 0.0f, d1 = 0.0f;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const float16 v0 = vload16(0, x + i) - m, v1 = vload16(0, x + i + 16) - m;
        e0 += exp(v0);
        e1 += exp(v1);
        d0 += v0;
        d1 += v1;
    }
    for (; i + 16 <= n; i += 16) {
        const float16 v = vload16(0, x + i) - m;
        e0 += exp(v);
        d0 += v;
    }
    const float16 e = e0 + e1, d = d0 + d1;
    float se = KILN_LANES16(e, KILN_PLUS), sd = KILN_LANES16(d, KILN_PLUS);
    for (; i < n; ++i) {
        se += exp(x[i] - m);
        sd += x[i] - m;
    }
    *shifted = sd;
    return se;
}

// ---- Tree helpers (GPU path) -------------------------------------------------------------------
// No early return ahead of a barrier, not even a uniform one for a whole group: PoCL mishandles it
// (work-item 0 then computes with stale values). Groups past the end of the data (the launcher
// rounds up, and may shrink a group) run on a clamped row and skip only their writes.
// Combine one value per work-item of a 1-D group into one, in a fixed tree over the group (its
// size a power of two). Every item of the group must call them; all get the result.
#define KILN_TREE_FN(name, OP)                                                                   \
inline float name(__local float* part, const float v) {                                         \
    const int lid = get_local_id(0);                                                             \
    part[lid] = v;                                                                               \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                \
    for (int s = get_local_size(0) / 2; s > 0; s >>= 1) {                                        \
        if (lid < s) part[lid] = OP(part[lid], part[lid + s]);                                   \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    }                                                                                            \
    const float result = part[0];                                                                \
    barrier(CLK_LOCAL_MEM_FENCE); /* part may be reused right after */                           \
    return result;                                                                               \
}
KILN_TREE_FN(kiln_tree_sum, KILN_PLUS)
KILN_TREE_FN(kiln_tree_max, fmax)

// Argmax over (value, index) pairs: the larger value wins, ties go to the smaller index. Returns
// the winning index and writes its value to *best.
inline int kiln_tree_argmax(__local float* pv, __local int* pi, const float v, const int i,
                            float* best) {
    const int lid = get_local_id(0);
    pv[lid] = v;
    pi[lid] = i;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s) {
            const float ov = pv[lid + s];
            const int oi = pi[lid + s];
            if (ov > pv[lid] || (ov == pv[lid] && oi < pi[lid])) { pv[lid] = ov; pi[lid] = oi; }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const int result = pi[0];
    *best = pv[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return result;
}

// ---- Reductions over [R, C] ------------------------------------------------------------------
// reduce_{sum,max}_rows: out[r] = scale * OP over row r       (result [R]; launch: see below)
// reduce_{sum,max}_cols: out[c] = scale * OP over column c    (result [C])
// reduce_{sum,max}_all:  out[g] = scale * OP over x[g*chunk, min(n, (g+1)*chunk))
//   (partials; a second launch with chunk = n over the partials gives the full reduction).
// Mean is the sum with scale = 1/count; max passes scale = 1.
// CPU launches: rows -> one item per row; cols -> one item per 16 columns; all -> one item per
// chunk. GPU launches: rows, all -> one group per row / chunk; cols -> one group per 32 columns
// (the group's items split the rows, then a tree over them).
#ifdef KILN_GPU

#define REDUCE_FAMILY(NAME, OP, IDENT, TREE)                                                     \
__kernel void reduce_##NAME##_rows(const int rows, const int cols, const float scale,           \
                                   __global const float* x, __global float* out) {               \
    __local float part[KILN_TREE];                                                               \
    const int g = get_group_id(0), r = min(g, rows - 1); /* see "No early return" above */       \
    const int L = get_local_size(0);                                                             \
    float acc = IDENT;                                                                           \
    for (int c = get_local_id(0); c < cols; c += L) acc = OP(acc, x[r * cols + c]);              \
    acc = TREE(part, acc);                                                                       \
    if (get_local_id(0) == 0 && g < rows) out[r] = scale * acc;                                  \
}                                                                                                \
__kernel void reduce_##NAME##_cols(const int rows, const int cols, const float scale,           \
                                   __global const float* x, __global float* out) {               \
    __local float part[KILN_TREE];                                                               \
    const int L = get_local_size(0), W = min(32, L), lanes = L / W;                              \
    const int lid = get_local_id(0), lx = lid % W, ly = lid / W;                                 \
    const int c0 = get_group_id(0) * W;                                                          \
    const int c = c0 + lx;                                                                       \
    float acc = IDENT;                                                                           \
    if (c < cols) for (int r = ly; r < rows; r += lanes) acc = OP(acc, x[r * cols + c]);         \
    part[lid] = acc;                                                                             \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                \
    for (int s = lanes / 2; s > 0; s >>= 1) {                                                    \
        if (ly < s) part[lid] = OP(part[lid], part[lid + s * W]);                                \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    }                                                                                            \
    if (ly == 0 && c < cols) out[c] = scale * part[lx];                                          \
}                                                                                                \
__kernel void reduce_##NAME##_all(const int n, const int chunk, const float scale,              \
                                  __global const float* x, __global float* out) {                \
    __local float part[KILN_TREE];                                                               \
    const int g = get_group_id(0);                                                               \
    const int start = g * chunk;                                                                 \
    const int end = min(n, start + chunk), L = get_local_size(0);                                \
    float acc = IDENT;                                                                           \
    for (int i = start + get_local_id(0); i < end; i += L) acc = OP(acc, x[i]);                  \
    acc = TREE(part, acc);                                                                       \
    if (get_local_id(0) == 0 && start < n) out[g] = scale * acc;                                 \
}

REDUCE_FAMILY(sum, KILN_PLUS, 0.0f, kiln_tree_sum)
REDUCE_FAMILY(max, fmax, -INFINITY, kiln_tree_max)

// out[r] = first index of the row maximum (Int32).
__kernel void reduce_argmax_rows(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    __local float pv[KILN_TREE];
    __local int pi[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    // Each item scans its columns in increasing order and keeps its first maximum; an item whose
    // values are all -inf reports index 0, which is right when the whole row is -inf.
    float m = -INFINITY;
    int mi = 0;
    for (int c = get_local_id(0); c < cols; c += get_local_size(0)) {
        const float v = x[r * cols + c];
        if (v > m) { m = v; mi = c; }
    }
    mi = kiln_tree_argmax(pv, pi, m, mi, &m);
    if (get_local_id(0) == 0 && g < rows) out[r] = mi;
}

// out[c] = first row index of the column maximum (Int32).
__kernel void reduce_argmax_cols(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    __local float pv[KILN_TREE];
    __local int pi[KILN_TREE];
    const int L = get_local_size(0), W = min(32, L), lanes = L / W;
    const int lid = get_local_id(0), lx = lid % W, ly = lid / W;
    const int c0 = get_group_id(0) * W;
    const int c = c0 + lx;
    float m = -INFINITY;
    int mi = 0;
    if (c < cols) {
        for (int r = ly; r < rows; r += lanes) {
            const float v = x[r * cols + c];
            if (v > m) { m = v; mi = r; }
        }
    }
    pv[lid] = m;
    pi[lid] = mi;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lanes / 2; s > 0; s >>= 1) {
        if (ly < s) {
            const float ov = pv[lid + s * W];
            const int oi = pi[lid + s * W];
            if (ov > pv[lid] || (ov == pv[lid] && oi < pi[lid])) { pv[lid] = ov; pi[lid] = oi; }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && c < cols) out[c] = pi[lx];
}

// Partial argmax of x[g*chunk, min(n, (g+1)*chunk)): out_v[g] = its maximum, out_i[g] = the index
// of its first maximum, or in_idx[that index] when has_idx (the second pass over partials).
__kernel void reduce_argmax_all(const int n, const int chunk, const int has_idx,
                                __global const float* x, __global const int* in_idx,
                                __global float* out_v, __global int* out_i) {
    __local float pv[KILN_TREE];
    __local int pi[KILN_TREE];
    const int g = get_group_id(0);
    const int start = g * chunk;
    const int end = min(n, start + chunk);
    float m = -INFINITY;
    int mi = start;
    for (int i = start + get_local_id(0); i < end; i += get_local_size(0)) {
        if (x[i] > m) { m = x[i]; mi = i; }
    }
    mi = kiln_tree_argmax(pv, pi, m, mi, &m);
    if (get_local_id(0) == 0 && start < n) {
        out_v[g] = m;
        out_i[g] = has_idx ? in_idx[mi] : mi;
    }
}

#else  // KILN_CPU: one work-item per row / per 16 columns / per chunk, serial vector loops.

#define REDUCE_FAMILY(NAME, OP, IDENT, ROWFN)                                                    \
__kernel void reduce_##NAME##_rows(const int rows, const int cols, const float scale,           \
                                   __global const float* x, __global float* out) {               \
    const int r = get_global_id(0);                                                              \
    if (r < rows) out[r] = scale * ROWFN(x + r * cols, cols);                                    \
}                                                                                                \
__kernel void reduce_##NAME##_cols(const int rows, const int cols, const float scale,           \
                                   __global const float* x, __global float* out) {               \
    const int c0 = get_global_id(0) * 16;                                                        \
    if (c0 >= cols) return;                                                                      \
    if (c0 + 16 <= cols) {                                                                       \
        /* 16 columns down all rows, four rows at a time into independent accumulators. */       \
        float16 a0 = IDENT, a1 = IDENT, a2 = IDENT, a3 = IDENT;                                  \
        int r = 0;                                                                               \
        for (; r + 4 <= rows; r += 4) {                                                          \
            a0 = OP(a0, vload16(0, x + r * cols + c0));                                          \
            a1 = OP(a1, vload16(0, x + (r + 1) * cols + c0));                                    \
            a2 = OP(a2, vload16(0, x + (r + 2) * cols + c0));                                    \
            a3 = OP(a3, vload16(0, x + (r + 3) * cols + c0));                                    \
        }                                                                                        \
        for (; r < rows; ++r) a0 = OP(a0, vload16(0, x + r * cols + c0));                        \
        vstore16(scale * OP(OP(a0, a1), OP(a2, a3)), 0, out + c0);                               \
    } else {                                                                                     \
        for (int c = c0; c < cols; ++c) {                                                        \
            float acc = IDENT;                                                                   \
            for (int r = 0; r < rows; ++r) acc = OP(acc, x[r * cols + c]);                       \
            out[c] = scale * acc;                                                                \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
__kernel void reduce_##NAME##_all(const int n, const int chunk, const float scale,              \
                                  __global const float* x, __global float* out) {                \
    const int g = get_global_id(0);                                                              \
    const int start = g * chunk;                                                                 \
    if (start < n) out[g] = scale * ROWFN(x + start, min(chunk, n - start));                     \
}

REDUCE_FAMILY(sum, KILN_PLUS, 0.0f, kiln_row_sum)
REDUCE_FAMILY(max, fmax, -INFINITY, kiln_row_max)

// out[r] = first index of the row maximum (Int32).
__kernel void reduce_argmax_rows(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    const int r = get_global_id(0);
    float m;
    if (r < rows) out[r] = kiln_row_argmax(x + r * cols, cols, &m);
}

// out[c] = first row index of the column maximum (Int32).
__kernel void reduce_argmax_cols(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    const int c0 = get_global_id(0) * 16;
    if (c0 >= cols) return;
    if (c0 + 16 <= cols) {
        float16 bv = vload16(0, x + c0);
        int16 bi = 0;
        for (int r = 1; r < rows; ++r) {
            const float16 v = vload16(0, x + r * cols + c0);
            const int16 gt = v > bv;  /* strict: the first maximum stays */
            bv = select(bv, v, gt);
            bi = select(bi, (int16)(r), gt);
        }
        vstore16(bi, 0, out + c0);
    } else {
        for (int c = c0; c < cols; ++c) {
            float m = x[c];
            int mi = 0;
            for (int r = 1; r < rows; ++r) {
                if (x[r * cols + c] > m) { m = x[r * cols + c]; mi = r; }
            }
            out[c] = mi;
        }
    }
}

// Partial argmax of x[g*chunk, min(n, (g+1)*chunk)): out_v[g] = its maximum, out_i[g] = the index
// of its first maximum, or in_idx[that index] when has_idx (the second pass over partials).
__kernel void reduce_argmax_all(const int n, const int chunk, const int has_idx,
                                __global const float* x, __global const int* in_idx,
                                __global float* out_v, __global int* out_i) {
    const int g = get_global_id(0);
    const int start = g * chunk;
    if (start >= n) return;
    float m;
    const int i = start + kiln_row_argmax(x + start, min(chunk, n - start), &m);
    out_v[g] = m;
    out_i[g] = has_idx ? in_idx[i] : i;
}

#endif  // KILN_GPU / KILN_CPU

// Exact integer sum of x[g*chunk, min(n, (g+1)*chunk)) into out[g]; with chunk >= n, one item
// sums everything (the second pass over partial counts). Integer sums are exact in any order.
__kernel void reduce_sum_i32_all(const int n, const int chunk, __global const int* x,
                                 __global int* out) {
    const int g = get_global_id(0);
    const int start = g * chunk;
    if (start >= n) return;
    const int end = min(n, start + chunk);
    int s = 0;
    for (int i = start; i < end; ++i) s += x[i];
    out[g] = s;
}

// ---- Softmax and log-softmax over rows of [R, C] --------------------------------------------
// y = exp(x - max) / sum exp(x - max);  log-softmax y = (x - max) - log sum exp(x - max), computed
// directly (never log of the softmax), so rows of +-1e4 or of equal values stay finite. y may be
// x (in place). Backward, per row: softmax dx = y (dy - sum dy y); log-softmax dx = dy - exp(y) sum dy,
// where y is the forward output; accumulate != 0 adds to dx instead of overwriting it.
// CPU: one work-item per row. GPU: one group per row, trees for the max and the sums.
#ifdef KILN_GPU

__kernel void softmax_rows(const int rows, const int cols, __global const float* x,
                           __global float* y) {
    __local float part[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0);
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    float m = -INFINITY;
    for (int c = lid; c < cols; c += L) m = fmax(m, xr[c]);
    m = kiln_tree_max(part, m);
    float s = 0.0f;
    for (int c = lid; c < cols; c += L) s += exp(xr[c] - m);
    const float inv = 1.0f / kiln_tree_sum(part, s);
    if (g >= rows) return;  // after the last barrier
    for (int c = lid; c < cols; c += L) yr[c] = exp(xr[c] - m) * inv;
}

__kernel void log_softmax_rows(const int rows, const int cols, __global const float* x,
                               __global float* y) {
    __local float part[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0);
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    float m = -INFINITY;
    for (int c = lid; c < cols; c += L) m = fmax(m, xr[c]);
    m = kiln_tree_max(part, m);
    float s = 0.0f;
    for (int c = lid; c < cols; c += L) s += exp(xr[c] - m);
    const float ls = log(kiln_tree_sum(part, s));
    if (g >= rows) return;  // after the last barrier
    for (int c = lid; c < cols; c += L) yr[c] = (xr[c] - m) - ls;
}

__kernel void softmax_backward_rows(const int rows, const int cols, const int accumulate,
                                    __global const float* dy, __global const float* y,
                                    __global float* dx) {
    __local float part[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0), o = r * cols;
    float d = 0.0f;
    for (int c = lid; c < cols; c += L) d += dy[o + c] * y[o + c];
    d = kiln_tree_sum(part, d);
    if (g >= rows) return;  // after the last barrier
    for (int c = lid; c < cols; c += L) {
        const float g = y[o + c] * (dy[o + c] - d);
        dx[o + c] = accumulate ? dx[o + c] + g : g;
    }
}

__kernel void log_softmax_backward_rows(const int rows, const int cols, const int accumulate,
                                        __global const float* dy, __global const float* y,
                                        __global float* dx) {
    __local float part[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0), o = r * cols;
    float s = 0.0f;
    for (int c = lid; c < cols; c += L) s += dy[o + c];
    s = kiln_tree_sum(part, s);
    if (g >= rows) return;  // after the last barrier
    for (int c = lid; c < cols; c += L) {
        const float g = dy[o + c] - exp(y[o + c]) * s;
        dx[o + c] = accumulate ? dx[o + c] + g : g;
    }
}

#else  // KILN_CPU

__kernel void softmax_rows(const int rows, const int cols, __global const float* x,
                           __global float* y) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    const float m = kiln_row_max(xr, cols);
    // e = exp(x - m) goes to y while it is summed, so each exp is computed once.
    float16 acc = 0.0f;
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        const float16 e = exp(vload16(0, xr + c) - m);
        vstore16(e, 0, yr + c);
        acc += e;
    }
    float s = KILN_LANES16(acc, KILN_PLUS);
    for (; c < cols; ++c) {
        const float e = exp(xr[c] - m);
        yr[c] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (c = 0; c + 16 <= cols; c += 16) vstore16(vload16(0, yr + c) * inv, 0, yr + c);
    for (; c < cols; ++c) yr[c] *= inv;
}

__kernel void log_softmax_rows(const int rows, const int cols, __global const float* x,
                               __global float* y) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    const float m = kiln_row_max(xr, cols);
    float shifted;
    const float ls = log(kiln_row_sum_exp(xr, cols, m, &shifted));
    int c = 0;
    for (; c + 16 <= cols; c += 16) vstore16((vload16(0, xr + c) - m) - ls, 0, yr + c);
    for (; c < cols; ++c) yr[c] = (xr[c] - m) - ls;
}

// sum a[i] b[i] in a fixed order (two float16 accumulators, then the scalar tail).
inline float kiln_row_dot(__global const float* a, __global const float* b, const int n) {
    float16 a0 = 0.0f, a1 = 0.0f;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 += vload16(0, a + i) * vload16(0, b + i);
        a1 += vload16(0, a + i + 16) * vload16(0, b + i + 16);
    }
    for (; i + 16 <= n; i += 16) a0 += vload16(0, a + i) * vload16(0, b + i);
    const float16 acc = a0 + a1;
    float s = KILN_LANES16(acc, KILN_PLUS);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

__kernel void softmax_backward_rows(const int rows, const int cols, const int accumulate,
                                    __global const float* dy, __global const float* y,
                                    __global float* dx) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    const int o = r * cols;
    const float d = kiln_row_dot(dy + o, y + o, cols);
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        float16 g = vload16(0, y + o + c) * (vload16(0, dy + o + c) - d);
        if (accumulate) g += vload16(0, dx + o + c);
        vstore16(g, 0, dx + o + c);
    }
    for (; c < cols; ++c) {
        const float g = y[o + c] * (dy[o + c] - d);
        dx[o + c] = accumulate ? dx[o + c] + g : g;
    }
}

__kernel void log_softmax_backward_rows(const int rows, const int cols, const int accumulate,
                                        __global const float* dy, __global const float* y,
                                        __global float* dx) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    const int o = r * cols;
    const float s = kiln_row_sum(dy + o, cols);
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        float16 g = vload16(0, dy + o + c) - exp(vload16(0, y + o + c)) * s;
        if (accumulate) g += vload16(0, dx + o + c);
        vstore16(g, 0, dx + o + c);
    }
    for (; c < cols; ++c) {
        const float g = dy[o + c] - exp(y[o + c]) * s;
        dx[o + c] = accumulate ? dx[o + c] + g : g;
    }
}

#endif  // KILN_GPU / KILN_CPU

// ---- Cross-entropy from logits, fused with its gradient ---------------------------------------
// Row i of logits [N, C], target t = targets[i], smoothing eps (PyTorch's definition: the target
// distribution is q = (1 - eps) onehot(t) + eps / C):
//   loss[i] = -sum_c q_c logp_c = -(1 - eps) logp_t - (eps / C) sum_c logp_c,
//   logp_c = (x_c - max) - log sum exp(x - max)   (finite for any finite logits),
//   grad[i, c] = gscale * (softmax_c - q_c)       (gscale = upstream gradient / N, from the caller).
// A target outside [0, C) is never read through: its row gets loss NaN (so the mean is NaN, loudly)
// and, when want_grad, a zero gradient row. grad may be the logits buffer (each element is read
// before it is overwritten; x_t is read first). The mean over rows is a second, deterministic
// launch of reduce_sum_all with scale 1/N.
// -(1 - eps) logp_t - (eps / C) sum logp_c from xt = x_t - max, ls = log sum exp(x - max) and
// d = sum (x_c - max). The smoothing term is skipped at eps = 0, where d may be -inf (0 * inf = NaN).
inline float kiln_xent_loss(const float eps, const int cols, const float xt, const float ls,
                            const float d) {
    const float target = -(1.0f - eps) * (xt - ls);
    return eps > 0.0f ? target - (eps / cols) * (d - cols * ls) : target;
}

#ifdef KILN_GPU

__kernel void xent_fused(const int rows, const int cols, const float eps, const float gscale,
                         const int want_grad, __global const float* logits,
                         __global const int* targets, __global float* loss,
                         __global float* grad) {
    __local float part[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0);
    __global const float* xr = logits + r * cols;
    const int t = targets[r];
    const int valid = t >= 0 && t < cols;
    const float xt = valid ? xr[t] : 0.0f;
    float m = -INFINITY;
    for (int c = lid; c < cols; c += L) m = fmax(m, xr[c]);
    m = kiln_tree_max(part, m);
    float s = 0.0f, d = 0.0f;
    for (int c = lid; c < cols; c += L) {
        s += exp(xr[c] - m);
        d += xr[c] - m;
    }
    const float ls = log(kiln_tree_sum(part, s));
    d = kiln_tree_sum(part, d);
    if (g >= rows) return;  // after the last barrier
    if (lid == 0) {
        loss[r] = valid ? kiln_xent_loss(eps, cols, xt - m, ls, d) : NAN;
    }
    if (!want_grad) return;
    __global float* gr = grad + r * cols;
    const float off = eps / cols;
    for (int c = lid; c < cols; c += L) {
        const float q = c == t ? 1.0f - eps + off : off;
        gr[c] = valid ? gscale * (exp((xr[c] - m) - ls) - q) : 0.0f;
    }
}

#else  // KILN_CPU

__kernel void xent_fused(const int rows, const int cols, const float eps, const float gscale,
                         const int want_grad, __global const float* logits,
                         __global const int* targets, __global float* loss,
                         __global float* grad) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = logits + r * cols;
    const int t = targets[r];
    const int valid = t >= 0 && t < cols;
    const float xt = valid ? xr[t] : 0.0f;
    const float m = kiln_row_max(xr, cols);
    float d;
    const float ls = log(kiln_row_sum_exp(xr, cols, m, &d));
    loss[r] = valid ? kiln_xent_loss(eps, cols, xt - m, ls, d) : NAN;
    if (!want_grad) return;
    __global float* gr = grad + r * cols;
    const float off = eps / cols;
    // Every class first gets softmax - eps/C; the target's extra -(1 - eps) is fixed up after.
    const float scale = valid ? gscale : 0.0f;
    int c = 0;
    for (; c + 16 <= cols; c += 16) vstore16(scale * (exp((vload16(0, xr + c) - m) - ls) - off), 0, gr + c);
    for (; c < cols; ++c) gr[c] = scale * (exp((xr[c] - m) - ls) - off);
    if (valid) gr[t] = gscale * (exp((xt - m) - ls) - (1.0f - eps + off));
}

#endif  // KILN_GPU / KILN_CPU

// Number of i in the chunk [g*chunk, min(n, (g+1)*chunk)) with pred[i] == target[i], into out[g]
// (pred from reduce_argmax_rows). Partial counts are summed by reduce_sum_i32_all.
__kernel void xent_count_correct(const int n, const int chunk, __global const int* pred,
                                 __global const int* targets, __global int* out) {
    const int g = get_global_id(0);
    const int start = g * chunk;
    if (start >= n) return;
    const int end = min(n, start + chunk);
    int s = 0;
    for (int i = start; i < end; ++i) s += pred[i] == targets[i];
    out[g] = s;
}

// ---- Data movement -----------------------------------------------------------------------------
// y [C, R] = transpose of x [R, C]. CPU: one work-item per 16 x 16 tile (both the reads and the
// writes stay within 16 cache lines); GPU: one item per output element, writes coalesced.
#ifdef KILN_GPU
__kernel void transpose_2d(const int rows, const int cols, __global const float* x,
                        __global float* y) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    const int c = i / rows, r = i - c * rows;
    y[i] = x[r * cols + c];
}
#else
__kernel void transpose_2d(const int rows, const int cols, __global const float* x,
                        __global float* y) {
    const int tilesC = (cols + 15) / 16;
    const int g = get_global_id(0);
    if (g >= tilesC * ((rows + 15) / 16)) return;
    const int r0 = g / tilesC * 16, c0 = (g % tilesC) * 16;
    const int r1 = min(rows, r0 + 16), c1 = min(cols, c0 + 16);
    for (int c = c0; c < c1; ++c) {
        for (int r = r0; r < r1; ++r) y[c * rows + r] = x[r * cols + c];
    }
}
#endif

// A [rows, cols] block: dst[dst_off + r*dst_ld + c] = src[src_off + r*src_ld + c]. A plain copy
// with offsets is one row. Same layout as the binary ops: an item per EW_W columns of a row.
__kernel void copy_2d(const int rows, const int cols, const int chunks, const int src_off,
                        const int src_ld, const int dst_off, const int dst_ld,
                        __global const float* src, __global float* dst) {
    const int g = get_global_id(0);
    if (g >= rows * chunks) return;
    const int r = g / chunks;
    const int c0 = (g - r * chunks) * EW_W;
    __global const float* s = src + src_off + r * src_ld;
    __global float* d = dst + dst_off + r * dst_ld;
    if (c0 + EW_W <= cols) {
        vstoreW(vloadW(0, s + c0), 0, d + c0);
    } else {
        for (int c = c0; c < cols; ++c) d[c] = s[c];
    }
}

// dst[i, :] = src[idx[i], :] for src [m, cols], dst [n, cols]. An index outside [0, m) is never
// read through: its row is filled with zeros.
__kernel void gather_rows(const int n, const int cols, const int chunks, const int m,
                          __global const int* idx, __global const float* src,
                          __global float* dst) {
    const int g = get_global_id(0);
    if (g >= n * chunks) return;
    const int i = g / chunks;
    const int c0 = (g - i * chunks) * EW_W;
    const int j = idx[i];
    const int valid = j >= 0 && j < m;
    __global const float* s = src + (valid ? j : 0) * cols;
    __global float* d = dst + i * cols;
    if (c0 + EW_W <= cols) {
        vstoreW(valid ? vloadW(0, s + c0) : (floatW)(0.0f), 0, d + c0);
    } else {
        for (int c = c0; c < cols; ++c) d[c] = valid ? s[c] : 0.0f;
    }
}

// dst[i] = src[idx[i]] for Int32 values (labels of a shuffled batch); an index outside [0, m)
// gives -1, an out-of-range label that the cross-entropy kernel then flags.
__kernel void gather_i32(const int n, const int m, __global const int* idx,
                         __global const int* src, __global int* dst) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int j = idx[i];
    dst[i] = j >= 0 && j < m ? src[j] : -1;
}

// out [n, classes] = one-hot of labels [n]; a label outside [0, classes) gives a zero row.
__kernel void one_hot(const int n, const int classes, const int chunks,
                      __global const int* labels, __global float* out) {
    const int g = get_global_id(0);
    if (g >= n * chunks) return;
    const int i = g / chunks;
    const int c0 = (g - i * chunks) * EW_W;
    const int label = labels[i];
    __global float* o = out + i * classes;
    if (c0 + EW_W <= classes) {
        // An int-vector comparison gives -1 for true: negate to 1 before converting.
        vstoreW(convert_floatW(-(EW_IOTA + c0 == (intW)(label))), 0, o + c0);
    } else {
        for (int c = c0; c < classes; ++c) o[c] = c == label ? 1.0f : 0.0f;
    }
}

// ============================================================================================
// END SECTION elementwise-reductions-softmax
// ============================================================================================

// ============================================================================================
// SECTION norm-random-optim: batch norm, counter-based random numbers, dropout, optimizers
// ============================================================================================

// Helpers of this section are prefixed nro_ / NRO_ (and PHILOX_) so they never clash with others.
//
// Work per item. On a CPU (PoCL) an element-wise work-item takes NRO_W = 16 consecutive floats as
// one float16: PoCL only vectorizes loops when the width is written out, and float16 is where its
// element-wise kernels reach copy bandwidth. On a GPU a work-item takes one float, so neighbouring
// work-items touch neighbouring addresses (coalesced). The Swift launchers use the same widths.
#ifdef KILN_GPU
#define NRO_W 1
typedef float nro_v;
#else
#define NRO_W 16
typedef float16 nro_v;
#endif

// 16 floats p[i .. i+16), lanes at or past n read as 0 (so the last, partial item stays in bounds).
inline float16 nro_load16(__global const float* p, int i, int n) {
    if (i + 16 <= n) return vload16(0, p + i);
    float t[16];
    for (int k = 0; k < 16; ++k) t[k] = (i + k < n) ? p[i + k] : 0.0f;
    return vload16(0, t);
}

// Stores the lanes of v that fall below n at p[i ..].
inline void nro_store16(float16 v, __global float* p, int i, int n) {
    if (i + 16 <= n) { vstore16(v, 0, p + i); return; }
    float t[16];
    vstore16(v, 0, t);
    for (int k = 0; k < 16 && i + k < n; ++k) p[i + k] = t[k];
}

// NRO_W floats at p[i ..]; callers guarantee i < n.
#ifdef KILN_GPU
#define nro_load(p, i, n) ((p)[(i)])
#define nro_store(v, p, i, n) ((p)[(i)] = (v))
#else
#define nro_load(p, i, n) nro_load16((p), (i), (n))
#define nro_store(v, p, i, n) nro_store16((v), (p), (i), (n))
#endif

// ---------------------------------------------------------------------------------------------
// Batch norm over x[N, C] (row-major; statistics per feature c over the N rows).
//
// Training forward = bn_partial_stats_f32 (per chunk of rows: mean and M2 = sum (x - mean)^2, a
// two-pass over rows still in cache) + bn_finalize_stats_f32 (per feature: merges the chunks in
// order with Chan's parallel formula, writes mean/invstd, updates the running statistics, and
// the coefficients of the element-wise pass) + bn_apply_f32. Never E[x^2] - E[x]^2: a feature of
// mean 1e4 and spread 1 would lose every digit. Eval = bn_eval_coefficients_f32 + bn_apply_f32.
// Backward = bn_backward_partial_f32 (per chunk: sum dy, sum dy*(x - mean))
// + bn_backward_finalize_f32 (per feature: dgamma, dbeta, and the dx coefficients)
// + bn_backward_dx_f32. Chunk results are merged in a fixed order: deterministic, no atomics.
//
// Reductions. CPU: a work-item owns a block of 16 features (one float16 per row) and a chunk of
// R rows. GPU: a work-group owns F features (local dim 0) and a chunk of rows read by L lanes
// (local dim 1, stride L), summed by a local-memory tree over the lanes.
// Element-wise passes run flat over the N*C elements (NRO_W per item, feature = index % C), with
// per-feature coefficients precomputed, so they stream like a copy.
// ---------------------------------------------------------------------------------------------

#ifdef KILN_GPU
#define NRO_BN_MAX_GROUP 256
// Sum of v over the L lanes (local dim 1) of each feature column f; every item gets its column's
// sum. The tree order is fixed, so the result is deterministic. All items must call it.
inline float nro_bn_tree_sum(__local float* red, float v, int f, int lane, int F, int L) {
    red[lane * F + f] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = L / 2; s > 0; s >>= 1) {
        if (lane < s) red[lane * F + f] += red[(lane + s) * F + f];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = red[f];
    barrier(CLK_LOCAL_MEM_FENCE);  // red is reused by the next call
    return total;
}
#endif

// partial[(2*chunk) * C + c] = mean of rows [chunk*R, min(N, chunk*R + R)) of feature c,
// partial[(2*chunk + 1) * C + c] = sum over those rows of (x - chunk mean)^2.
__kernel void bn_partial_stats_f32(const int N, const int C, const int R,
                                   __global const float* x, __global float* partial) {
    const int chunks = (N + R - 1) / R;
#ifdef KILN_GPU
    const int F = get_local_size(0), L = get_local_size(1);
    const int f = get_local_id(0), lane = get_local_id(1);
    const int c = get_group_id(0) * F + f, chunk = get_group_id(1);
    if (chunk >= chunks) return;  // uniform over the group
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    __local float red[NRO_BN_MAX_GROUP];
    // Sums of x - shift (the chunk's first row) stay small: the mean keeps its digits when
    // |mean| >> spread, and a constant feature gives its value exactly.
    const float shift = c < C ? x[r0 * C + c] : 0.0f;
    float s = 0.0f;
    if (c < C) for (int r = r0 + lane; r < r1; r += L) s += x[r * C + c] - shift;
    const float mean = shift + nro_bn_tree_sum(red, s, f, lane, F, L) / (float)(r1 - r0);
    float q = 0.0f;
    if (c < C) for (int r = r0 + lane; r < r1; r += L) { const float d = x[r * C + c] - mean; q += d * d; }
    const float m2 = nro_bn_tree_sum(red, q, f, lane, F, L);
    if (lane == 0 && c < C) {
        partial[(2 * chunk) * C + c] = mean;
        partial[(2 * chunk + 1) * C + c] = m2;
    }
#else
    const int c0 = get_global_id(0) * 16, chunk = get_global_id(1);
    if (c0 >= C || chunk >= chunks) return;
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    // Pass 1: the chunk's mean, from sums of x - shift (the chunk's first row), which stay small:
    // the mean keeps its digits when |mean| >> spread, and a constant feature gives its value
    // exactly. Two accumulators halve the dependent-add chain.
    const float16 shift = nro_load16(x + r0 * C, c0, C);
    float16 s0 = 0.0f, s1 = 0.0f;
    int r = r0;
    for (; r + 1 < r1; r += 2) {
        s0 += nro_load16(x + r * C, c0, C) - shift;
        s1 += nro_load16(x + (r + 1) * C, c0, C) - shift;
    }
    if (r < r1) s0 += nro_load16(x + r * C, c0, C) - shift;
    const float16 mean = shift + (s0 + s1) / (float)(r1 - r0);
    // Pass 2: squared deviations from the chunk mean; the chunk (R rows x 64 B) is still in cache.
    float16 q0 = 0.0f, q1 = 0.0f;
    for (r = r0; r + 1 < r1; r += 2) {
        const float16 d0 = nro_load16(x + r * C, c0, C) - mean;
        const float16 d1 = nro_load16(x + (r + 1) * C, c0, C) - mean;
        q0 += d0 * d0;
        q1 += d1 * d1;
    }
    if (r < r1) { const float16 d = nro_load16(x + r * C, c0, C) - mean; q0 += d * d; }
    nro_store16(mean, partial + (2 * chunk) * C, c0, C);
    nro_store16(q0 + q1, partial + (2 * chunk + 1) * C, c0, C);
#endif
}

// One item per feature: merges the chunk statistics in chunk order (Chan et al.):
//   delta = mean_b - mean_a, mean = mean_a + delta * n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n.
// Writes save_mean, save_invstd = 1 / sqrt(var + eps) with the biased var = M2 / N, and when
// update_running != 0: running = (1 - momentum) * running + momentum * batch statistic, with the
// unbiased variance M2 / (N - 1) for running_var (PyTorch). The launcher rejects N = 1.
// coef = [mean | scale | shift] (C each) for bn_apply_f32: scale = gamma * invstd, shift = beta
// (affine), or invstd and 0. gamma and beta are not read when affine = 0.
__kernel void bn_finalize_stats_f32(const int N, const int C, const int R, __global const float* partial,
                                    const float eps, const float momentum, const int update_running,
                                    __global float* save_mean, __global float* save_invstd,
                                    __global float* running_mean, __global float* running_var,
                                    const int affine, __global const float* gamma, __global const float* beta,
                                    __global float* coef) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const int chunks = (N + R - 1) / R;
    float mean = partial[c], m2 = partial[C + c];
    int count = min(R, N);
    for (int k = 1; k < chunks; ++k) {
        const int nb = min(R, N - k * R), n = count + nb;
        const float delta = partial[(2 * k) * C + c] - mean;
        mean += delta * ((float)nb / (float)n);
        m2 += partial[(2 * k + 1) * C + c] + delta * delta * ((float)count * ((float)nb / (float)n));
        count = n;
    }
    const float invstd = 1.0f / sqrt(m2 / (float)N + eps);
    save_mean[c] = mean;
    save_invstd[c] = invstd;
    if (update_running) {
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (m2 / (float)(N - 1));
    }
    coef[c] = mean;
    coef[C + c] = affine ? gamma[c] * invstd : invstd;
    coef[2 * C + c] = affine ? beta[c] : 0.0f;
}

// Eval: coef = [running_mean | scale | shift] with invstd = 1 / sqrt(running_var + eps), as above.
__kernel void bn_eval_coefficients_f32(const int C, __global const float* running_mean,
                                       __global const float* running_var, const float eps, const int affine,
                                       __global const float* gamma, __global const float* beta,
                                       __global float* coef) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const float invstd = 1.0f / sqrt(running_var[c] + eps);
    coef[c] = running_mean[c];
    coef[C + c] = affine ? gamma[c] * invstd : invstd;
    coef[2 * C + c] = affine ? beta[c] : 0.0f;
}

// NRO_W per-feature values v[f], v[f + 1], ... for the elements from index i on (f = i % C),
// wrapping to feature 0 at the end of a row (only when C is not a multiple of 16).
inline nro_v nro_feature(__global const float* v, int f, int C) {
#ifdef KILN_GPU
    return v[f];
#else
    if (f + 16 <= C) return vload16(0, v + f);
    float t[16];
    for (int k = 0; k < 16; ++k) t[k] = v[(f + k) % C];
    return vload16(0, t);
#endif
}

// y = (x - mean) * scale + shift, coef = [mean | scale | shift] per feature, over all n = N*C
// elements. (x - mean) stays explicit: folding it into x * scale + (shift - mean * scale)
// cancels badly when |mean| >> std.
__kernel void bn_apply_f32(const int n, const int C, __global const float* x, __global const float* coef,
                           __global float* y) {
    const int i = get_global_id(0) * NRO_W;
    if (i >= n) return;
    const int f = i % C;
    const nro_v mean = nro_feature(coef, f, C), scale = nro_feature(coef + C, f, C);
    const nro_v shift = nro_feature(coef + 2 * C, f, C);
    nro_store((nro_load(x, i, n) - mean) * scale + shift, y, i, n);
}

// partial[(2*chunk) * C + c] = sum of dy, partial[(2*chunk + 1) * C + c] = sum of dy * (x - mean)
// over the rows of the chunk (same chunking as bn_partial_stats_f32).
__kernel void bn_backward_partial_f32(const int N, const int C, const int R, __global const float* x,
                                      __global const float* dy, __global const float* mean,
                                      __global float* partial) {
    const int chunks = (N + R - 1) / R;
#ifdef KILN_GPU
    const int F = get_local_size(0), L = get_local_size(1);
    const int f = get_local_id(0), lane = get_local_id(1);
    const int c = get_group_id(0) * F + f, chunk = get_group_id(1);
    if (chunk >= chunks) return;  // uniform over the group
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    __local float red[NRO_BN_MAX_GROUP];
    float sdy = 0.0f, sdyx = 0.0f;
    if (c < C) {
        const float m = mean[c];
        for (int r = r0 + lane; r < r1; r += L) {
            const float g = dy[r * C + c];
            sdy += g;
            sdyx += g * (x[r * C + c] - m);
        }
    }
    sdy = nro_bn_tree_sum(red, sdy, f, lane, F, L);
    sdyx = nro_bn_tree_sum(red, sdyx, f, lane, F, L);
    if (lane == 0 && c < C) {
        partial[(2 * chunk) * C + c] = sdy;
        partial[(2 * chunk + 1) * C + c] = sdyx;
    }
#else
    const int c0 = get_global_id(0) * 16, chunk = get_global_id(1);
    if (c0 >= C || chunk >= chunks) return;
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    const float16 m = nro_load16(mean, c0, C);
    float16 a0 = 0.0f, a1 = 0.0f, b0 = 0.0f, b1 = 0.0f;
    int r = r0;
    for (; r + 1 < r1; r += 2) {
        const float16 g0 = nro_load16(dy + r * C, c0, C), g1 = nro_load16(dy + (r + 1) * C, c0, C);
        a0 += g0;
        a1 += g1;
        b0 += g0 * (nro_load16(x + r * C, c0, C) - m);
        b1 += g1 * (nro_load16(x + (r + 1) * C, c0, C) - m);
    }
    if (r < r1) {
        const float16 g = nro_load16(dy + r * C, c0, C);
        a0 += g;
        b0 += g * (nro_load16(x + r * C, c0, C) - m);
    }
    nro_store16(a0 + a1, partial + (2 * chunk) * C, c0, C);
    nro_store16(b0 + b1, partial + (2 * chunk + 1) * C, c0, C);
#endif
}

// One item per feature: sums the chunks in order, then with xhat = (x - mean) * invstd:
//   dbeta = sum dy, dgamma = sum dy * xhat (written when affine != 0),
//   dx = k * dy - k * mean(dy) - k * invstd * mean(dy * xhat) * (x - mean), k = gamma * invstd,
// which is gamma * invstd / N * (N dy - sum dy - xhat * sum dy xhat). The per-feature
// coefficients go to coef = [mean | k | k * mean(dy) | k * invstd * mean(dy * xhat)].
__kernel void bn_backward_finalize_f32(const int N, const int C, const int R, __global const float* partial,
                                       __global const float* mean, __global const float* invstd, const int affine,
                                       __global const float* gamma, __global float* dgamma,
                                       __global float* dbeta, __global float* coef) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const int chunks = (N + R - 1) / R;
    float sdy = 0.0f, sdyx = 0.0f;
    for (int k = 0; k < chunks; ++k) {
        sdy += partial[(2 * k) * C + c];
        sdyx += partial[(2 * k + 1) * C + c];
    }
    const float is = invstd[c], sdyxhat = sdyx * is;
    if (affine) {
        dgamma[c] = sdyxhat;
        dbeta[c] = sdy;
    }
    const float k = affine ? gamma[c] * is : is;
    coef[c] = mean[c];
    coef[C + c] = k;
    coef[2 * C + c] = k * (sdy / (float)N);
    coef[3 * C + c] = k * is * (sdyxhat / (float)N);
}

// dx = k * dy - k * mean(dy) - k * invstd * mean(dy * xhat) * (x - mean) over all n = N*C
// elements, coefficients from bn_backward_finalize_f32.
__kernel void bn_backward_dx_f32(const int n, const int C, __global const float* x, __global const float* dy,
                                 __global const float* coef, __global float* dx) {
    const int i = get_global_id(0) * NRO_W;
    if (i >= n) return;
    const int f = i % C;
    const nro_v mean = nro_feature(coef, f, C), k = nro_feature(coef + C, f, C);
    const nro_v kdy = nro_feature(coef + 2 * C, f, C), kxhat = nro_feature(coef + 3 * C, f, C);
    nro_store(k * nro_load(dy, i, n) - kdy - kxhat * (nro_load(x, i, n) - mean), dx, i, n);
}

// ---------------------------------------------------------------------------------------------
// Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11). Stateless, so every element is computed independently and a run is
// identical on every device.
//
// Stream layout (the Swift launchers and tests rely on it):
//   key     = (seed_lo, seed_hi)                      -- the 64-bit seed's low and high halves
//   counter = (block_lo, block_hi, offset_lo, offset_hi)
//   element i of a fill uses word (i % 4) of the Philox output for block = i / 4 (64-bit).
// So (seed, offset) names a stream; callers take a fresh offset per call for fresh numbers.
// uint32 -> float in [0, 1): u = (float)(w >> 8) * 2^-24 (24 bits, exact; max 1 - 2^-24).
// ---------------------------------------------------------------------------------------------

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// One Philox round on counter words c0..c3 of type T (uint, or a uint vector of independent
// lanes) with key words k0, k1 (uint).
#define PHILOX_ROUND(T, c0, c1, c2, c3, k0, k1) do { \
        const T hi0_ = mul_hi((T)PHILOX_M0, c0), lo0_ = (T)PHILOX_M0 * c0; \
        const T hi1_ = mul_hi((T)PHILOX_M1, c2), lo1_ = (T)PHILOX_M1 * c2; \
        c0 = hi1_ ^ c1 ^ (k0); c1 = lo1_; c2 = hi0_ ^ c3 ^ (k1); c3 = lo0_; \
    } while (0)

// The key bump by the Weyl constants, then a round.
#define PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0, k1) do { \
        k0 += PHILOX_W0; k1 += PHILOX_W1; PHILOX_ROUND(T, c0, c1, c2, c3, k0, k1); \
    } while (0)

// Philox-4x32-10: ten rounds, the key bumped between rounds. Unrolled by hand: on PoCL the
// uint16-lane version ran 1.5x faster than with a loop over the rounds (measured).
#define PHILOX_10(T, c0, c1, c2, c3, key0, key1) do { \
        uint k0_ = (key0), k1_ = (key1); \
        PHILOX_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
    } while (0)

// Philox blocks per work-item: 16 on a CPU, in uint16 lanes (lane b = block + b), so each round
// is a handful of 16-wide instructions; 1 on a GPU, which vectorizes across work-items. A
// work-item covers NRO_RE = 4 * NRO_RB consecutive elements, as 4 chunks of NRO_RB.
// The kernels below keep every vector in a named variable: on PoCL, private arrays of vectors
// (w[4]) stayed in memory and made the fills 2.5x slower (measured).
#ifdef KILN_GPU
#define NRO_RB 1
typedef uint nro_ru;
typedef float nro_rf;
#define nro_convert_rf convert_float
#else
#define NRO_RB 16
typedef uint16 nro_ru;
typedef float16 nro_rf;
#define nro_convert_rf convert_float16
#endif
#define NRO_RE (4 * NRO_RB)

// Counter words 0 and 1 (the 64-bit block index, low and high) of blocks block + lane.
inline nro_ru nro_block_lo(ulong block) {
#ifdef KILN_GPU
    return (uint)block;
#else
    return (uint16)((uint)block) + (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
}
inline nro_ru nro_block_hi(ulong block) {
#ifdef KILN_GPU
    return (uint)(block >> 32);
#else
    // Lanes whose low word wrapped past 2^32 carry 1 (a true vector comparison is -1).
    return (uint16)((uint)(block >> 32)) - as_uint16(nro_block_lo(block) < (uint16)((uint)block));
#endif
}

// Declares nro_ru c0..c3 and runs Philox on them: word j of block (i / 4) + b in lane b of cj.
// Uses the kernel's arguments seed_lo, seed_hi, off_lo, off_hi.
#define NRO_PHILOX_WORDS(i) \
    nro_ru c0 = nro_block_lo((ulong)((i) / 4)), c1 = nro_block_hi((ulong)((i) / 4)); \
    nro_ru c2 = (nro_ru)(off_lo), c3 = (nro_ru)(off_hi); \
    PHILOX_10(nro_ru, c0, c1, c2, c3, seed_lo, seed_hi)

// Word-major (vj lane b belongs to element 4b + j) to element order in place (vk lane l becomes
// element 16k + l): six shuffles on a CPU, nothing on a GPU (v0..v3 are elements 0..3 already).
#ifdef KILN_GPU
#define NRO_TO_ELEMENTS(T, v0, v1, v2, v3) do { } while (0)
#else
#define NRO_TO_ELEMENTS(T, v0, v1, v2, v3) do { \
        const uint16 lo_ = (uint16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), hi_ = lo_ + 8; \
        const uint16 pairs_ = (uint16)(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23); \
        const T a_ = shuffle2(v0, v1, lo_), a2_ = shuffle2(v0, v1, hi_); /* words 0, 1 */ \
        const T b_ = shuffle2(v2, v3, lo_), b2_ = shuffle2(v2, v3, hi_); /* words 2, 3 */ \
        v0 = shuffle2(a_, b_, pairs_); v1 = shuffle2(a_, b_, pairs_ + 8); \
        v2 = shuffle2(a2_, b2_, pairs_); v3 = shuffle2(a2_, b2_, pairs_ + 8); \
    } while (0)
#endif

// Chunk k (NRO_RB elements from i + k * NRO_RB) of p; 0 at or past n.
inline nro_rf nro_load_chunk(__global const float* p, int i, int k, int n) {
#ifdef KILN_GPU
    return i + k < n ? p[i + k] : 0.0f;
#else
    return nro_load16(p, i + 16 * k, n);
#endif
}

// Stores the work-item's NRO_RE elements (chunks v0..v3) below n: one bounds check for the
// common full case (a check per chunk cost ~30% in the fills, measured).
inline void nro_store_elements(nro_rf v0, nro_rf v1, nro_rf v2, nro_rf v3, __global float* p, int i, int n) {
#ifdef KILN_GPU
    if (i + 4 <= n) { vstore4((float4)(v0, v1, v2, v3), 0, p + i); return; }
    if (i < n) p[i] = v0;
    if (i + 1 < n) p[i + 1] = v1;
    if (i + 2 < n) p[i + 2] = v2;
#else
    if (i + 64 <= n) {
        vstore16(v0, 0, p + i); vstore16(v1, 1, p + i); vstore16(v2, 2, p + i); vstore16(v3, 3, p + i);
        return;
    }
    float t[64];
    vstore16(v0, 0, t); vstore16(v1, 1, t); vstore16(v2, 2, t); vstore16(v3, 3, t);
    for (int k = 0; k < 64 && i + k < n; ++k) p[i + k] = t[k];
#endif
}

// Uniform floats in [0, 1) from words: the top 24 bits times 2^-24 (exact).
#define NRO_UNIT(bits) (nro_convert_rf((bits) >> 8) * 0x1.0p-24f)

// out[i] = word i of the stream whose first block is first_block (the raw generator; used by
// tests against the published known answers and a host implementation).
__kernel void philox_bits_u32(const int n, const uint seed_lo, const uint seed_hi, const uint off_lo,
                              const uint off_hi, const uint first_lo, const uint first_hi,
                              __global uint* out) {
    const int i = get_global_id(0) * NRO_RE;
    if (i >= n) return;
    const ulong block = (((ulong)first_hi << 32) | first_lo) + (ulong)(i / 4);
    nro_ru c0 = nro_block_lo(block), c1 = nro_block_hi(block), c2 = (nro_ru)(off_lo), c3 = (nro_ru)(off_hi);
    PHILOX_10(nro_ru, c0, c1, c2, c3, seed_lo, seed_hi);
    NRO_TO_ELEMENTS(nro_ru, c0, c1, c2, c3);
    uint t[NRO_RE];
#ifdef KILN_GPU
    t[0] = c0; t[1] = c1; t[2] = c2; t[3] = c3;
#else
    vstore16(c0, 0, t); vstore16(c1, 1, t); vstore16(c2, 2, t); vstore16(c3, 3, t);
#endif
    for (int k = 0; k < NRO_RE && i + k < n; ++k) out[i + k] = t[k];
}

// low + (high - low) * u with one rounding (fma, so the host can reproduce it bit for bit),
// clamped to top = the float below high (rounding could otherwise reach high).
inline nro_rf nro_uniform(nro_ru w, float low, float high, float top) {
    const nro_rf r = fma((nro_rf)(high - low), NRO_UNIT(w), (nro_rf)(low));
    return r >= high ? (nro_rf)(top) : r;
}

// out[i] = low + (high - low) * u_i, u_i = (w_i >> 8) * 2^-24, in [low, high).
__kernel void rand_uniform_f32(const int n, const uint seed_lo, const uint seed_hi, const uint off_lo,
                               const uint off_hi, const float low, const float high, __global float* out) {
    const int i = get_global_id(0) * NRO_RE;
    if (i >= n) return;
    NRO_PHILOX_WORDS(i);
    const float top = nextafter(high, low);
    nro_rf r0 = nro_uniform(c0, low, high, top), r1 = nro_uniform(c1, low, high, top);
    nro_rf r2 = nro_uniform(c2, low, high, top), r3 = nro_uniform(c3, low, high, top);
    NRO_TO_ELEMENTS(nro_rf, r0, r1, r2, r3);
    nro_store_elements(r0, r1, r2, r3, out, i, n);
}

// out[i] = mean + std * z_i, standard normals z by Box-Muller on word pairs (0, 1) and (2, 3) of
// each block: u1 = ((w_a >> 8) + 1) * 2^-24 in (0, 1] (never log 0), u2 = (w_b >> 8) * 2^-24,
//   z_a = sqrt(-2 ln u1) * cos(2 pi u2), z_b = sqrt(-2 ln u1) * sin(2 pi u2).
// cospi/sinpi take the exact argument 2 u2. Transcendentals differ by a few ulp between devices.
__kernel void rand_normal_f32(const int n, const uint seed_lo, const uint seed_hi, const uint off_lo,
                              const uint off_hi, const float mean, const float std, __global float* out) {
    const int i = get_global_id(0) * NRO_RE;
    if (i >= n) return;
    NRO_PHILOX_WORDS(i);
    const nro_rf radius01 = sqrt(-2.0f * log((nro_convert_rf(c0 >> 8) + 1.0f) * 0x1.0p-24f));
    const nro_rf radius23 = sqrt(-2.0f * log((nro_convert_rf(c2 >> 8) + 1.0f) * 0x1.0p-24f));
    const nro_rf angle01 = 2.0f * NRO_UNIT(c1), angle23 = 2.0f * NRO_UNIT(c3);
    nro_rf z0 = radius01 * cospi(angle01) * std + mean, z1 = radius01 * sinpi(angle01) * std + mean;
    nro_rf z2 = radius23 * cospi(angle23) * std + mean, z3 = radius23 * sinpi(angle23) * std + mean;
    NRO_TO_ELEMENTS(nro_rf, z0, z1, z2, z3);
    nro_store_elements(z0, z1, z2, z3, out, i, n);
}

// ---------------------------------------------------------------------------------------------
// Dropout. Element i is kept when u_i >= p, u_i from the Philox stream (seed, offset) exactly as
// rand_uniform_f32 with low = 0, high = 1; kept elements are scaled by scale = 1 / (1 - p)
// (0 when p = 1, so p = 1 gives zeros, and p = 0 keeps all with scale 1: the identity).
// The backward pass is the same map applied to dy, regenerated from (seed, offset), so no mask
// needs storing; dropout_save_mask_f32 / dropout_masked_f32 store and reuse a byte mask instead.
// ---------------------------------------------------------------------------------------------

// Declares nro_rf keep0..keep3: chunk k of the work-item's elements, 1 where kept, 0 where not.
// Uses the kernel's arguments p, seed_lo, seed_hi, off_lo, off_hi.
#define NRO_DROPOUT_KEEP(i) \
    NRO_PHILOX_WORDS(i); \
    nro_rf keep0 = NRO_UNIT(c0) >= p ? (nro_rf)(1.0f) : (nro_rf)(0.0f); \
    nro_rf keep1 = NRO_UNIT(c1) >= p ? (nro_rf)(1.0f) : (nro_rf)(0.0f); \
    nro_rf keep2 = NRO_UNIT(c2) >= p ? (nro_rf)(1.0f) : (nro_rf)(0.0f); \
    nro_rf keep3 = NRO_UNIT(c3) >= p ? (nro_rf)(1.0f) : (nro_rf)(0.0f); \
    NRO_TO_ELEMENTS(nro_rf, keep0, keep1, keep2, keep3)

// keep ? x * scale : 0 (exact zeros even for non-finite x).
inline nro_rf nro_dropout(nro_rf x, nro_rf keep, float scale) {
    return keep != 0.0f ? x * scale : (nro_rf)(0.0f);
}

// y = keep ? x * scale : 0.
__kernel void dropout_f32(const int n, const float p, const float scale, const uint seed_lo,
                          const uint seed_hi, const uint off_lo, const uint off_hi,
                          __global const float* x, __global float* y) {
    const int i = get_global_id(0) * NRO_RE;
    if (i >= n) return;
    NRO_DROPOUT_KEEP(i);
    nro_store_elements(nro_dropout(nro_load_chunk(x, i, 0, n), keep0, scale),
                       nro_dropout(nro_load_chunk(x, i, 1, n), keep1, scale),
                       nro_dropout(nro_load_chunk(x, i, 2, n), keep2, scale),
                       nro_dropout(nro_load_chunk(x, i, 3, n), keep3, scale), y, i, n);
}

// dropout_f32, and mask[i] = 1 for kept elements, 0 for dropped ones.
__kernel void dropout_save_mask_f32(const int n, const float p, const float scale, const uint seed_lo,
                                    const uint seed_hi, const uint off_lo, const uint off_hi,
                                    __global const float* x, __global float* y, __global uchar* mask) {
    const int i = get_global_id(0) * NRO_RE;
    if (i >= n) return;
    NRO_DROPOUT_KEEP(i);
    nro_store_elements(nro_dropout(nro_load_chunk(x, i, 0, n), keep0, scale),
                       nro_dropout(nro_load_chunk(x, i, 1, n), keep1, scale),
                       nro_dropout(nro_load_chunk(x, i, 2, n), keep2, scale),
                       nro_dropout(nro_load_chunk(x, i, 3, n), keep3, scale), y, i, n);
    float t[NRO_RE];
#ifdef KILN_GPU
    t[0] = keep0; t[1] = keep1; t[2] = keep2; t[3] = keep3;
#else
    vstore16(keep0, 0, t); vstore16(keep1, 1, t); vstore16(keep2, 2, t); vstore16(keep3, 3, t);
#endif
    for (int k = 0; k < NRO_RE && i + k < n; ++k) mask[i + k] = (uchar)t[k];
}

// y = mask ? x * scale : 0 with a stored mask (the backward pass of dropout_save_mask_f32).
__kernel void dropout_masked_f32(const int n, const float scale, __global const uchar* mask,
                                 __global const float* x, __global float* y) {
    const int i = get_global_id(0);
    if (i < n) y[i] = mask[i] ? x[i] * scale : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Optimizer updates: one kernel per parameter tensor, PyTorch's single-tensor formulas
// (torch/optim/sgd.py, adam.py, adamw.py, rmsprop.py). Scalars that depend on the step (bias
// corrections, AdamW's decay factor) are computed on the host in double. Flags are uniform, so
// the branches cost nothing. Buffers behind a disabled flag are not touched (the launcher passes
// the parameter buffer in their place).
// ---------------------------------------------------------------------------------------------

// SGD: g = grad + wd * p; with momentum: buf = g on the first step, else
// buf = momentum * buf + (1 - dampening) * g; g = nesterov ? g + momentum * buf : buf; p -= lr * g.
__kernel void sgd_step_f32(const int n, const float lr, const float momentum, const float dampening,
                           const float weight_decay, const int nesterov, const int first,
                           __global float* param, __global const float* grad, __global float* buf) {
    const int i = get_global_id(0) * NRO_W;
    if (i >= n) return;
    const nro_v p = nro_load(param, i, n);
    nro_v g = nro_load(grad, i, n);
    if (weight_decay != 0.0f) g += weight_decay * p;
    if (momentum != 0.0f) {
        nro_v b = g;
        if (!first) b = momentum * nro_load(buf, i, n) + (1.0f - dampening) * g;
        nro_store(b, buf, i, n);
        g = nesterov ? g + momentum * b : b;
    }
    nro_store(p - lr * g, param, i, n);
}

// Adam / AdamW: p *= decay (AdamW: 1 - lr * wd; else 1); g = grad + l2 * p (Adam's weight decay;
// 0 for AdamW); m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
// p -= step_size * m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / (1 - beta1^t),
// bc2_sqrt = sqrt(1 - beta2^t).
// One Adam/AdamW update of the NRO_W elements at i of one tensor (shared by the kernels below).
inline void adam_update(const int n, const int i, const float decay, const float l2, const float beta1,
                        const float beta2, const float eps, const float step_size, const float bc2_sqrt,
                        __global float* param, __global const float* grad, __global float* exp_avg,
                        __global float* exp_avg_sq) {
    nro_v p = nro_load(param, i, n);
    nro_v g = nro_load(grad, i, n);
    if (decay != 1.0f) p *= decay;
    if (l2 != 0.0f) g += l2 * p;
    const nro_v m = beta1 * nro_load(exp_avg, i, n) + (1.0f - beta1) * g;
    const nro_v v = beta2 * nro_load(exp_avg_sq, i, n) + (1.0f - beta2) * g * g;
    nro_store(m, exp_avg, i, n);
    nro_store(v, exp_avg_sq, i, n);
    nro_store(p - step_size * (m / (sqrt(v) / bc2_sqrt + eps)), param, i, n);
}

__kernel void adam_step_f32(const int n, const float decay, const float l2, const float beta1,
                            const float beta2, const float eps, const float step_size, const float bc2_sqrt,
                            __global float* param, __global const float* grad, __global float* exp_avg,
                            __global float* exp_avg_sq) {
    const int i = get_global_id(0) * NRO_W;
    if (i >= n) return;
    adam_update(n, i, decay, l2, beta1, beta2, eps, step_size, bc2_sqrt, param, grad, exp_avg, exp_avg_sq);
}

// The same update for up to 8 tensors in one launch (a model's parameters in one or two
// launches instead of one each). Tensor k owns work-items [start_k, start_k + ceil(n_k / NRO_W));
// unused slots have n_k = 0. Which tensor a work-item serves is uniform over long runs, so the
// branch costs little.
#define ADAM_SLOT(k) const int n##k, const int start##k, __global float* p##k, __global const float* g##k, \
                     __global float* m##k, __global float* v##k
#define ADAM_TRY(k)                                                                                 \
    if (w >= start##k && w < start##k + (n##k + NRO_W - 1) / NRO_W) {                               \
        adam_update(n##k, (w - start##k) * NRO_W, decay, l2, beta1, beta2, eps, step_size, bc2_sqrt, \
                    p##k, g##k, m##k, v##k);                                                        \
        return;                                                                                     \
    }
__kernel void adam_step_multi_f32(const float decay, const float l2, const float beta1, const float beta2,
                                  const float eps, const float step_size, const float bc2_sqrt,
                                  ADAM_SLOT(0), ADAM_SLOT(1), ADAM_SLOT(2), ADAM_SLOT(3),
                                  ADAM_SLOT(4), ADAM_SLOT(5), ADAM_SLOT(6), ADAM_SLOT(7)) {
    const int w = get_global_id(0);
    ADAM_TRY(0) ADAM_TRY(1) ADAM_TRY(2) ADAM_TRY(3) ADAM_TRY(4) ADAM_TRY(5) ADAM_TRY(6) ADAM_TRY(7)
}

// RMSprop: g = grad + wd * p; v = alpha v + (1 - alpha) g^2; centered: ga += (1 - alpha)(g - ga),
// avg = sqrt(v - ga^2) + eps, else avg = sqrt(v) + eps; momentum > 0: buf = momentum buf + g / avg,
// p -= lr * buf; else p -= lr * g / avg.
__kernel void rmsprop_step_f32(const int n, const float lr, const float alpha, const float eps,
                               const float weight_decay, const float momentum, const int centered,
                               __global float* param, __global const float* grad, __global float* square_avg,
                               __global float* grad_avg, __global float* buf) {
    const int i = get_global_id(0) * NRO_W;
    if (i >= n) return;
    const nro_v p = nro_load(param, i, n);
    nro_v g = nro_load(grad, i, n);
    if (weight_decay != 0.0f) g += weight_decay * p;
    const nro_v v = alpha * nro_load(square_avg, i, n) + (1.0f - alpha) * g * g;
    nro_store(v, square_avg, i, n);
    nro_v avg;
    if (centered) {
        const nro_v ga0 = nro_load(grad_avg, i, n);
        const nro_v ga = ga0 + (1.0f - alpha) * (g - ga0);
        nro_store(ga, grad_avg, i, n);
        avg = sqrt(v - ga * ga) + eps;
    } else {
        avg = sqrt(v) + eps;
    }
    if (momentum > 0.0f) {
        const nro_v b = momentum * nro_load(buf, i, n) + g / avg;
        nro_store(b, buf, i, n);
        nro_store(p - lr * b, param, i, n);
    } else {
        nro_store(p - lr * (g / avg), param, i, n);
    }
}

// ============================================================================================
// END SECTION norm-random-optim
// ============================================================================================

// ============================================================================================
// SECTION matmul
// ============================================================================================

/* Kiln float32 matrix multiply.  OpenCL C 1.2, no extensions.
 *
 *   C = op(A) . op(B)    op(A): M x K,  op(B): K x N,  C: M x N,  all row-major.
 *
 * Kernels (same argument list for every one):
 *   matmul_nn, matmul_nt, matmul_tn, matmul_tt           large products
 *   matmul_small_nn, _nt, _tn, _tt                       tiny products (see "Small")
 *
 *   (const int M, const int N, const int K,
 *    __global const float* A, const int lda,   A stored M x K (n) or K x M (t)
 *    __global const float* B, const int ldb,   B stored K x N (n) or N x K (t)
 *    __global float* C, const int ldc,
 *    __global const float* bias,               N floats; any buffer when bit1 is off
 *    const int flags, const float slope)
 *
 * flags: bit0 accumulate, bit1 add bias, bits 4..7 activation
 *        (0 none, 1 relu, 2 leaky relu(slope), 3 sigmoid, 4 tanh, 5 gelu (erf form)).
 *   C = (accumulate ? C_old : 0) + act(op(A).op(B) + bias)
 * i.e. the activation never sees C_old.  Accumulate is meant for gradient
 * accumulation (no bias, no activation); the combination is defined but unusual.
 *
 * Launch rule (host): see RESULTS.md.  CPU path (default): 2-D NDRange,
 *   dim0 over "vector" tiles of TV = MM_VW*MM_TNV columns, dim1 over "row" tiles of MM_TM,
 *   where (rows, cols) = (M, N) for nn, nt, tn and (N, M) for tt (tt writes C transposed).
 *   Work-items past the last tile do no stores, so the global size may be rounded
 *   up to a multiple of the local size freely.
 */

#define MM_NONE 0
#define MM_RELU 1
#define MM_LEAKY 2
#define MM_SIGMOID 3
#define MM_TANH 4
#define MM_GELU 5

/* ---------------------------------------------------------------- parameters */
/* CPU path (PoCL).  One work-item owns an MM_TM x (MM_VW*MM_TNV) tile of C in
 * registers: MM_TM*MM_TNV vector accumulators.  PoCL reaches FMA peak only with
 * explicit vectors and >= 8 independent accumulators; AVX2 has 16 ymm registers,
 * so 6 x (2 x float8) = 12 accumulators + 2 loads + 1 broadcast is the classic fit.
 * On an AVX-512 device use MM_VW=16 (one zmm per vector). */
#ifndef MM_VW
#define MM_VW 8
#endif
#ifndef MM_TM
#define MM_TM 6
#endif
#ifndef MM_TNV
#define MM_TNV 2
#endif
/* K slice per barrier (0: no barrier).  See MM_DEFINE_OUTER. */
#ifndef MM_KB
#define MM_KB 256
#endif
/* Work-group order: PoCL hands out groups in row-major group-id order.  With
 * MM_SWZ = R > 1, consecutive groups instead walk down bands of R group rows, so
 * a band's rows of the scalar operand stay in cache while the other operand's
 * panels stream past once per band instead of once per group row. */
#ifndef MM_SWZ
#define MM_SWZ 4
#endif
/* nt has no operand that is contiguous along an output dimension, so it runs
 * dot products along K instead (float MM_DVW vectors), MM_DTM x MM_DTN outputs at
 * a time; the work-item walks its MM_TM x TV tile in such sub-tiles so that the
 * launch rule is the same as nn/tn. */
#ifndef MM_DVW
#define MM_DVW 8
#endif
#ifndef MM_DTM
#define MM_DTM 3
#endif
#ifndef MM_DTN
#define MM_DTN 4
#endif
/* Small: products whose whole work is a few microseconds (the MLP head,
 * 128 x 128 x 10).  Narrow tiles give enough work-items for both cores and keep
 * N >= MM_SVW on the vectorised path. */
#ifndef MM_STM
#define MM_STM 2
#endif
#ifndef MM_SVW
#define MM_SVW 8
#endif
#ifndef MM_SDTN
#define MM_SDTN 4
#endif
#ifndef MM_GPU
#define MM_GPU 0
#endif

/* full unrolling turns the per-work-item tile arrays into registers */
#define MM_UNROLL _Pragma("unroll")
#define MM_CAT_(a, b) a##b
#define MM_CAT(a, b) MM_CAT_(a, b)
#define mm_floatv MM_CAT(float, MM_VW)
#define mm_vloadv MM_CAT(vload, MM_VW)
#define mm_vstorev MM_CAT(vstore, MM_VW)
#define floatsv MM_CAT(float, MM_SVW)
#define vloadsv MM_CAT(vload, MM_SVW)
#define vstoresv MM_CAT(vstore, MM_SVW)
#define floatd MM_CAT(float, MM_DVW)
#define vloadd MM_CAT(vload, MM_DVW)

/* ---------------------------------------------------------------- epilogue */
/* One definition per vector type (OpenCL C 1.2 has no overloading of user
 * functions); the builtins below are all gentype. */
#define MM_DEFINE_ACT(NAME, T)                                                      \
    inline T NAME(T x, const int act, const float slope)                            \
    {                                                                               \
        switch (act) {                                                              \
        case MM_RELU: return fmax(x, 0.0f);                                         \
        case MM_LEAKY: return fmax(x, 0.0f) + slope * fmin(x, 0.0f);                \
        case MM_SIGMOID: return 1.0f / (1.0f + exp(-x));                            \
        case MM_TANH: return tanh(x);                                               \
        case MM_GELU: return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));     \
        default: return x;                                                          \
        }                                                                           \
    }
MM_DEFINE_ACT(mm_act1, float)
MM_DEFINE_ACT(mm_actv, mm_floatv)
#if MM_SVW != MM_VW
MM_DEFINE_ACT(mm_actsv, floatsv)
#else
#define mm_actsv mm_actv
#endif

/* Global id of this work-item after the band swizzle described at MM_SWZ. */
inline int2 mm_swizzled_id(const int R)
{
    if (R <= 1) return (int2)(get_global_id(0), get_global_id(1));
    const int ngx = get_num_groups(0), ngy = get_num_groups(1);
    const int lin = get_group_id(1) * ngx + get_group_id(0);
    const int band = lin / (R * ngx), in = lin - band * R * ngx;
    const int rows = min(R, ngy - band * R); /* last band may be short */
    const int gx = in / rows, gy = band * R + in % rows;
    return (int2)(gx * get_local_size(0) + get_local_id(0),
                  gy * get_local_size(1) + get_local_id(1));
}

/* Scalar epilogue for one element: edges, transposed stores, dot products. */
inline void mm_store1(__global float* c, float x, const float b, const int flags,
                      const float slope)
{
    if (flags & 2) x += b;
    x = mm_act1(x, (flags >> 4) & 15, slope);
    *c = (flags & 1) ? *c + x : x;
}

#define MM_ARGS                                                                     \
    const int M, const int N, const int K, __global const float *A,                 \
        const int lda, __global const float *B, const int ldb, __global float *C,   \
        const int ldc, __global const float *bias, const int flags,                 \
        const float slope

/* ------------------------------------------------- outer-product tile (nn/tn/tt)
 * For each k the work-item loads TNV vectors of the "vector" operand (a row of
 * op(B) for nn/tn, a row of stored A for tt: contiguous along the output column)
 * and broadcasts TM scalars of the "scalar" operand, TM*TNV FMAs.
 * Operand addressing is by strides so one body serves three variants:
 *   scalar element (s, k) = sp[s*s_ld + k*s_kst],   vector row k = vp + k*v_ld
 *   output (s, v) = C[s*c_sld + v*c_vld],           bias (s, v) = bias[s*b_s + v*b_v]
 * Inlined with literal strides, the per-variant branches fold away.
 *
 * Edges: a tile that would run past S or V is shifted back to end at S / V, so
 * every load stays inside the matrix and the hot loop has no bounds checks; the
 * rows and lanes it shares with the previous tile are not stored (storing them
 * twice would break accumulate).  Only a matrix smaller than one tile
 * (S < TM or V < TV) falls back to scalar dot products. */
#define MM_DEFINE_OUTER(FN, TM, TNV, VW, KB, SWZ, VT, VLOAD, VSTORE, ACTV)          \
inline void FN(const int S, const int V, const int K,                               \
               __global const float* sp, const int s_ld, const int s_kst,           \
               __global const float* vp, const int v_ld,                            \
               __global float* C, const int c_sld, const int c_vld,                 \
               __global const float* bias, const int b_s, const int b_v,            \
               const int flags, const float slope)                                  \
{                                                                                   \
    const int TV = TNV * VW;                                                        \
    const int2 g = mm_swizzled_id(SWZ);                                             \
    const int v0 = g.x * TV, s0 = g.y * TM;                                         \
    if (V < TV || S < TM) {                                                         \
        /* matrix smaller than one tile: plain scalar dot products, kept free       \
         * of vector temporaries that would compete for registers below */          \
        if (v0 >= V || s0 >= S) return;                                             \
        for (int s = s0; s < S && s < s0 + TM; ++s)                                 \
            for (int v = v0; v < V && v < v0 + TV; ++v) {                           \
                float x = 0.0f;                                                     \
                for (int k = 0; k < K; ++k)                                         \
                    x = fma(sp[s * s_ld + k * s_kst], vp[k * v_ld + v], x);         \
                mm_store1(C + s * c_sld + v * c_vld, x,                             \
                          (flags & 2) ? bias[s * b_s + v * b_v] : 0.0f, flags, slope); \
            }                                                                       \
        return;                                                                     \
    }                                                                               \
    /* edge tiles are shifted back inside the matrix (see above) */                 \
    const int vl = min(v0, V - TV), sl = min(s0, S - TM);                           \
    VT acc[TM][TNV];                                                                \
    MM_UNROLL for (int i = 0; i < TM; ++i)                                          \
        MM_UNROLL for (int j = 0; j < TNV; ++j) acc[i][j] = 0.0f;                   \
    __global const float* sk = sp + sl * s_ld;  /* scalar operand at (sl, k) */     \
    __global const float* vk = vp + vl;         /* vector operand row k */          \
    for (int kb = 0; kb < K; kb += (KB ? KB : K)) {                                 \
        const int ke = KB ? min(K, kb + KB) : K;                                    \
        for (int k = kb; k < ke; ++k, sk += s_kst, vk += v_ld) {                    \
            VT b[TNV];                                                              \
            MM_UNROLL for (int j = 0; j < TNV; ++j) b[j] = VLOAD(j, vk);            \
            MM_UNROLL for (int i = 0; i < TM; ++i) {                                \
                const float a = sk[i * s_ld];                                       \
                MM_UNROLL for (int j = 0; j < TNV; ++j)                             \
                    acc[i][j] = fma(a, b[j], acc[i][j]);                            \
            }                                                                       \
        }                                                                           \
        /* K blocking: the whole work-group finishes this K slice before any        \
         * work-item starts the next, so the group's A and B slices stay in         \
         * cache while every work-item of the group reuses them.  (PoCL runs a      \
         * group as a loop over its work-items; the accumulators are saved          \
         * once per slice, which is cheap.) */                                      \
        if (KB) barrier(CLK_GLOBAL_MEM_FENCE);                                      \
    }                                                                               \
    if (v0 >= V || s0 >= S) return; /* padding work-item: after the barriers */     \
    const int act = (flags >> 4) & 15;                                              \
    if (c_vld == 1 && b_s == 0 && vl == v0 && sl == s0) {                           \
        /* interior tile of a row-major C: whole-vector epilogue */                 \
        MM_UNROLL for (int i = 0; i < TM; ++i)                                      \
            MM_UNROLL for (int j = 0; j < TNV; ++j) {                               \
                __global float* c = C + (s0 + i) * c_sld + v0 + j * VW;             \
                VT x = acc[i][j];                                                   \
                if (flags & 2) x += VLOAD(j, bias + v0);                            \
                x = ACTV(x, act, slope);                                            \
                if (flags & 1) x += VLOAD(0, c);                                    \
                VSTORE(x, 0, c);                                                    \
            }                                                                       \
    } else {                                                                        \
        /* shifted or transposed tile: element stores, skipping the rows and        \
         * lanes that belong to the previous tile */                                \
        MM_UNROLL for (int i = 0; i < TM; ++i) {                                    \
            const int s = sl + i;                                                   \
            if (s < s0) continue;                                                   \
            float x[TNV * VW];                                                      \
            MM_UNROLL for (int j = 0; j < TNV; ++j) VSTORE(acc[i][j], j, x);        \
            for (int l = v0 - vl; l < TV; ++l) {                                    \
                const int v = vl + l;                                               \
                mm_store1(C + s * c_sld + v * c_vld, x[l],                          \
                          (flags & 2) ? bias[s * b_s + v * b_v] : 0.0f, flags, slope); \
            }                                                                       \
        }                                                                           \
    }                                                                               \
}

/* Horizontal sum of a floatd, by halving (log2 steps of vector adds). */
inline float mm_hsum(floatd v)
{
#if MM_DVW == 16
    float8 h8 = v.lo + v.hi;
#elif MM_DVW == 8
    float8 h8 = v;
#endif
#if MM_DVW >= 8
    float4 h4 = h8.lo + h8.hi;
#else
    float4 h4 = v;
#endif
    float2 h2 = h4.lo + h4.hi;
    return h2.x + h2.y;
}

/* ------------------------------------------------------ dot-product tile (nt)
 * C = A . B^T with A (M x K) and B (N x K) both contiguous along K: each output
 * is a dot product of two rows.  DTM x DTN outputs at a time keep DTM*DTN vector
 * accumulators; the rows are re-read from cache for each sub-tile. */
#define MM_DEFINE_DOT(FN, TM, TN, DTM, DTN, SWZ)                                    \
inline void FN(const int M, const int N, const int K,                               \
               __global const float* A, const int lda,                              \
               __global const float* B, const int ldb,                              \
               __global float* C, const int ldc, __global const float* bias,        \
               const int flags, const float slope)                                  \
{                                                                                   \
    const int2 g = mm_swizzled_id(SWZ);                                             \
    const int n0 = g.x * (TN), m0 = g.y * (TM);                                     \
    if (n0 >= N || m0 >= M) return;                                                 \
    const int K8 = K - K % MM_DVW;                                                  \
    for (int si = 0; si < (TM) && m0 + si < M; si += DTM)                           \
        for (int sj = 0; sj < (TN) && n0 + sj < N; sj += DTN) {                     \
            __global const float* ar[DTM];                                          \
            __global const float* br[DTN];                                          \
            MM_UNROLL for (int i = 0; i < DTM; ++i) ar[i] = A + min(m0 + si + i, M - 1) * lda; \
            MM_UNROLL for (int j = 0; j < DTN; ++j) br[j] = B + min(n0 + sj + j, N - 1) * ldb; \
            floatd acc[DTM][DTN];                                                   \
            MM_UNROLL for (int i = 0; i < DTM; ++i)                                 \
                MM_UNROLL for (int j = 0; j < DTN; ++j) acc[i][j] = 0.0f;           \
            for (int k = 0; k < K8; k += MM_DVW) {                                  \
                floatd a[DTM];                                                      \
                MM_UNROLL for (int i = 0; i < DTM; ++i) a[i] = vloadd(0, ar[i] + k); \
                MM_UNROLL for (int j = 0; j < DTN; ++j) {                           \
                    const floatd b = vloadd(0, br[j] + k);                          \
                    MM_UNROLL for (int i = 0; i < DTM; ++i) acc[i][j] = fma(a[i], b, acc[i][j]); \
                }                                                                   \
            }                                                                       \
            MM_UNROLL for (int i = 0; i < DTM; ++i)                                 \
                MM_UNROLL for (int j = 0; j < DTN; ++j) {                           \
                    const int m = m0 + si + i, n = n0 + sj + j;                     \
                    float x = mm_hsum(acc[i][j]);                                   \
                    for (int k = K8; k < K; ++k) x = fma(ar[i][k], br[j][k], x);    \
                    if (m < M && n < N && si + i < (TM) && sj + j < (TN))           \
                        mm_store1(C + m * ldc + n, x, (flags & 2) ? bias[n] : 0.0f, \
                                  flags, slope);                                    \
                }                                                                   \
        }                                                                           \
}

/* ---------------------------------------------------------------- variants
 * Stride table (see MM_DEFINE_OUTER):
 *   nn: scalar = A[m*lda + k]  vector = B row k   C[m*ldc + n]  bias[n]
 *   tn: scalar = A[k*lda + m]  vector = B row k   C[m*ldc + n]  bias[n]
 *   tt: C^T = B_stored . A_stored: scalar = B[n*ldb + k], vector = A row k,
 *       C[n + m*ldc] written transposed, bias[n] along the scalar dimension. */
#define MM_DEFINE_VARIANTS(PFX, OUTER, DOT)                                         \
__kernel void PFX##nn(MM_ARGS)                                                      \
{ OUTER(M, N, K, A, lda, 1, B, ldb, C, ldc, 1, bias, 0, 1, flags, slope); }         \
__kernel void PFX##tn(MM_ARGS)                                                      \
{ OUTER(M, N, K, A, 1, lda, B, ldb, C, ldc, 1, bias, 0, 1, flags, slope); }         \
__kernel void PFX##tt(MM_ARGS)                                                      \
{ OUTER(N, M, K, B, ldb, 1, A, lda, C, 1, ldc, bias, 1, 0, flags, slope); }         \
__kernel void PFX##nt(MM_ARGS)                                                      \
{ DOT(M, N, K, A, lda, B, ldb, C, ldc, bias, flags, slope); }

/* Small kernels: same bodies, tile MM_STM x MM_SVW, one vector per row. */
MM_DEFINE_OUTER(mm_outer_small, MM_STM, 1, MM_SVW, 0, 1, floatsv, vloadsv, vstoresv, mm_actsv)
MM_DEFINE_DOT(mm_dot_small, MM_STM, MM_SVW, MM_STM, MM_SDTN, 1)
MM_DEFINE_VARIANTS(matmul_small_, mm_outer_small, mm_dot_small)

#if !MM_GPU
MM_DEFINE_OUTER(mm_outer_main, MM_TM, MM_TNV, MM_VW, MM_KB, MM_SWZ, mm_floatv, mm_vloadv, mm_vstorev, mm_actv)
MM_DEFINE_DOT(mm_dot_main, MM_TM, MM_TNV * MM_VW, MM_DTM, MM_DTN, MM_SWZ)
MM_DEFINE_VARIANTS(matmul_, mm_outer_main, mm_dot_main)
#else
/* ---------------------------------------------------------------- GPU path
 * Textbook local-memory tiling (not tuned, cannot be timed on this machine):
 * work-group MM_GL x MM_GL, each work-item computes MM_GW x MM_GW outputs of a
 * (MM_GL*MM_GW)^2 tile, strided by MM_GL so that neighbouring work-items touch
 * neighbouring addresses (coalescing).  K is walked in slices of MM_GK staged in
 * local memory; out-of-range elements are staged as zero.
 * Launch: local (MM_GL, MM_GL), global (ceil(N/T)*MM_GL, ceil(M/T)*MM_GL),
 * T = MM_GL*MM_GW, for all four variants. */
#ifndef MM_GL
#define MM_GL 16
#endif
#ifndef MM_GW
#define MM_GW 4
#endif
#ifndef MM_GK
#define MM_GK 16
#endif
#define MM_GT (MM_GL * MM_GW)

/* OpenCL C 1.2 allows __local variables only at kernel scope: the kernels own
 * the tiles and pass them in.  +1 column: avoids bank conflicts on column reads. */
typedef float mm_gtile[MM_GK][MM_GT + 1];
inline void mm_gpu(const int ta, const int tb, __local mm_gtile* restrict Asp,
                   __local mm_gtile* restrict Bsp, MM_ARGS)
{
#define As (*Asp)
#define Bs (*Bsp)
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int n0 = get_group_id(0) * MM_GT, m0 = get_group_id(1) * MM_GT;
    const int tid = ty * MM_GL + tx;
    float acc[MM_GW][MM_GW];
    for (int i = 0; i < MM_GW; ++i)
        for (int j = 0; j < MM_GW; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += MM_GK) {
        /* stage op(A)[m0.., k0..] and op(B)[k0.., n0..]; MM_GT*MM_GK elements each */
        for (int e = tid; e < MM_GT * MM_GK; e += MM_GL * MM_GL) {
            /* index so that consecutive work-items read consecutive addresses */
            int kk = ta ? e / MM_GT : e % MM_GK, mm = ta ? e % MM_GT : e / MM_GK;
            int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? (ta ? A[k * lda + m] : A[m * lda + k]) : 0.0f;
            int kb = tb ? e % MM_GK : e / MM_GT, nb = tb ? e / MM_GK : e % MM_GT;
            int n = n0 + nb, k2 = k0 + kb;
            Bs[kb][nb] = (n < N && k2 < K) ? (tb ? B[n * ldb + k2] : B[k2 * ldb + n]) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < MM_GK; ++kk) {
            float a[MM_GW], b[MM_GW];
            for (int i = 0; i < MM_GW; ++i) a[i] = As[kk][ty + i * MM_GL];
            for (int j = 0; j < MM_GW; ++j) b[j] = Bs[kk][tx + j * MM_GL];
            for (int i = 0; i < MM_GW; ++i)
                for (int j = 0; j < MM_GW; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < MM_GW; ++i)
        for (int j = 0; j < MM_GW; ++j) {
            const int m = m0 + ty + i * MM_GL, n = n0 + tx + j * MM_GL;
            if (m < M && n < N)
                mm_store1(C + m * ldc + n, acc[i][j], (flags & 2) ? bias[n] : 0.0f,
                          flags, slope);
        }
#undef As
#undef Bs
}
#define MM_GPU_KERNEL(NAME, TA, TB)                                                 \
    __kernel __attribute__((reqd_work_group_size(MM_GL, MM_GL, 1)))                 \
    void NAME(MM_ARGS)                                                              \
    {                                                                               \
        __local mm_gtile As, Bs;                                                    \
        mm_gpu(TA, TB, &As, &Bs, M, N, K, A, lda, B, ldb, C, ldc, bias, flags, slope); \
    }
MM_GPU_KERNEL(matmul_nn, 0, 0)
MM_GPU_KERNEL(matmul_nt, 0, 1)
MM_GPU_KERNEL(matmul_tn, 1, 0)
MM_GPU_KERNEL(matmul_tt, 1, 1)
#endif

// ---------------------------------------------------------------------------------------------
// Backward through a Linear layer's fused epilogue (bias, then act): from the gradient g of its
// output y, gz = g * act'(y), and the bias gradient gbias[c] = sum over rows of gz[r, c], in one pass.
// act' comes from the output, as PyTorch computes it for sigmoid and tanh; for relu and leaky relu
// (slope > 0) the output's sign is the input's. Each column is summed by one work-item, rows in
// order: deterministic, no atomics.
// act: 0 none, 1 relu, 2 leaky relu, 3 sigmoid, 4 tanh (the codes of the matmul epilogue).
inline floatv linear_act_derivative(const floatv v, const int act, const float slope) {
    switch (act) {
    case 1: return select((floatv)(0.0f), (floatv)(1.0f), v > 0.0f);
    case 2: return select((floatv)(slope), (floatv)(1.0f), v > 0.0f);
    case 3: return v * (1.0f - v);
    case 4: return 1.0f - v * v;
    default: return (floatv)(1.0f);
    }
}

inline float linear_act_derivative1(const float v, const int act, const float slope) {
    switch (act) {
    case 1: return v > 0.0f ? 1.0f : 0.0f;
    case 2: return v > 0.0f ? 1.0f : slope;
    case 3: return v * (1.0f - v);
    case 4: return 1.0f - v * v;
    default: return 1.0f;
    }
}

// A work-item owns KILN_VEC neighbouring columns (one on a GPU), as a vector; a last partial
// group of columns takes the scalar path.
__kernel void linear_act_backward(const int rows, const int cols, const int act, const float slope,
                                  __global const float* g, __global const float* y, __global float* gz,
                                  __global float* gbias, const int want_bias) {
    const int c0 = get_global_id(0) * KILN_VEC;
    if (c0 >= cols) return;
    if (c0 + KILN_VEC <= cols) {
        floatv sum = (floatv)(0.0f);
        for (int r = 0; r < rows; ++r) {
            const int i = r * cols + c0;
            const floatv e = vloadv(0, g + i) * linear_act_derivative(vloadv(0, y + i), act, slope);
            vstorev(e, 0, gz + i);
            sum += e;
        }
        if (want_bias) vstorev(sum, 0, gbias + c0);
        return;
    }
    for (int c = c0; c < cols; ++c) {
        float sum = 0.0f;
        for (int r = 0; r < rows; ++r) {
            const int i = r * cols + c;
            const float e = g[i] * linear_act_derivative1(y[i], act, slope);
            gz[i] = e;
            sum += e;
        }
        if (want_bias) gbias[c] = sum;
    }
}

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
