// Kiln's OpenCL C kernels (OpenCL C 1.2, no extensions required).
// Embedded into the binaries at build time; nothing reads this file at run time.
//
// One set of conventions for the whole file:
// - Build options, set per device by KernelConfig (Sources/Kernels/KernelConfig.swift):
//     KILN_GPU       defined on GPUs: local-memory trees, one element per work-item. Undefined on
//                    CPUs (PoCL): one work-item per row or chunk, explicit vectors, serial loops.
//     KILN_VEC       the float vector width of the hot loops: the device's SIMD width on a CPU
//                    (4, 8 on AVX2, 16 on AVX-512), 1 on a GPU (it vectorizes across work-items).
//     KILN_MM_*      tile sizes of the matrix products (see the matmul section).
// - Kernels are named <family>_<what> (ew_binary, reduce_sum_rows, bn_apply, matmul_nt, ...); an
//   integer twin of a float kernel ends in _i32. Every name is in Kernels/KernelCatalogue.swift,
//   which a test checks against the built program.
//     KILN_BENCH     builds only the benchmark suite's microkernels (the end of this file).
//     KILN_ONLY_MATMUL  builds only the matrix products (and the activations their epilogue
//                    uses): the tuner's candidates and the tuned per-shape programs, which then
//                    compile in a few seconds rather than the whole file's tens of seconds.
// - Helpers are kiln_* functions and KILN_* macros. Sizes are int; every kernel guards its items,
//   because launchers round the global size up to a multiple of the group size.
// - Results never depend on scheduling: each output is combined in a fixed order (a serial loop
//   on a CPU, a fixed tree over a fixed group size on a GPU); no atomics.
// - NaN propagates as in PyTorch (relu, max, maximum, clamp, argmax treat NaN as PyTorch does).

#ifndef KILN_VEC
#define KILN_VEC 8
#endif

// floatv: KILN_VEC floats; vloadv/vstorev load and store one at vector index i. Macros, not
// typedefs, so that a type name can be pasted into a helper's name (kiln_act_float16).
#if KILN_VEC == 16
#define floatv float16
#define intv int16
#define uintv uint16
#define vloadv vload16
#define vstorev vstore16
#define convert_floatv convert_float16
#define as_uintv as_uint16
#define KILN_IOTA ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#elif KILN_VEC == 8
#define floatv float8
#define intv int8
#define uintv uint8
#define vloadv vload8
#define vstorev vstore8
#define convert_floatv convert_float8
#define as_uintv as_uint8
#define KILN_IOTA ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#elif KILN_VEC == 4
#define floatv float4
#define intv int4
#define uintv uint4
#define vloadv vload4
#define vstorev vstore4
#define convert_floatv convert_float4
#define as_uintv as_uint4
#define KILN_IOTA ((int4)(0, 1, 2, 3))
#elif KILN_VEC == 1
#define floatv float
#define intv int
#define uintv uint
#define vloadv(i, p) ((p)[(i)])
#define vstorev(v, i, p) ((p)[(i)] = (v))
#define convert_floatv convert_float
#define as_uintv as_uint
#define KILN_IOTA 0
#else
#error "KILN_VEC must be 1, 4, 8 or 16"
#endif

// The sum, maximum, of the lanes of a floatv, by halving (a fixed order).
inline float kiln_hsum(const floatv v) {
#if KILN_VEC == 16
    const float8 h8 = v.lo + v.hi;
    const float4 h4 = h8.lo + h8.hi;
#elif KILN_VEC == 8
    const float4 h4 = v.lo + v.hi;
#elif KILN_VEC == 4
    const float4 h4 = v;
#endif
#if KILN_VEC == 1
    return v;
#else
    const float2 h2 = h4.lo + h4.hi;
    return h2.x + h2.y;
#endif
}

// max(a, b) with NaN propagating (fmax skips NaN; PyTorch's max and maximum do not): a + b is NaN
// whenever either is. For float and every vector type.
#define KILN_MAX(a, b) select(fmax(a, b), (a) + (b), isnan(a) | isnan(b))
#define KILN_MIN(a, b) select(fmin(a, b), (a) + (b), isnan(a) | isnan(b))
#define KILN_PLUS(a, b) ((a) + (b))

inline float kiln_hmax(const floatv v) {
#if KILN_VEC == 16
    const float8 h8 = KILN_MAX(v.lo, v.hi);
    const float4 h4 = KILN_MAX(h8.lo, h8.hi);
#elif KILN_VEC == 8
    const float4 h4 = KILN_MAX(v.lo, v.hi);
#elif KILN_VEC == 4
    const float4 h4 = v;
#endif
#if KILN_VEC == 1
    return v;
#else
    const float2 h2 = KILN_MAX(h4.lo, h4.hi);
    return KILN_MAX(h2.x, h2.y);
#endif
}

// KILN_VEC floats p[i ..], lanes at or past n read as 0 (the last, partial item stays in bounds).
inline floatv kiln_loadv(__global const float* p, const int i, const int n) {
    if (i + KILN_VEC <= n) return vloadv(0, p + i);
    float t[KILN_VEC];
    for (int k = 0; k < KILN_VEC; ++k) t[k] = (i + k < n) ? p[i + k] : 0.0f;
    return vloadv(0, t);
}

// Stores the lanes of v that fall below n at p[i ..].
inline void kiln_storev(const floatv v, __global float* p, const int i, const int n) {
    if (i + KILN_VEC <= n) { vstorev(v, 0, p + i); return; }
    float t[KILN_VEC];
    vstorev(v, 0, t);
    for (int k = 0; k < KILN_VEC && i + k < n; ++k) p[i + k] = t[k];
}

// Work-group size of the GPU tree reductions (a power of two; local arrays are this long). The
// launchers pass it or a smaller power of two; kernels read get_local_size().
#define KILN_TREE 256

// Up to 8 axes of a strided view, passed as int8 kernel arguments. Dynamic indexing of vector
// lanes is not OpenCL C, so kernels copy them into private arrays first.
#define KILN_AXES(name, v) int name[8]; vstore8(v, 0, name)

#ifndef KILN_BENCH  // the library's kernels; the benchmark suite's program holds only its own (end of file)

#ifndef KILN_ONLY_MATMUL  // element-wise (a products program, below, holds only the matrix products)
// =============================================================================================
// Element-wise: axpy, binary ops with broadcasting, unary ops, where
// =============================================================================================
// A work-item handles KILN_VEC consecutive floats. On a CPU an explicit vector of the native width
// is what keeps these loop-free bodies on full SIMD (PoCL's own vectorizer stops at 8 wide, and
// float4 is the slowest choice there); on a GPU one float per item keeps accesses coalesced.

// y[i] += alpha * x[i] for i < n.
__kernel void ew_axpy(const int n, const float alpha, __global const float* x, __global float* y) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i < n) kiln_storev(fma((floatv)(alpha), kiln_loadv(x, i, n), kiln_loadv(y, i, n)), y, i, n);
}

// ---- Binary operators -------------------------------------------------------------------------
// Codes shared with BinaryOp in Sources/Kernels/Elementwise.swift. Comparisons give 1 or 0;
// maximum and minimum propagate NaN (torch.maximum); a comparison with NaN is false (ne: true).
#define KILN_OP_ADD 0
#define KILN_OP_SUB 1
#define KILN_OP_MUL 2
#define KILN_OP_DIV 3
#define KILN_OP_MAXIMUM 4
#define KILN_OP_MINIMUM 5
#define KILN_OP_EQ 6
#define KILN_OP_NE 7
#define KILN_OP_LT 8
#define KILN_OP_LE 9
#define KILN_OP_GT 10
#define KILN_OP_GE 11
#define KILN_OP_POW 12

// One definition for float and each vector type (OpenCL C 1.2 has no overloading of user
// functions); select() turns a comparison (1 for scalars, -1 per vector lane) into 1.0 or 0.0.
#define KILN_BINARY_FN(T) KILN_BINARY_FN_(T)
#define KILN_BINARY_FN_(T)                                                                      \
inline T kiln_binary_##T(const T a, const T b, const int op) {                                  \
    switch (op) {                                                                               \
    case KILN_OP_SUB: return a - b;                                                             \
    case KILN_OP_MUL: return a * b;                                                             \
    case KILN_OP_DIV: return a / b;                                                             \
    case KILN_OP_MAXIMUM: return KILN_MAX(a, b);                                                \
    case KILN_OP_MINIMUM: return KILN_MIN(a, b);                                                \
    case KILN_OP_EQ: return select((T)(0.0f), (T)(1.0f), a == b);                              \
    case KILN_OP_NE: return select((T)(0.0f), (T)(1.0f), a != b);                              \
    case KILN_OP_LT: return select((T)(0.0f), (T)(1.0f), a < b);                               \
    case KILN_OP_LE: return select((T)(0.0f), (T)(1.0f), a <= b);                              \
    case KILN_OP_GT: return select((T)(0.0f), (T)(1.0f), a > b);                               \
    case KILN_OP_GE: return select((T)(0.0f), (T)(1.0f), a >= b);                              \
    case KILN_OP_POW: return pow(a, b);                                                         \
    default: return a + b;                                                                      \
    }                                                                                           \
}
KILN_BINARY_FN(float)
#if KILN_VEC > 1
KILN_BINARY_FN(floatv)
#endif
#define KILN_BINARY(a, b, op, T) KILN_BINARY_(a, b, op, T)
#define KILN_BINARY_(a, b, op, T) kiln_binary_##T(a, b, op)

// out[r, c] = a[r, c] OP b[r * bsr + c * bsc]: every broadcast of the second operand over a
// matrix, with no index arithmetic: same shape (launched as one row: bsr = 0, bsc = 1), row vector
// [C] (0, 1), column vector [R] (1, 0), one element (0, 0). Work-item g covers KILN_VEC columns of
// row g / chunks (chunks = ceil(cols / KILN_VEC)); the last chunk of a row takes the scalar path.
__kernel void ew_binary(const int op, const int rows, const int cols, const int chunks, const int bsr,
                        const int bsc, __global const float* a, __global const float* b,
                        __global float* out) {
    const int g = get_global_id(0);
    if (g >= rows * chunks) return;
    const int r = g / chunks;
    const int c0 = (g - r * chunks) * KILN_VEC;
    __global const float* arow = a + r * cols;
    __global const float* brow = b + r * bsr;
    __global float* orow = out + r * cols;
    if (c0 + KILN_VEC <= cols) {
        const floatv y = bsc ? vloadv(0, brow + c0) : (floatv)(brow[0]);
        vstorev(KILN_BINARY(vloadv(0, arow + c0), y, op, floatv), 0, orow + c0);
    } else {
        for (int c = c0; c < cols; ++c) orow[c] = kiln_binary_float(arow[c], brow[c * bsc], op);
    }
}

// out[i] = a[i] OP s (reversed: s OP a[i]) for a scalar argument s.
__kernel void ew_binary_scalar(const int op, const int reversed, const int n, const float s,
                               __global const float* a, __global float* out) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    const floatv x = kiln_loadv(a, i, n), y = (floatv)(s);
    kiln_storev(reversed ? KILN_BINARY(y, x, op, floatv) : KILN_BINARY(x, y, op, floatv), out, i, n);
}

// NumPy broadcasting at any rank: out (contiguous, `shape` of `rank` <= 8 axes, already collapsed
// by the launcher) = a OP b, where operand strides are 0 along the axes it is broadcast over.
// Work-item g covers KILN_VEC elements of the innermost axis; its outer coordinates are decoded
// once. Vector loads where the innermost stride is 1 (or 0: a broadcast scalar).
__kernel void ew_binary_nd(const int op, const int rank, const int8 shape8, const int8 sa8,
                           const int8 sb8, const int chunks, __global const float* a,
                           __global const float* b, __global float* out) {
    KILN_AXES(shape, shape8);
    KILN_AXES(sa, sa8);
    KILN_AXES(sb, sb8);
    const int inner = shape[rank - 1];
    int outer = 1;
    for (int d = 0; d < rank - 1; ++d) outer *= shape[d];
    const int g = get_global_id(0);
    if (g >= outer * chunks) return;
    int row = g / chunks;
    const int c0 = (g - row * chunks) * KILN_VEC;
    const int o = row * inner + c0;
    int ia = 0, ib = 0;
    for (int d = rank - 2; d >= 0; --d) {
        const int q = row / shape[d], k = row - q * shape[d];
        ia += k * sa[d];
        ib += k * sb[d];
        row = q;
    }
    const int ta = sa[rank - 1], tb = sb[rank - 1];
    ia += c0 * ta;
    ib += c0 * tb;
    if (c0 + KILN_VEC <= inner && (ta | tb) <= 1 && ta >= 0 && tb >= 0) {
        const floatv x = ta ? vloadv(0, a + ia) : (floatv)(a[ia]);
        const floatv y = tb ? vloadv(0, b + ib) : (floatv)(b[ib]);
        vstorev(KILN_BINARY(x, y, op, floatv), 0, out + o);
    } else {
        for (int c = 0; c < KILN_VEC && c0 + c < inner; ++c) {
            out[o + c] = kiln_binary_float(a[ia + c * ta], b[ib + c * tb], op);
        }
    }
}

// out[i] = cond[i] != 0 ? a[i] : b[i] (torch.where; the launcher broadcasts the operands first).
__kernel void ew_where(const int n, __global const float* cond, __global const float* a,
                       __global const float* b, __global float* out) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    kiln_storev(select(kiln_loadv(b, i, n), kiln_loadv(a, i, n), kiln_loadv(cond, i, n) != 0.0f),
                out, i, n);
}

// ---- Unary operators --------------------------------------------------------------------------
// Codes shared with UnaryOp; up to two float parameters p0, p1.
#define KILN_UN_NEG 0
#define KILN_UN_EXP 1
#define KILN_UN_LOG 2
#define KILN_UN_SQRT 3
#define KILN_UN_POW 4
#define KILN_UN_CLAMP 5
#define KILN_UN_ABS 6
#define KILN_UN_SIGN 7

// clamp keeps NaN (PyTorch), and uses fmin/fmax because clamp() is undefined when min > max.
// sign(NaN) is 0 in OpenCL; PyTorch gives NaN, so NaN passes through.
#define KILN_UNARY_FN(T) KILN_UNARY_FN_(T)
#define KILN_UNARY_FN_(T)                                                                       \
inline T kiln_unary_##T(const T v, const int op, const float p0, const float p1) {              \
    switch (op) {                                                                               \
    case KILN_UN_EXP: return exp(v);                                                            \
    case KILN_UN_LOG: return log(v);                                                            \
    case KILN_UN_SQRT: return sqrt(v);                                                          \
    case KILN_UN_POW: return pow(v, (T)(p0));                                                   \
    case KILN_UN_CLAMP: return select(fmin(fmax(v, p0), p1), v, isnan(v));                      \
    case KILN_UN_ABS: return fabs(v);                                                           \
    case KILN_UN_SIGN: return select(sign(v), v, isnan(v));                                     \
    default: return -v;                                                                         \
    }                                                                                           \
}
KILN_UNARY_FN(float)
#if KILN_VEC > 1
KILN_UNARY_FN(floatv)
#endif
#define KILN_UNARY(v, op, p0, p1, T) KILN_UNARY_(v, op, p0, p1, T)
#define KILN_UNARY_(v, op, p0, p1, T) kiln_unary_##T(v, op, p0, p1)

// y[i] = OP(x[i]); y may be x.
__kernel void ew_unary(const int op, const int n, const float p0, const float p1,
                       __global const float* x, __global float* y) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    kiln_storev(KILN_UNARY(kiln_loadv(x, i, n), op, p0, p1, floatv), y, i, n);
}

#endif  // !KILN_ONLY_MATMUL
// =============================================================================================
// Activations: one definition of each function and its derivative, used by the element-wise
// kernels act_forward / act_backward and by the matmul epilogue
// =============================================================================================
// Codes shared with Activation in Sources/Kernels/Activation.swift; 0 is "none" (the identity).
#define KILN_ACT_NONE 0
#define KILN_ACT_RELU 1
#define KILN_ACT_LEAKY_RELU 2
#define KILN_ACT_SIGMOID 3
#define KILN_ACT_TANH 4
#define KILN_ACT_GELU 5

// erfc(z) for z >= 0 with a relative error below 1.2e-7 everywhere (Numerical Recipes' erfcc, a
// Chebyshev fit), from one exp; t = 1 / (1 + z / 2). Written for float and any vector type.
#define KILN_ERFC(z, t)                                                                          \
    ((t) * exp(-(z) * (z) - 1.26551223f + (t) * (1.00002368f + (t) * (0.37409196f + (t) *        \
     (0.09678418f + (t) * (-0.18628806f + (t) * (0.27886807f + (t) * (-1.13520398f + (t) *        \
     (1.48851587f + (t) * (-0.82215223f + (t) * 0.17087277f))))))))))

// The activations for one element type T (float or a vector type). Each is PyTorch's:
//   relu       max(x, 0); NaN stays NaN (select, not fmax)
//   leaky relu x for x >= 0, p * x below
//   sigmoid    1 / (1 + e^-x); exp overflows to inf for x < -88 and the result is a correct 0
//   tanh       the built-in (on PoCL as fast as exp-based forms, and accurate near 0)
//   gelu       x * Phi(x), Phi the normal CDF, the exact form (nn.GELU's default). Phi comes from
//              erfc of |x| / sqrt 2: accurate relative to the tiny result in the negative tail, where
//              1 + erf(x / sqrt 2) loses every digit. (PoCL's vector erf also runs at 0.8 GB/s
//              against 3.5 for this form.)
// kiln_act_grad_T(d, s, ...) is d * f'(x), from s = the saved forward *input* x for relu, leaky
// relu and gelu, the forward *output* y for sigmoid and tanh (cheaper). For relu, and leaky relu
// with p > 0, the output's sign is the input's, so they may be given y as well (the Linear epilogue
// backward does).
#define KILN_ACT_FNS(T) KILN_ACT_FNS_(T)
#define KILN_ACT_FNS_(T)                                                                          \
inline T kiln_phi_##T(const T v) {                                                                \
    const T z = fabs(v) * M_SQRT1_2_F;                                                           \
    const T t = 1.0f / (1.0f + 0.5f * z);                                                         \
    const T tail = 0.5f * KILN_ERFC(z, t);                                                        \
    return select(tail, 1.0f - tail, v > 0.0f);                                                   \
}                                                                                                 \
inline T kiln_act_##T(const T x, const int act, const float p) {                                  \
    switch (act) {                                                                                \
    case KILN_ACT_RELU: return select(x, (T)(0.0f), x < 0.0f);                                    \
    case KILN_ACT_LEAKY_RELU: return select(x, x * p, x < 0.0f);                                  \
    case KILN_ACT_SIGMOID: return (T)(1.0f) / ((T)(1.0f) + exp(-x));                              \
    case KILN_ACT_TANH: return tanh(x);                                                           \
    case KILN_ACT_GELU: return x * kiln_phi_##T(x);                                               \
    default: return x;                                                                            \
    }                                                                                             \
}                                                                                                 \
inline T kiln_act_grad_##T(const T d, const T s, const int act, const float p) {                  \
    switch (act) {                                                                                \
    case KILN_ACT_RELU: return select((T)(0.0f), d, s > 0.0f);                                    \
    case KILN_ACT_LEAKY_RELU: return select(d * p, d, s > 0.0f);                                  \
    case KILN_ACT_SIGMOID: return d * s * ((T)(1.0f) - s);                                        \
    case KILN_ACT_TANH: return d * ((T)(1.0f) - s * s);                                           \
    case KILN_ACT_GELU: /* Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi) */              \
        return d * (kiln_phi_##T(s) + s * exp(-0.5f * s * s) * 0.3989422804014327f);              \
    default: return d;                                                                            \
    }                                                                                             \
}
KILN_ACT_FNS(float)
KILN_ACT_FNS(float4)
KILN_ACT_FNS(float8)
KILN_ACT_FNS(float16)
// T is the element type after expansion (float, floatv, ...), which picks the function.
#define KILN_ACT(x, act, p, T) KILN_ACT_(x, act, p, T)
#define KILN_ACT_(x, act, p, T) kiln_act_##T(x, act, p)
#define KILN_ACT_GRAD(d, s, act, p, T) KILN_ACT_GRAD_(d, s, act, p, T)
#define KILN_ACT_GRAD_(d, s, act, p, T) kiln_act_grad_##T(d, s, act, p)

// y[i] = act(x[i]); y may be x.
__kernel void act_forward(const int act, const int n, const float p, __global const float* x,
                          __global float* y) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    kiln_storev(KILN_ACT(kiln_loadv(x, i, n), act, p, floatv), y, i, n);
}

// dx[i] = dy[i] * act'(...) from s (see kiln_act_grad), or dx[i] += ... when accumulate != 0.
__kernel void act_backward(const int act, const int n, const float p, const int accumulate,
                           __global const float* dy, __global const float* s, __global float* dx) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    floatv g = KILN_ACT_GRAD(kiln_loadv(dy, i, n), kiln_loadv(s, i, n), act, p, floatv);
    if (accumulate) g += kiln_loadv(dx, i, n);
    kiln_storev(g, dx, i, n);
}

#ifndef KILN_ONLY_MATMUL  // reductions ... optimizers
// =============================================================================================
// Reductions
// =============================================================================================
// ---- Serial row helpers (CPU path) -----------------------------------------------------------
// Fixed-order reductions of n contiguous floats: four floatv accumulators over blocks of
// 4 * KILN_VEC, then one vector at a time, then the lanes by halving, then the scalar tail.
// Deterministic for a given n. Compiled on every device; the CPU kernels use them.

// sum x[i].
inline float kiln_row_sum(__global const float* x, const int n) {
    floatv a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int i = 0;
    for (; i + 4 * KILN_VEC <= n; i += 4 * KILN_VEC) {
        a0 += vloadv(0, x + i);
        a1 += vloadv(1, x + i);
        a2 += vloadv(2, x + i);
        a3 += vloadv(3, x + i);
    }
    for (; i + KILN_VEC <= n; i += KILN_VEC) a0 += vloadv(0, x + i);
    float s = kiln_hsum((a0 + a1) + (a2 + a3));
    for (; i < n; ++i) s += x[i];
    return s;
}

// max x[i] (-INFINITY for n = 0; NaN if any x[i] is NaN, as torch.max).
inline float kiln_row_max(__global const float* x, const int n) {
    floatv a0 = -INFINITY, a1 = -INFINITY, a2 = -INFINITY, a3 = -INFINITY;
    int i = 0;
    for (; i + 4 * KILN_VEC <= n; i += 4 * KILN_VEC) {
        a0 = KILN_MAX(a0, vloadv(0, x + i));
        a1 = KILN_MAX(a1, vloadv(1, x + i));
        a2 = KILN_MAX(a2, vloadv(2, x + i));
        a3 = KILN_MAX(a3, vloadv(3, x + i));
    }
    for (; i + KILN_VEC <= n; i += KILN_VEC) a0 = KILN_MAX(a0, vloadv(0, x + i));
    float m = kiln_hmax(KILN_MAX(KILN_MAX(a0, a1), KILN_MAX(a2, a3)));
    for (; i < n; ++i) m = KILN_MAX(m, x[i]);
    return m;
}

// Whether (v, i) beats the best (m, mi) of an argmax: NaN counts as the largest value (PyTorch's
// argmax returns the first NaN), and ties go to the smaller index.
inline int kiln_argmax_beats(const float v, const int i, const float m, const int mi) {
    if (isnan(v) || isnan(m)) return isnan(v) && (!isnan(m) || i < mi);
    return v > m || (v == m && i < mi);
}

// The first index of the largest x[i] (0 when every value is -inf), and the maximum in *best.
// Each lane keeps its own first maximum while scanning upwards; lanes are then merged by
// kiln_argmax_beats, so the result is the first maximum overall (PyTorch's tie rule).
inline int kiln_row_argmax(__global const float* x, const int n, float* best) {
    float m = -INFINITY;
    int mi = 0, i = 0;
#if KILN_VEC > 1
    if (n >= KILN_VEC) {
        floatv bv = vloadv(0, x);
        intv bi = KILN_IOTA;
        for (i = KILN_VEC; i + KILN_VEC <= n; i += KILN_VEC) {
            const floatv v = vloadv(0, x + i);
            const intv gt = (v > bv) | (isnan(v) & ~isnan(bv));  // lanes: -1 true, 0 false
            bv = select(bv, v, gt);
            bi = select(bi, KILN_IOTA + i, gt);
        }
        float vs[KILN_VEC];
        int is[KILN_VEC];
        vstorev(bv, 0, vs);
        vstorev(bi, 0, is);
        m = vs[0];
        mi = is[0];
        for (int l = 1; l < KILN_VEC; ++l) {
            if (kiln_argmax_beats(vs[l], is[l], m, mi)) { m = vs[l]; mi = is[l]; }
        }
    }
#endif
    for (; i < n; ++i) {
        if (kiln_argmax_beats(x[i], i, m, mi)) { m = x[i]; mi = i; }
    }
    *best = m;
    return mi;
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
KILN_TREE_FN(kiln_tree_max, KILN_MAX)

// Argmax over (value, index) pairs of a group (kiln_argmax_beats). Returns the winning index and
// writes its value to *best.
inline int kiln_tree_argmax(__local float* pv, __local int* pi, const float v, const int i,
                            float* best) {
    const int lid = get_local_id(0);
    pv[lid] = v;
    pi[lid] = i;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s && kiln_argmax_beats(pv[lid + s], pi[lid + s], pv[lid], pi[lid])) {
            pv[lid] = pv[lid + s];
            pi[lid] = pi[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const int result = pi[0];
    *best = pv[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return result;
}

// ---- Reductions of [outer, R, C] -------------------------------------------------------------
// reduce_{sum,max}_rows: out[r] = scale * OP over row r of [R, C]              (result [R])
// reduce_{sum,max}_cols: out[o, c] = scale * OP over r of x[o, r, c]          (result [outer, C])
// reduce_{sum,max}_all:  out[g] = scale * OP over x[g*chunk, min(n, (g+1)*chunk))
//   (partials; a second launch with chunk = n over the partials gives the full reduction).
// Any set of axes of an N-d tensor reduces as a sequence of these (Tensor/Reductions.swift).
// Mean is the sum with scale = 1/count; max passes scale = 1.
// CPU launches: rows -> one item per row; cols -> one item per KILN_VEC columns and outer index;
// all -> one item per chunk. GPU launches: rows, all -> one group per row / chunk; cols -> one
// group per 32 columns and outer index (the group's items split the rows, then a tree).
#ifdef KILN_GPU

#define KILN_REDUCE_FAMILY(NAME, OP, IDENT, TREE)                                                \
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
    const int c = get_group_id(0) * W + lx, o = get_global_id(1);                                \
    x += o * rows * cols;                                                                        \
    float acc = IDENT;                                                                           \
    if (c < cols) for (int r = ly; r < rows; r += lanes) acc = OP(acc, x[r * cols + c]);         \
    part[lid] = acc;                                                                             \
    barrier(CLK_LOCAL_MEM_FENCE);                                                                \
    for (int s = lanes / 2; s > 0; s >>= 1) {                                                    \
        if (ly < s) part[lid] = OP(part[lid], part[lid + s * W]);                                \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
    }                                                                                            \
    if (ly == 0 && c < cols) out[o * cols + c] = scale * part[lx];                               \
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

KILN_REDUCE_FAMILY(sum, KILN_PLUS, 0.0f, kiln_tree_sum)
KILN_REDUCE_FAMILY(max, KILN_MAX, -INFINITY, kiln_tree_max)

// out[r] = first index of the row maximum (Int32).
__kernel void reduce_argmax_rows(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    __local float pv[KILN_TREE];
    __local int pi[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    // Each item scans its columns in increasing order and keeps its first maximum; an item whose
    // values are all -inf reports its first column, which the tree then orders by index.
    float m = -INFINITY;
    int mi = min((int)get_local_id(0), cols - 1);
    for (int c = get_local_id(0); c < cols; c += get_local_size(0)) {
        const float v = x[r * cols + c];
        if (kiln_argmax_beats(v, c, m, mi)) { m = v; mi = c; }
    }
    mi = kiln_tree_argmax(pv, pi, m, mi, &m);
    if (get_local_id(0) == 0 && g < rows) out[r] = mi;
}

// out[o, c] = first row index of the maximum of column c of x[o] (Int32).
__kernel void reduce_argmax_cols(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    __local float pv[KILN_TREE];
    __local int pi[KILN_TREE];
    const int L = get_local_size(0), W = min(32, L), lanes = L / W;
    const int lid = get_local_id(0), lx = lid % W, ly = lid / W;
    const int c = get_group_id(0) * W + lx, o = get_global_id(1);
    x += o * rows * cols;
    float m = -INFINITY;
    int mi = min(ly, rows - 1);
    if (c < cols) {
        for (int r = ly; r < rows; r += lanes) {
            const float v = x[r * cols + c];
            if (kiln_argmax_beats(v, r, m, mi)) { m = v; mi = r; }
        }
    }
    pv[lid] = m;
    pi[lid] = mi;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = lanes / 2; s > 0; s >>= 1) {
        if (ly < s && kiln_argmax_beats(pv[lid + s * W], pi[lid + s * W], pv[lid], pi[lid])) {
            pv[lid] = pv[lid + s * W];
            pi[lid] = pi[lid + s * W];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (ly == 0 && c < cols) out[o * cols + c] = pi[lx];
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
    int mi = min(start + (int)get_local_id(0), max(end - 1, 0));
    for (int i = start + get_local_id(0); i < end; i += get_local_size(0)) {
        if (kiln_argmax_beats(x[i], i, m, mi)) { m = x[i]; mi = i; }
    }
    mi = kiln_tree_argmax(pv, pi, m, mi, &m);
    if (get_local_id(0) == 0 && start < n) {
        out_v[g] = m;
        out_i[g] = has_idx ? in_idx[mi] : mi;
    }
}

#else  // CPU: one work-item per row / per KILN_VEC columns / per chunk, serial vector loops.

#define KILN_REDUCE_FAMILY(NAME, OP, IDENT, ROWFN)                                               \
__kernel void reduce_##NAME##_rows(const int rows, const int cols, const float scale,           \
                                   __global const float* x, __global float* out) {               \
    const int r = get_global_id(0);                                                              \
    if (r < rows) out[r] = scale * ROWFN(x + r * cols, cols);                                    \
}                                                                                                \
__kernel void reduce_##NAME##_cols(const int rows, const int cols, const float scale,           \
                                   __global const float* x, __global float* out) {               \
    const int c0 = get_global_id(0) * KILN_VEC, o = get_global_id(1);                            \
    if (c0 >= cols) return;                                                                      \
    x += o * rows * cols;                                                                        \
    out += o * cols;                                                                             \
    if (c0 + KILN_VEC <= cols) {                                                                 \
        /* KILN_VEC columns down all rows, four rows at a time into independent accumulators. */ \
        floatv a0 = IDENT, a1 = IDENT, a2 = IDENT, a3 = IDENT;                                   \
        int r = 0;                                                                               \
        for (; r + 4 <= rows; r += 4) {                                                          \
            a0 = OP(a0, vloadv(0, x + r * cols + c0));                                           \
            a1 = OP(a1, vloadv(0, x + (r + 1) * cols + c0));                                     \
            a2 = OP(a2, vloadv(0, x + (r + 2) * cols + c0));                                     \
            a3 = OP(a3, vloadv(0, x + (r + 3) * cols + c0));                                     \
        }                                                                                        \
        for (; r < rows; ++r) a0 = OP(a0, vloadv(0, x + r * cols + c0));                         \
        vstorev(scale * OP(OP(a0, a1), OP(a2, a3)), 0, out + c0);                                \
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

KILN_REDUCE_FAMILY(sum, KILN_PLUS, 0.0f, kiln_row_sum)
KILN_REDUCE_FAMILY(max, KILN_MAX, -INFINITY, kiln_row_max)

// out[r] = first index of the row maximum (Int32).
__kernel void reduce_argmax_rows(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    const int r = get_global_id(0);
    float m;
    if (r < rows) out[r] = kiln_row_argmax(x + r * cols, cols, &m);
}

// out[o, c] = first row index of the maximum of column c of x[o] (Int32).
__kernel void reduce_argmax_cols(const int rows, const int cols, __global const float* x,
                                 __global int* out) {
    const int c0 = get_global_id(0) * KILN_VEC, o = get_global_id(1);
    if (c0 >= cols) return;
    x += o * rows * cols;
    out += o * cols;
#if KILN_VEC > 1
    if (c0 + KILN_VEC <= cols) {
        floatv bv = vloadv(0, x + c0);
        intv bi = 0;
        for (int r = 1; r < rows; ++r) {
            const floatv v = vloadv(0, x + r * cols + c0);
            const intv gt = (v > bv) | (isnan(v) & ~isnan(bv));  /* strict: the first maximum stays */
            bv = select(bv, v, gt);
            bi = select(bi, (intv)(r), gt);
        }
        vstorev(bi, 0, out + c0);
        return;
    }
#endif
    for (int c = c0; c < cols && c < c0 + KILN_VEC; ++c) {
        float m = x[c];
        int mi = 0;
        for (int r = 1; r < rows; ++r) {
            if (kiln_argmax_beats(x[r * cols + c], r, m, mi)) { m = x[r * cols + c]; mi = r; }
        }
        out[c] = mi;
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

#endif  // KILN_GPU / CPU

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

// The training loop's running loss: sum[0] = loss[0] on an epoch's first step, else sum[0] +=
// loss[0]; first_bad[0] takes `step` when this loss is not finite and no earlier step's was (0:
// none), so the NaN guard can name the step where it began without reading the loss every step.
__kernel void reduce_loss_step(const int first, const int step, __global const float* loss,
                               __global float* sum, __global int* first_bad) {
    const float v = loss[0];
    sum[0] = first ? v : sum[0] + v;
    if (!isfinite(v) && first_bad[0] == 0) first_bad[0] = step;
}

// =============================================================================================
// Softmax, log-softmax and cross-entropy over rows of [R, C]
// =============================================================================================
// y = exp(x - max) / sum exp(x - max);  log-softmax y = (x - max) - log sum exp(x - max), computed
// directly (never log of the softmax), so rows of +-1e4 or of equal values stay finite. y may be
// x (in place). Backward, per row: softmax dx = y (dy - sum dy y); log-softmax dx = dy - exp(y) sum dy,
// where y is the forward output; accumulate != 0 adds to dx instead of overwriting it.
// CPU: one work-item per row. GPU: one group per row, trees for the max and the sums.

// sum exp(x[i] - m), and sum (x[i] - m) into *shifted (for label smoothing). Every term of the
// second sum is <= 0, so it has no cancellation even for logits of +-1e4.
inline float kiln_row_sum_exp(__global const float* x, const int n, const float m, float* shifted) {
    floatv e0 = 0.0f, e1 = 0.0f, d0 = 0.0f, d1 = 0.0f;
    int i = 0;
    for (; i + 2 * KILN_VEC <= n; i += 2 * KILN_VEC) {
        const floatv v0 = vloadv(0, x + i) - m, v1 = vloadv(1, x + i) - m;
        e0 += exp(v0);
        e1 += exp(v1);
        d0 += v0;
        d1 += v1;
    }
    for (; i + KILN_VEC <= n; i += KILN_VEC) {
        const floatv v = vloadv(0, x + i) - m;
        e0 += exp(v);
        d0 += v;
    }
    float se = kiln_hsum(e0 + e1), sd = kiln_hsum(d0 + d1);
    for (; i < n; ++i) {
        se += exp(x[i] - m);
        sd += x[i] - m;
    }
    *shifted = sd;
    return se;
}

// sum a[i] b[i] in a fixed order (two floatv accumulators, then the scalar tail).
inline float kiln_row_dot(__global const float* a, __global const float* b, const int n) {
    floatv a0 = 0.0f, a1 = 0.0f;
    int i = 0;
    for (; i + 2 * KILN_VEC <= n; i += 2 * KILN_VEC) {
        a0 = fma(vloadv(0, a + i), vloadv(0, b + i), a0);
        a1 = fma(vloadv(1, a + i), vloadv(1, b + i), a1);
    }
    for (; i + KILN_VEC <= n; i += KILN_VEC) a0 = fma(vloadv(0, a + i), vloadv(0, b + i), a0);
    float s = kiln_hsum(a0 + a1);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

#ifdef KILN_GPU

__kernel void softmax_rows(const int rows, const int cols, __global const float* x,
                           __global float* y) {
    __local float part[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0);
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    float m = -INFINITY;
    for (int c = lid; c < cols; c += L) m = KILN_MAX(m, xr[c]);
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
    for (int c = lid; c < cols; c += L) m = KILN_MAX(m, xr[c]);
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
        const float e = y[o + c] * (dy[o + c] - d);
        dx[o + c] = accumulate ? dx[o + c] + e : e;
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
        const float e = dy[o + c] - exp(y[o + c]) * s;
        dx[o + c] = accumulate ? dx[o + c] + e : e;
    }
}

#else  // CPU

__kernel void softmax_rows(const int rows, const int cols, __global const float* x,
                           __global float* y) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = x + r * cols;
    __global float* yr = y + r * cols;
    const float m = kiln_row_max(xr, cols);
    // e = exp(x - m) goes to y while it is summed, so each exp is computed once.
    floatv acc = 0.0f;
    int c = 0;
    for (; c + KILN_VEC <= cols; c += KILN_VEC) {
        const floatv e = exp(vloadv(0, xr + c) - m);
        vstorev(e, 0, yr + c);
        acc += e;
    }
    float s = kiln_hsum(acc);
    for (; c < cols; ++c) {
        const float e = exp(xr[c] - m);
        yr[c] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (c = 0; c + KILN_VEC <= cols; c += KILN_VEC) vstorev(vloadv(0, yr + c) * inv, 0, yr + c);
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
    for (; c + KILN_VEC <= cols; c += KILN_VEC) vstorev((vloadv(0, xr + c) - m) - ls, 0, yr + c);
    for (; c < cols; ++c) yr[c] = (xr[c] - m) - ls;
}

__kernel void softmax_backward_rows(const int rows, const int cols, const int accumulate,
                                    __global const float* dy, __global const float* y,
                                    __global float* dx) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    const int o = r * cols;
    const float d = kiln_row_dot(dy + o, y + o, cols);
    int c = 0;
    for (; c + KILN_VEC <= cols; c += KILN_VEC) {
        floatv e = vloadv(0, y + o + c) * (vloadv(0, dy + o + c) - d);
        if (accumulate) e += vloadv(0, dx + o + c);
        vstorev(e, 0, dx + o + c);
    }
    for (; c < cols; ++c) {
        const float e = y[o + c] * (dy[o + c] - d);
        dx[o + c] = accumulate ? dx[o + c] + e : e;
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
    for (; c + KILN_VEC <= cols; c += KILN_VEC) {
        floatv e = vloadv(0, dy + o + c) - exp(vloadv(0, y + o + c)) * s;
        if (accumulate) e += vloadv(0, dx + o + c);
        vstorev(e, 0, dx + o + c);
    }
    for (; c < cols; ++c) {
        const float e = dy[o + c] - exp(y[o + c]) * s;
        dx[o + c] = accumulate ? dx[o + c] + e : e;
    }
}

#endif  // KILN_GPU / CPU

// ---- Cross-entropy from logits, fused with its gradient ---------------------------------------
// Row i of logits [N, C], target t = targets[i], smoothing eps (PyTorch's definition: the target
// distribution is q = (1 - eps) onehot(t) + eps / C):
//   loss[i] = -sum_c q_c logp_c = -(1 - eps) logp_t - (eps / C) sum_c logp_c,
//   logp_c = (x_c - max) - log sum exp(x - max)   (finite for any finite logits),
//   grad[i, c] = gscale * (softmax_c - q_c)       (gscale = upstream gradient / N, from the caller).
// A target outside [0, C) is never read through: its row gets loss NaN (so the mean is NaN, loudly)
// and, when want_grad, a zero gradient row. grad may be the logits buffer (each element is read
// before it is overwritten; x_t is read first). With want_hits, hits[i] += (argmax of row i == t):
// a running count per batch position that training sums once an epoch (its train accuracy, with no
// extra launch per step). The mean over rows is a second, deterministic launch of reduce_sum_all.
// -(1 - eps) logp_t - (eps / C) sum logp_c from xt = x_t - max, ls = log sum exp(x - max) and
// d = sum (x_c - max). The smoothing term is skipped at eps = 0, where d may be -inf (0 * inf = NaN).
inline float kiln_xent_loss(const float eps, const int cols, const float xt, const float ls,
                            const float d) {
    const float target = -(1.0f - eps) * (xt - ls);
    return eps > 0.0f ? target - (eps / cols) * (d - cols * ls) : target;
}

#ifdef KILN_GPU

__kernel void xent_fused(const int rows, const int cols, const float eps, const float gscale,
                         const int want_grad, const int want_hits, __global const float* logits,
                         __global const int* targets, __global float* loss, __global float* grad,
                         __global int* hits) {
    __local float part[KILN_TREE];
    __local int parti[KILN_TREE];
    const int g = get_group_id(0), r = min(g, rows - 1);
    const int lid = get_local_id(0), L = get_local_size(0);
    __global const float* xr = logits + r * cols;
    const int t = targets[r];
    const int valid = t >= 0 && t < cols;
    const float xt = valid ? xr[t] : 0.0f;
    float m = -INFINITY;
    int mi = min(lid, cols - 1);
    for (int c = lid; c < cols; c += L) {
        if (kiln_argmax_beats(xr[c], c, m, mi)) { m = xr[c]; mi = c; }
    }
    mi = kiln_tree_argmax(part, parti, m, mi, &m);
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
        if (want_hits) hits[r] += valid && mi == t;
    }
    if (!want_grad) return;
    __global float* gr = grad + r * cols;
    const float off = eps / cols;
    for (int c = lid; c < cols; c += L) {
        const float q = c == t ? 1.0f - eps + off : off;
        gr[c] = valid ? gscale * (exp((xr[c] - m) - ls) - q) : 0.0f;
    }
}

#else  // CPU

__kernel void xent_fused(const int rows, const int cols, const float eps, const float gscale,
                         const int want_grad, const int want_hits, __global const float* logits,
                         __global const int* targets, __global float* loss, __global float* grad,
                         __global int* hits) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    __global const float* xr = logits + r * cols;
    const int t = targets[r];
    const int valid = t >= 0 && t < cols;
    const float xt = valid ? xr[t] : 0.0f;
    float m;
    if (want_hits) {
        hits[r] += valid && kiln_row_argmax(xr, cols, &m) == t;
    } else {
        m = kiln_row_max(xr, cols);
    }
    float d;
    const float ls = log(kiln_row_sum_exp(xr, cols, m, &d));
    loss[r] = valid ? kiln_xent_loss(eps, cols, xt - m, ls, d) : NAN;
    if (!want_grad) return;
    __global float* gr = grad + r * cols;
    const float off = eps / cols;
    // Every class first gets softmax - eps/C; the target's extra -(1 - eps) is fixed up after.
    const float scale = valid ? gscale : 0.0f;
    int c = 0;
    for (; c + KILN_VEC <= cols; c += KILN_VEC) {
        vstorev(scale * (exp((vloadv(0, xr + c) - m) - ls) - off), 0, gr + c);
    }
    for (; c < cols; ++c) gr[c] = scale * (exp((xr[c] - m) - ls) - off);
    if (valid) gr[t] = gscale * (exp((xt - m) - ls) - (1.0f - eps + off));
}

#endif  // KILN_GPU / CPU

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

// =============================================================================================
// Data movement: strided copies (reshape-free views made real: permute, slices, concatenation,
// broadcast), transposes, gathers, one-hot
// =============================================================================================

// dst[doff + sum_k i_k ds_k] = src[soff + sum_k i_k ss_k] over every index i of `shape` (rank <= 8
// axes, collapsed by the launcher). Work-item g covers KILN_VEC elements of the innermost axis;
// vector loads and stores where both innermost strides are 1.
__kernel void copy_nd(const int rank, const int8 shape8, const int8 ss8, const int8 ds8,
                      const int soff, const int doff, const int chunks, __global const float* src,
                      __global float* dst) {
    KILN_AXES(shape, shape8);
    KILN_AXES(ss, ss8);
    KILN_AXES(ds, ds8);
    const int inner = shape[rank - 1];
    int outer = 1;
    for (int d = 0; d < rank - 1; ++d) outer *= shape[d];
    const int g = get_global_id(0);
    if (g >= outer * chunks) return;
    int row = g / chunks;
    const int c0 = (g - row * chunks) * KILN_VEC;
    int is = soff, id = doff;
    for (int d = rank - 2; d >= 0; --d) {
        const int q = row / shape[d], k = row - q * shape[d];
        is += k * ss[d];
        id += k * ds[d];
        row = q;
    }
    const int ts = ss[rank - 1], td = ds[rank - 1];
    is += c0 * ts;
    id += c0 * td;
    if (c0 + KILN_VEC <= inner && ts == 1 && td == 1) {
        vstorev(vloadv(0, src + is), 0, dst + id);
    } else {
        for (int c = 0; c < KILN_VEC && c0 + c < inner; ++c) dst[id + c * td] = src[is + c * ts];
    }
}

// y [C, R] = transpose of x [R, C], for each of a batch of such matrices (global dimension 1).
// CPU: one work-item per 16 x 16 tile (both the reads and the writes stay within 16 cache lines);
// GPU: one item per output element, writes coalesced.
#ifdef KILN_GPU
__kernel void transpose_2d(const int rows, const int cols, __global const float* x,
                           __global float* y) {
    const int i = get_global_id(0);
    if (i >= rows * cols) return;
    const long b = (long)get_global_id(1) * rows * cols;
    const int c = i / rows, r = i - c * rows;
    y[b + i] = x[b + r * cols + c];
}
#else
__kernel void transpose_2d(const int rows, const int cols, __global const float* x,
                           __global float* y) {
    const int tilesC = (cols + 15) / 16;
    const int g = get_global_id(0);
    if (g >= tilesC * ((rows + 15) / 16)) return;
    const long b = (long)get_global_id(1) * rows * cols;
    x += b;
    y += b;
    const int r0 = g / tilesC * 16, c0 = (g % tilesC) * 16;
    const int r1 = min(rows, r0 + 16), c1 = min(cols, c0 + 16);
    for (int c = c0; c < c1; ++c) {
        for (int r = r0; r < r1; ++r) y[c * rows + r] = x[r * cols + c];
    }
}
#endif

// dst[i, :] = src[idx[i], :] for src [m, cols], dst [n, cols]. An index outside [0, m) is never
// read through: its row is filled with zeros.
__kernel void gather_rows(const int n, const int cols, const int chunks, const int m,
                          __global const int* idx, __global const float* src,
                          __global float* dst) {
    const int g = get_global_id(0);
    if (g >= n * chunks) return;
    const int i = g / chunks;
    const int c0 = (g - i * chunks) * KILN_VEC;
    const int j = idx[i];
    const int valid = j >= 0 && j < m;
    __global const float* s = src + (valid ? j : 0) * cols;
    __global float* d = dst + i * cols;
    if (c0 + KILN_VEC <= cols) {
        vstorev(valid ? vloadv(0, s + c0) : (floatv)(0.0f), 0, d + c0);
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
    const int c0 = (g - i * chunks) * KILN_VEC;
    const int label = labels[i];
    __global float* o = out + i * classes;
    if (c0 + KILN_VEC <= classes) {
        vstorev(select((floatv)(0.0f), (floatv)(1.0f), KILN_IOTA + c0 == (intv)(label)), 0, o + c0);
    } else {
        for (int c = c0; c < classes; ++c) o[c] = c == label ? 1.0f : 0.0f;
    }
}

// =============================================================================================
// Batch normalization over x[N, C, S]: statistics per channel c over the N samples and the S
// positions of each (S = 1: BatchNorm1d over [N, C]; S = H * W: BatchNorm2d over NCHW)
// =============================================================================================
// Element (n, c, s) is x[(n * C + c) * S + s].
// Training forward = bn_partial_stats (per chunk of R samples: mean and M2 = sum (x - mean)^2, a
// two-pass over data still in cache) + bn_finalize_stats (per channel: merges the chunks in order
// with Chan's parallel formula, writes mean/invstd, updates the running statistics, and the
// coefficients of the element-wise pass) + bn_apply. Never E[x^2] - E[x]^2: a channel of mean 1e4
// and spread 1 would lose every digit. Eval = bn_eval_coefficients + bn_apply.
// Backward = bn_backward_partial (per chunk: sum dy, sum dy*(x - mean)) + bn_backward_finalize (per
// channel: dgamma, dbeta, and the dx coefficients) + bn_backward_dx. Chunk results are merged in a
// fixed order: deterministic, no atomics.
//
// Reductions. CPU, S = 1: a work-item owns KILN_VEC channels (one vector per sample) and a chunk of
// R samples; S > 1: a work-item owns one channel and a chunk, vectors along the S positions.
// GPU: a work-group owns F channels (local dim 0) and a chunk whose R * S values are read by L
// lanes (local dim 1, stride L), summed by a local-memory tree over the lanes.
// Element-wise passes run flat over the N*C*S elements (KILN_VEC per item), with per-channel
// coefficients precomputed, so they stream like a copy.

#ifdef KILN_GPU
#define KILN_BN_MAX_GROUP 256
// Sum of v over the L lanes (local dim 1) of each channel column f; every item gets its column's
// sum. The tree order is fixed, so the result is deterministic. All items must call it.
inline float kiln_bn_tree_sum(__local float* red, float v, int f, int lane, int F, int L) {
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
// Value j (of R * S) of channel c in the chunk starting at sample r0.
#define KILN_BN_AT(p, j) (p)[((r0 + (j) / S) * C + c) * S + (j) % S]
// The GPU body of a backward partial: for each channel c of the group and its chunk of samples,
// partial[2·chunk·C + c] = Σ g and partial[(2·chunk + 1)·C + c] = Σ g·(x − mean) over the
// PER_SAMPLE values of each sample. ELEMENT(j) sets gv and xv for value j of the chunk (r0, c
// and j in scope); the lanes stride over the values and a tree sums them. It declares local
// memory, so it stands at a kernel's outermost scope.
#define KILN_BN_PARTIAL_GPU(PER_SAMPLE, ELEMENT)                                                 \
    const int F = get_local_size(0), L = get_local_size(1);                                  \
    const int f = get_local_id(0), lane = get_local_id(1);                                   \
    const int c = get_group_id(0) * F + f, chunk = get_group_id(1);                          \
    if (chunk >= chunks) return;  /* uniform over the group */                               \
    const int r0 = chunk * R, count = (min(N, r0 + R) - r0) * (PER_SAMPLE);                  \
    __local float red[KILN_BN_MAX_GROUP];                                                    \
    float sdy = 0.0f, sdyx = 0.0f;                                                           \
    if (c < C) {                                                                             \
        const float m = mean[c];                                                             \
        for (int j = lane; j < count; j += L) {                                              \
            float gv, xv;                                                                    \
            ELEMENT(j)                                                                       \
            sdy += gv;                                                                       \
            sdyx += gv * (xv - m);                                                            \
        }                                                                                    \
    }                                                                                        \
    sdy = kiln_bn_tree_sum(red, sdy, f, lane, F, L);                                         \
    sdyx = kiln_bn_tree_sum(red, sdyx, f, lane, F, L);                                       \
    if (lane == 0 && c < C) {                                                                \
        partial[(2 * chunk) * C + c] = sdy;                                                  \
        partial[(2 * chunk + 1) * C + c] = sdyx;                                             \
    }
#endif

// partial[(2*chunk) * C + c] = mean of channel c over samples [chunk*R, min(N, chunk*R + R)),
// partial[(2*chunk + 1) * C + c] = the sum over them of (x - chunk mean)^2.
__kernel void bn_partial_stats(const int N, const int C, const int S, const int R,
                               __global const float* x, __global float* partial) {
    const int chunks = (N + R - 1) / R;
#ifdef KILN_GPU
    const int F = get_local_size(0), L = get_local_size(1);
    const int f = get_local_id(0), lane = get_local_id(1);
    const int c = get_group_id(0) * F + f, chunk = get_group_id(1);
    if (chunk >= chunks) return;  // uniform over the group
    const int r0 = chunk * R, count = (min(N, r0 + R) - r0) * S;
    __local float red[KILN_BN_MAX_GROUP];
    // Sums of x - shift (the chunk's first value) stay small: the mean keeps its digits when
    // |mean| >> spread, and a constant channel gives its value exactly.
    const float shift = c < C ? KILN_BN_AT(x, 0) : 0.0f;
    float s = 0.0f;
    if (c < C) for (int j = lane; j < count; j += L) s += KILN_BN_AT(x, j) - shift;
    const float mean = shift + kiln_bn_tree_sum(red, s, f, lane, F, L) / (float)count;
    float q = 0.0f;
    if (c < C) for (int j = lane; j < count; j += L) { const float d = KILN_BN_AT(x, j) - mean; q += d * d; }
    const float m2 = kiln_bn_tree_sum(red, q, f, lane, F, L);
    if (lane == 0 && c < C) {
        partial[(2 * chunk) * C + c] = mean;
        partial[(2 * chunk + 1) * C + c] = m2;
    }
#else
    const int chunk = get_global_id(1);
    if (chunk >= chunks) return;
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    if (S == 1) {
        const int c0 = get_global_id(0) * KILN_VEC;
        if (c0 >= C) return;
        // Pass 1: the chunk's mean, from sums of x - shift (the chunk's first row), which stay
        // small. Two accumulators halve the dependent-add chain.
        const floatv shift = kiln_loadv(x + r0 * C, c0, C);
        floatv s0 = 0.0f, s1 = 0.0f;
        int r = r0;
        for (; r + 1 < r1; r += 2) {
            s0 += kiln_loadv(x + r * C, c0, C) - shift;
            s1 += kiln_loadv(x + (r + 1) * C, c0, C) - shift;
        }
        if (r < r1) s0 += kiln_loadv(x + r * C, c0, C) - shift;
        const floatv mean = shift + (s0 + s1) / (float)(r1 - r0);
        // Pass 2: squared deviations from the chunk mean; the chunk is still in cache.
        floatv q0 = 0.0f, q1 = 0.0f;
        for (r = r0; r + 1 < r1; r += 2) {
            const floatv d0 = kiln_loadv(x + r * C, c0, C) - mean;
            const floatv d1 = kiln_loadv(x + (r + 1) * C, c0, C) - mean;
            q0 = fma(d0, d0, q0);
            q1 = fma(d1, d1, q1);
        }
        if (r < r1) { const floatv d = kiln_loadv(x + r * C, c0, C) - mean; q0 = fma(d, d, q0); }
        kiln_storev(mean, partial + (2 * chunk) * C, c0, C);
        kiln_storev(q0 + q1, partial + (2 * chunk + 1) * C, c0, C);
        return;
    }
    const int c = get_global_id(0);
    if (c >= C) return;
    const float shift = x[(r0 * C + c) * S];
    floatv s0 = 0.0f;
    float st = 0.0f;
    for (int r = r0; r < r1; ++r) {
        __global const float* p = x + (r * C + c) * S;
        int i = 0;
        for (; i + KILN_VEC <= S; i += KILN_VEC) s0 += vloadv(0, p + i) - shift;
        for (; i < S; ++i) st += p[i] - shift;
    }
    const float mean = shift + (kiln_hsum(s0) + st) / (float)((r1 - r0) * S);
    floatv q0 = 0.0f;
    float qt = 0.0f;
    for (int r = r0; r < r1; ++r) {
        __global const float* p = x + (r * C + c) * S;
        int i = 0;
        for (; i + KILN_VEC <= S; i += KILN_VEC) { const floatv d = vloadv(0, p + i) - mean; q0 = fma(d, d, q0); }
        for (; i < S; ++i) { const float d = p[i] - mean; qt += d * d; }
    }
    partial[(2 * chunk) * C + c] = mean;
    partial[(2 * chunk + 1) * C + c] = kiln_hsum(q0) + qt;
#endif
}

// One item per channel: merges the chunk statistics in chunk order (Chan et al.):
//   delta = mean_b - mean_a, mean = mean_a + delta * n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n.
// Writes save_mean, save_invstd = 1 / sqrt(var + eps) with the biased var = M2 / (N S), and when
// update_running != 0: running = (1 - momentum) * running + momentum * batch statistic, with the
// unbiased variance M2 / (N S - 1) for running_var (PyTorch). The launcher rejects N S = 1.
// coef = [mean | scale | shift] (C each) for bn_apply: scale = gamma * invstd, shift = beta
// (affine), or invstd and 0. gamma and beta are not read when affine = 0.
__kernel void bn_finalize_stats(const int N, const int C, const int S, const int R,
                                __global const float* partial, const float eps, const float momentum,
                                const int update_running, __global float* save_mean,
                                __global float* save_invstd, __global float* running_mean,
                                __global float* running_var, const int affine,
                                __global const float* gamma, __global const float* beta,
                                __global float* coef) {
    const int c = get_global_id(0);
    if (c >= C) return;
    const int chunks = (N + R - 1) / R;
    float mean = partial[c], m2 = partial[C + c];
    float count = (float)(min(R, N) * S);
    for (int k = 1; k < chunks; ++k) {
        const float nb = (float)(min(R, N - k * R) * S), n = count + nb;
        const float delta = partial[(2 * k) * C + c] - mean;
        mean += delta * (nb / n);
        m2 += partial[(2 * k + 1) * C + c] + delta * delta * (count * (nb / n));
        count = n;
    }
    const float total = (float)N * (float)S;
    const float invstd = 1.0f / sqrt(m2 / total + eps);
    save_mean[c] = mean;
    save_invstd[c] = invstd;
    if (update_running) {
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (m2 / (total - 1.0f));
    }
    coef[c] = mean;
    coef[C + c] = affine ? gamma[c] * invstd : invstd;
    coef[2 * C + c] = affine ? beta[c] : 0.0f;
}

// Eval: coef = [running_mean | scale | shift] with invstd = 1 / sqrt(running_var + eps), as above.
__kernel void bn_eval_coefficients(const int C, __global const float* running_mean,
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

// The per-channel values v[c] of the KILN_VEC elements from flat index i on (c = i / S % C): one
// broadcast value when the vector lies in one channel's run, a vector load when S = 1 and the
// channels do not wrap, else per lane (wrapping to channel 0 at the end of a sample).
inline floatv kiln_bn_channel(__global const float* v, const int i, const int C, const int S) {
    if (S == 1 && i % C + KILN_VEC <= C) return vloadv(0, v + i % C);
    const int first = i / S;
    if ((i + KILN_VEC - 1) / S == first) return (floatv)(v[first % C]);
    float t[KILN_VEC];
    for (int k = 0; k < KILN_VEC; ++k) t[k] = v[((i + k) / S) % C];
    return vloadv(0, t);
}

// y = act((x - mean) * scale + shift), coef = [mean | scale | shift] per channel, over all
// n = N*C*S elements; act a KILN_ACT_* code (0: none), so a following activation costs no pass of
// its own. (x - mean) stays explicit: folding it into x * scale + (shift - mean * scale) cancels
// badly when |mean| >> std.
__kernel void bn_apply(const int n, const int C, const int S, __global const float* x,
                       __global const float* coef, __global float* y, const int act, const float slope) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    const floatv mean = kiln_bn_channel(coef, i, C, S), scale = kiln_bn_channel(coef + C, i, C, S);
    const floatv shift = kiln_bn_channel(coef + 2 * C, i, C, S);
    const floatv z = fma(kiln_loadv(x, i, n) - mean, scale, shift);
    kiln_storev(KILN_ACT(z, act, slope, floatv), y, i, n);
}

// partial[(2*chunk) * C + c] = sum of dy, partial[(2*chunk + 1) * C + c] = sum of dy * (x - mean)
// over the values of the chunk (same chunking as bn_partial_stats).
__kernel void bn_backward_partial(const int N, const int C, const int S, const int R,
                                  __global const float* x, __global const float* dy,
                                  __global const float* mean, __global float* partial) {
    const int chunks = (N + R - 1) / R;
#ifdef KILN_GPU
#define KILN_BN_PLAIN(j) gv = KILN_BN_AT(dy, j); xv = KILN_BN_AT(x, j);
    KILN_BN_PARTIAL_GPU(S, KILN_BN_PLAIN)
#undef KILN_BN_PLAIN
#else
    const int chunk = get_global_id(1);
    if (chunk >= chunks) return;
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    if (S == 1) {
        const int c0 = get_global_id(0) * KILN_VEC;
        if (c0 >= C) return;
        const floatv m = kiln_loadv(mean, c0, C);
        floatv a0 = 0.0f, a1 = 0.0f, b0 = 0.0f, b1 = 0.0f;
        int r = r0;
        for (; r + 1 < r1; r += 2) {
            const floatv g0 = kiln_loadv(dy + r * C, c0, C), g1 = kiln_loadv(dy + (r + 1) * C, c0, C);
            a0 += g0;
            a1 += g1;
            b0 = fma(g0, kiln_loadv(x + r * C, c0, C) - m, b0);
            b1 = fma(g1, kiln_loadv(x + (r + 1) * C, c0, C) - m, b1);
        }
        if (r < r1) {
            const floatv g = kiln_loadv(dy + r * C, c0, C);
            a0 += g;
            b0 = fma(g, kiln_loadv(x + r * C, c0, C) - m, b0);
        }
        kiln_storev(a0 + a1, partial + (2 * chunk) * C, c0, C);
        kiln_storev(b0 + b1, partial + (2 * chunk + 1) * C, c0, C);
        return;
    }
    const int c = get_global_id(0);
    if (c >= C) return;
    const float m = mean[c];
    floatv a = 0.0f, b = 0.0f;
    float at = 0.0f, bt = 0.0f;
    for (int r = r0; r < r1; ++r) {
        const int o = (r * C + c) * S;
        int i = 0;
        for (; i + KILN_VEC <= S; i += KILN_VEC) {
            const floatv g = vloadv(0, dy + o + i);
            a += g;
            b = fma(g, vloadv(0, x + o + i) - m, b);
        }
        for (; i < S; ++i) {
            at += dy[o + i];
            bt += dy[o + i] * (x[o + i] - m);
        }
    }
    partial[(2 * chunk) * C + c] = kiln_hsum(a) + at;
    partial[(2 * chunk + 1) * C + c] = kiln_hsum(b) + bt;
#endif
}

// One item per channel: sums the chunks in order, then with xhat = (x - mean) * invstd and
// M = N S values per channel:
//   dbeta = sum dy, dgamma = sum dy * xhat (written when affine != 0),
//   dx = k * dy - k * mean(dy) - k * invstd * mean(dy * xhat) * (x - mean), k = gamma * invstd,
// which is gamma * invstd / M * (M dy - sum dy - xhat * sum dy xhat). The per-channel
// coefficients go to coef = [mean | k | k * mean(dy) | k * invstd * mean(dy * xhat)].
__kernel void bn_backward_finalize(const int N, const int C, const int S, const int R,
                                   __global const float* partial, __global const float* mean,
                                   __global const float* invstd, const int affine,
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
    const float is = invstd[c], sdyxhat = sdyx * is, total = (float)N * (float)S;
    if (affine) {
        dgamma[c] = sdyxhat;
        dbeta[c] = sdy;
    }
    const float k = affine ? gamma[c] * is : is;
    coef[c] = mean[c];
    coef[C + c] = k;
    coef[2 * C + c] = k * (sdy / total);
    coef[3 * C + c] = k * is * (sdyxhat / total);
}

// dx = k * dy - k * mean(dy) - k * invstd * mean(dy * xhat) * (x - mean) over all n = N*C*S
// elements, coefficients from bn_backward_finalize.
__kernel void bn_backward_dx(const int n, const int C, const int S, __global const float* x,
                             __global const float* dy, __global const float* coef, __global float* dx) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    const floatv mean = kiln_bn_channel(coef, i, C, S), k = kiln_bn_channel(coef + C, i, C, S);
    const floatv kdy = kiln_bn_channel(coef + 2 * C, i, C, S);
    const floatv kxhat = kiln_bn_channel(coef + 3 * C, i, C, S);
    kiln_storev(k * kiln_loadv(dy, i, n) - kdy - kxhat * (kiln_loadv(x, i, n) - mean), dx, i, n);
}

// =============================================================================================
// Counter-based random numbers and dropout
// =============================================================================================
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11). Stateless,
// so every element is computed independently and a run is identical on every device.
//
// Stream layout (the Swift launchers and tests rely on it):
//   key     = (seed_lo, seed_hi)                      -- the 64-bit seed's low and high halves
//   counter = (block_lo, block_hi, offset_lo, offset_hi)
//   element i of a fill uses word (i % 4) of the Philox output for block = i / 4 (64-bit).
// So (seed, offset) names a stream; callers take a fresh offset per call for fresh numbers.
// uint32 -> float in [0, 1): u = (float)(w >> 8) * 2^-24 (24 bits, exact; max 1 - 2^-24).

#define KILN_PHILOX_M0 0xD2511F53u
#define KILN_PHILOX_M1 0xCD9E8D57u
#define KILN_PHILOX_W0 0x9E3779B9u
#define KILN_PHILOX_W1 0xBB67AE85u

// One Philox round on counter words c0..c3 of type T (uint, or a uint vector of independent
// lanes) with key words k0, k1 (uint).
#define KILN_PHILOX_ROUND(T, c0, c1, c2, c3, k0, k1) do { \
        const T hi0_ = mul_hi((T)KILN_PHILOX_M0, c0), lo0_ = (T)KILN_PHILOX_M0 * c0; \
        const T hi1_ = mul_hi((T)KILN_PHILOX_M1, c2), lo1_ = (T)KILN_PHILOX_M1 * c2; \
        c0 = hi1_ ^ c1 ^ (k0); c1 = lo1_; c2 = hi0_ ^ c3 ^ (k1); c3 = lo0_; \
    } while (0)

// The key bump by the Weyl constants, then a round.
#define KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0, k1) do { \
        k0 += KILN_PHILOX_W0; k1 += KILN_PHILOX_W1; KILN_PHILOX_ROUND(T, c0, c1, c2, c3, k0, k1); \
    } while (0)

// Philox-4x32-10: ten rounds, the key bumped between rounds. Unrolled by hand: on PoCL the
// uint16-lane version ran 1.5x faster than with a loop over the rounds (measured).
#define KILN_PHILOX_10(T, c0, c1, c2, c3, key0, key1) do { \
        uint k0_ = (key0), k1_ = (key1); \
        KILN_PHILOX_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
        KILN_PHILOX_BUMP_ROUND(T, c0, c1, c2, c3, k0_, k1_); \
    } while (0)

// A work-item runs KILN_VEC Philox blocks in uintv lanes (lane b = block + b), so each round is a
// handful of vector instructions (one block on a GPU, which vectorizes across work-items). It
// covers KILN_RAND_RE = 4 * KILN_VEC consecutive elements, as 4 chunks of KILN_VEC. Every vector
// is kept in a named variable: on PoCL, private arrays of vectors (w[4]) stayed in memory and made
// the fills 2.5x slower (measured).
#define KILN_RAND_RE (4 * KILN_VEC)

// Counter words 0 and 1 (the 64-bit block index, low and high) of blocks block + lane.
inline uintv kiln_block_lo(ulong block) {
    return (uintv)((uint)block) + as_uintv(KILN_IOTA);
}
inline uintv kiln_block_hi(ulong block) {
#if KILN_VEC == 1
    return (uint)(block >> 32);
#else
    // Lanes whose low word wrapped past 2^32 carry 1 (a true vector comparison is -1).
    return (uintv)((uint)(block >> 32)) - as_uintv(kiln_block_lo(block) < (uintv)((uint)block));
#endif
}

// Declares uintv c0..c3 and runs Philox on them: word j of block (i / 4) + b in lane b of cj.
// Uses the kernel's arguments seed_lo, seed_hi, off_lo, off_hi.
#define KILN_PHILOX_WORDS(i) \
    uintv c0 = kiln_block_lo((ulong)((i) / 4)), c1 = kiln_block_hi((ulong)((i) / 4)); \
    uintv c2 = (uintv)(off_lo), c3 = (uintv)(off_hi); \
    KILN_PHILOX_10(uintv, c0, c1, c2, c3, seed_lo, seed_hi)

// Word-major (vj lane b is element 4b + j) to element order in place (vk lane l becomes element
// KILN_VEC * k + l): interleave words 0/1 and 2/3 lane by lane, then pairs of them. Nothing to do
// for one lane (v0..v3 are elements 0..3 already).
#if KILN_VEC == 1
#define KILN_TO_ELEMENTS(T, v0, v1, v2, v3) do { } while (0)
#else
#if KILN_VEC == 16
#define KILN_INTERLEAVE ((uint16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23))
#define KILN_PAIRS ((uint16)(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23))
#elif KILN_VEC == 8
#define KILN_INTERLEAVE ((uint8)(0, 8, 1, 9, 2, 10, 3, 11))
#define KILN_PAIRS ((uint8)(0, 1, 8, 9, 2, 3, 10, 11))
#else
#define KILN_INTERLEAVE ((uint4)(0, 4, 1, 5))
#define KILN_PAIRS ((uint4)(0, 1, 4, 5))
#endif
#define KILN_TO_ELEMENTS(T, v0, v1, v2, v3) do { \
        const uintv lo_ = KILN_INTERLEAVE, hi_ = lo_ + KILN_VEC / 2, pairs_ = KILN_PAIRS; \
        const T a_ = shuffle2(v0, v1, lo_), a2_ = shuffle2(v0, v1, hi_); /* words 0, 1 */ \
        const T b_ = shuffle2(v2, v3, lo_), b2_ = shuffle2(v2, v3, hi_); /* words 2, 3 */ \
        v0 = shuffle2(a_, b_, pairs_); v1 = shuffle2(a_, b_, pairs_ + KILN_VEC / 2); \
        v2 = shuffle2(a2_, b2_, pairs_); v3 = shuffle2(a2_, b2_, pairs_ + KILN_VEC / 2); \
    } while (0)
#endif

// Stores the work-item's KILN_RAND_RE elements (chunks v0..v3) below n: one bounds check for the
// common full case (a check per chunk cost ~30% in the fills, measured).
inline void kiln_store_elements(floatv v0, floatv v1, floatv v2, floatv v3, __global float* p, int i, int n) {
    if (i + KILN_RAND_RE <= n) {
        vstorev(v0, 0, p + i); vstorev(v1, 1, p + i); vstorev(v2, 2, p + i); vstorev(v3, 3, p + i);
        return;
    }
    float t[KILN_RAND_RE];
    vstorev(v0, 0, t); vstorev(v1, 1, t); vstorev(v2, 2, t); vstorev(v3, 3, t);
    for (int k = 0; k < KILN_RAND_RE && i + k < n; ++k) p[i + k] = t[k];
}

// Uniform floats in [0, 1) from words: the top 24 bits times 2^-24 (exact).
#define KILN_UNIT(bits) (convert_floatv((bits) >> 8) * 0x1.0p-24f)

// out[i] = word i of the stream whose first block is first_block (the raw generator, for
// Tensor.randomBits and the tests against the published known answers).
__kernel void philox_bits(const int n, const uint seed_lo, const uint seed_hi, const uint off_lo,
                          const uint off_hi, const uint first_lo, const uint first_hi,
                          __global uint* out) {
    const int i = get_global_id(0) * KILN_RAND_RE;
    if (i >= n) return;
    const ulong block = (((ulong)first_hi << 32) | first_lo) + (ulong)(i / 4);
    uintv c0 = kiln_block_lo(block), c1 = kiln_block_hi(block), c2 = (uintv)(off_lo), c3 = (uintv)(off_hi);
    KILN_PHILOX_10(uintv, c0, c1, c2, c3, seed_lo, seed_hi);
    KILN_TO_ELEMENTS(uintv, c0, c1, c2, c3);
    uint t[KILN_RAND_RE];
    vstorev(c0, 0, t); vstorev(c1, 1, t); vstorev(c2, 2, t); vstorev(c3, 3, t);
    for (int k = 0; k < KILN_RAND_RE && i + k < n; ++k) out[i + k] = t[k];
}

// low + (high - low) * u with one rounding (fma, so the host can reproduce it bit for bit),
// clamped to top = the float below high (rounding could otherwise reach high).
inline floatv kiln_uniform(uintv w, float low, float high, float top) {
    const floatv r = fma((floatv)(high - low), KILN_UNIT(w), (floatv)(low));
    return select(r, (floatv)(top), r >= high);
}

// out[i] = low + (high - low) * u_i, u_i = (w_i >> 8) * 2^-24, in [low, high).
__kernel void rand_uniform(const int n, const uint seed_lo, const uint seed_hi, const uint off_lo,
                           const uint off_hi, const float low, const float high, __global float* out) {
    const int i = get_global_id(0) * KILN_RAND_RE;
    if (i >= n) return;
    KILN_PHILOX_WORDS(i);
    const float top = nextafter(high, low);
    floatv r0 = kiln_uniform(c0, low, high, top), r1 = kiln_uniform(c1, low, high, top);
    floatv r2 = kiln_uniform(c2, low, high, top), r3 = kiln_uniform(c3, low, high, top);
    KILN_TO_ELEMENTS(floatv, r0, r1, r2, r3);
    kiln_store_elements(r0, r1, r2, r3, out, i, n);
}

// out[i] = mean + std * z_i, standard normals z by Box-Muller on word pairs (0, 1) and (2, 3) of
// each block: u1 = ((w_a >> 8) + 1) * 2^-24 in (0, 1] (never log 0), u2 = (w_b >> 8) * 2^-24,
//   z_a = sqrt(-2 ln u1) * cos(2 pi u2), z_b = sqrt(-2 ln u1) * sin(2 pi u2).
// cospi/sinpi take the exact argument 2 u2. Transcendentals differ by a few ulp between devices.
__kernel void rand_normal(const int n, const uint seed_lo, const uint seed_hi, const uint off_lo,
                          const uint off_hi, const float mean, const float std, __global float* out) {
    const int i = get_global_id(0) * KILN_RAND_RE;
    if (i >= n) return;
    KILN_PHILOX_WORDS(i);
    const floatv radius01 = sqrt(-2.0f * log((convert_floatv(c0 >> 8) + 1.0f) * 0x1.0p-24f));
    const floatv radius23 = sqrt(-2.0f * log((convert_floatv(c2 >> 8) + 1.0f) * 0x1.0p-24f));
    const floatv angle01 = 2.0f * KILN_UNIT(c1), angle23 = 2.0f * KILN_UNIT(c3);
    floatv z0 = radius01 * cospi(angle01) * std + mean, z1 = radius01 * sinpi(angle01) * std + mean;
    floatv z2 = radius23 * cospi(angle23) * std + mean, z3 = radius23 * sinpi(angle23) * std + mean;
    KILN_TO_ELEMENTS(floatv, z0, z1, z2, z3);
    kiln_store_elements(z0, z1, z2, z3, out, i, n);
}

// Dropout. Element i is kept when u_i >= p, u_i from the Philox stream (seed, offset) exactly as
// rand_uniform with low = 0, high = 1; kept elements are scaled by scale = 1 / (1 - p) (0 when
// p = 1, so p = 1 gives zeros, and p = 0 keeps all with scale 1: the identity). With group > 1,
// whole runs of `group` consecutive elements share the draw of their first element (Dropout2d:
// one draw per channel of a sample). The backward pass is the same map applied to dy, regenerated
// from (seed, offset), so no mask is stored. y may be x.
inline floatv kiln_dropout(const floatv x, const uintv w, const float p, const float scale) {
    return select((floatv)(0.0f), x * scale, KILN_UNIT(w) >= p);
}

__kernel void dropout(const int n, const float p, const float scale, const uint seed_lo,
                      const uint seed_hi, const uint off_lo, const uint off_hi,
                      __global const float* x, __global float* y) {
    const int i = get_global_id(0) * KILN_RAND_RE;
    if (i >= n) return;
    KILN_PHILOX_WORDS(i);
    KILN_TO_ELEMENTS(uintv, c0, c1, c2, c3);
    kiln_store_elements(kiln_dropout(kiln_loadv(x, i, n), c0, p, scale),
                        kiln_dropout(kiln_loadv(x, i + KILN_VEC, n), c1, p, scale),
                        kiln_dropout(kiln_loadv(x, i + 2 * KILN_VEC, n), c2, p, scale),
                        kiln_dropout(kiln_loadv(x, i + 3 * KILN_VEC, n), c3, p, scale), y, i, n);
}

// Dropout2d / grouped dropout: y[i] = keep(i / group) ? x[i] * scale : 0 with keep(j) the dropout
// decision of element j of the same stream (so group = 1 is dropout itself).
__kernel void dropout_grouped(const int n, const int group, const float p, const float scale,
                              const uint seed_lo, const uint seed_hi, const uint off_lo,
                              const uint off_hi, __global const float* x, __global float* y) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int j = i / group;
    uint c0 = (uint)(j / 4), c1 = 0u, c2 = off_lo, c3 = off_hi;
    KILN_PHILOX_10(uint, c0, c1, c2, c3, seed_lo, seed_hi);
    const int w = j % 4;
    const uint word = w == 0 ? c0 : w == 1 ? c1 : w == 2 ? c2 : c3;
    y[i] = ((float)(word >> 8) * 0x1.0p-24f) >= p ? x[i] * scale : 0.0f;
}

// =============================================================================================
// Optimizer updates: PyTorch's single-tensor formulas (torch/optim/sgd.py, adam.py, adamw.py,
// rmsprop.py), KILN_VEC elements per work-item
// =============================================================================================
// Scalars that depend on the step (bias corrections, AdamW's decay factor) are computed on the
// host in double. Flags are uniform, so the branches cost nothing. Buffers behind a disabled flag
// are not touched (the launcher passes the parameter buffer in their place).

// SGD: g = grad + wd * p; with momentum: buf = g on the first step, else
// buf = momentum * buf + (1 - dampening) * g; g = nesterov ? g + momentum * buf : buf; p -= lr * g.
__kernel void sgd_step(const int n, const float lr, const float momentum, const float dampening,
                       const float weight_decay, const int nesterov, const int first,
                       __global float* param, __global const float* grad, __global float* buf) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    const floatv p = kiln_loadv(param, i, n);
    floatv g = kiln_loadv(grad, i, n);
    if (weight_decay != 0.0f) g += weight_decay * p;
    if (momentum != 0.0f) {
        floatv b = g;
        if (!first) b = momentum * kiln_loadv(buf, i, n) + (1.0f - dampening) * g;
        kiln_storev(b, buf, i, n);
        g = nesterov ? g + momentum * b : b;
    }
    kiln_storev(p - lr * g, param, i, n);
}

// Adam / AdamW for up to 8 tensors in one launch (a model's parameters in one or two launches
// instead of one each): p *= decay (AdamW: 1 - lr * wd; else 1); g = grad + l2 * p (Adam's weight
// decay; 0 for AdamW); m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
// p -= step_size * m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / (1 - beta1^t),
// bc2_sqrt = sqrt(1 - beta2^t). Tensor k owns work-items [start_k, start_k + ceil(n_k / KILN_VEC));
// unused slots have n_k = 0. Which tensor a work-item serves is uniform over long runs, so the
// branch costs little.
inline void kiln_adam_update(const int n, const int i, const float decay, const float l2, const float beta1,
                             const float beta2, const float eps, const float step_size, const float bc2_sqrt,
                             __global float* param, __global const float* grad, __global float* exp_avg,
                             __global float* exp_avg_sq) {
    floatv p = kiln_loadv(param, i, n);
    floatv g = kiln_loadv(grad, i, n);
    if (decay != 1.0f) p *= decay;
    if (l2 != 0.0f) g += l2 * p;
    const floatv m = beta1 * kiln_loadv(exp_avg, i, n) + (1.0f - beta1) * g;
    const floatv v = beta2 * kiln_loadv(exp_avg_sq, i, n) + (1.0f - beta2) * g * g;
    kiln_storev(m, exp_avg, i, n);
    kiln_storev(v, exp_avg_sq, i, n);
    kiln_storev(p - step_size * (m / (sqrt(v) / bc2_sqrt + eps)), param, i, n);
}

#define KILN_ADAM_SLOT(k) const int n##k, const int start##k, __global float* p##k, \
                          __global const float* g##k, __global float* m##k, __global float* v##k
#define KILN_ADAM_TRY(k)                                                                          \
    if (w >= start##k && w < start##k + (n##k + KILN_VEC - 1) / KILN_VEC) {                       \
        kiln_adam_update(n##k, (w - start##k) * KILN_VEC, decay, l2, beta1, beta2, eps, step_size, \
                         bc2_sqrt, p##k, g##k, m##k, v##k);                                       \
        return;                                                                                   \
    }
__kernel void adam_step(const float decay, const float l2, const float beta1, const float beta2,
                        const float eps, const float step_size, const float bc2_sqrt,
                        KILN_ADAM_SLOT(0), KILN_ADAM_SLOT(1), KILN_ADAM_SLOT(2), KILN_ADAM_SLOT(3),
                        KILN_ADAM_SLOT(4), KILN_ADAM_SLOT(5), KILN_ADAM_SLOT(6), KILN_ADAM_SLOT(7)) {
    const int w = get_global_id(0);
    KILN_ADAM_TRY(0) KILN_ADAM_TRY(1) KILN_ADAM_TRY(2) KILN_ADAM_TRY(3)
    KILN_ADAM_TRY(4) KILN_ADAM_TRY(5) KILN_ADAM_TRY(6) KILN_ADAM_TRY(7)
}

// RMSprop: g = grad + wd * p; v = alpha v + (1 - alpha) g^2; centered: ga += (1 - alpha)(g - ga),
// avg = sqrt(v - ga^2) + eps, else avg = sqrt(v) + eps; momentum > 0: buf = momentum buf + g / avg,
// p -= lr * buf; else p -= lr * g / avg.
__kernel void rmsprop_step(const int n, const float lr, const float alpha, const float eps,
                           const float weight_decay, const float momentum, const int centered,
                           __global float* param, __global const float* grad, __global float* square_avg,
                           __global float* grad_avg, __global float* buf) {
    const int i = get_global_id(0) * KILN_VEC;
    if (i >= n) return;
    const floatv p = kiln_loadv(param, i, n);
    floatv g = kiln_loadv(grad, i, n);
    if (weight_decay != 0.0f) g += weight_decay * p;
    const floatv v = alpha * kiln_loadv(square_avg, i, n) + (1.0f - alpha) * g * g;
    kiln_storev(v, square_avg, i, n);
    floatv avg;
    if (centered) {
        const floatv ga0 = kiln_loadv(grad_avg, i, n);
        const floatv ga = ga0 + (1.0f - alpha) * (g - ga0);
        kiln_storev(ga, grad_avg, i, n);
        avg = sqrt(v - ga * ga) + eps;
    } else {
        avg = sqrt(v) + eps;
    }
    if (momentum > 0.0f) {
        const floatv b = momentum * kiln_loadv(buf, i, n) + g / avg;
        kiln_storev(b, buf, i, n);
        kiln_storev(p - lr * b, param, i, n);
    } else {
        kiln_storev(p - lr * (g / avg), param, i, n);
    }
}

#endif  // !KILN_ONLY_MATMUL
// =============================================================================================
// Matrix products
// =============================================================================================
/* C = op(A) . op(B)    op(A): M x K,  op(B): K x N,  C: M x N,  all row-major, for each of a
 * batch of such products (global dimension 2).
 *
 * Kernels (same argument list for every one):
 *   matmul_nn, matmul_nt, matmul_tn, matmul_tt           large products
 *   matmul_small_nn, _nt, _tn, _tt                       tiny products, CPU only (see "Small")
 *
 *   (const int M, const int N, const int K,
 *    __global const float* A, const int lda,   A stored M x K (n) or K x M (t)
 *    __global const float* B, const int ldb,   B stored K x N (n) or N x K (t)
 *    __global float* C, const int ldc,
 *    __global const float* bias,               N floats (M with bit2); any buffer when bit1 is off
 *    const int flags, const float slope,
 *    const int sa, const int sb, const int sc, element strides between the batch's products
 *                                              (0: the same matrix for every product)
 *    const int nb)                             products summed into each C (1: none; a weight
 *                                              gradient sums one per sample)
 *
 * flags: bit0 accumulate, bit1 add bias, bit2 the bias is per row of C (one per m: a convolution's
 *        channels) instead of per column, bits 4..7 the activation (KILN_ACT_* codes).
 *   C = (accumulate ? C_old : 0) + act(op(A).op(B) + bias)
 * i.e. the activation never sees C_old.  Accumulate is meant for gradient
 * accumulation (no bias, no activation); the combination is defined but unusual.
 *
 * Launch rule (host, MatmulConfig.launch): CPU path: 2-D NDRange per product,
 *   dim0 over "vector" tiles of TV = KILN_VEC*KILN_MM_TNV columns, dim1 over "row" tiles of
 *   KILN_MM_TM, where (rows, cols) = (M, N) for nn, nt, tn and (N, M) for tt (tt writes C
 *   transposed). Work-items past the last tile do no stores, so the global size may be rounded
 *   up to a multiple of the local size freely.
 */

/* ---------------------------------------------------------------- parameters */
/* CPU path (PoCL).  One work-item owns a KILN_MM_TM x (KILN_VEC*KILN_MM_TNV) tile of C in
 * registers: TM*TNV vector accumulators.  PoCL reaches FMA peak only with explicit vectors and
 * >= 8 independent accumulators; AVX2 has 16 ymm registers, so 6 x (2 x float8) = 12
 * accumulators + 2 loads + 1 broadcast is the classic fit. */
#ifndef KILN_MM_TM
#define KILN_MM_TM 6
#endif
#ifndef KILN_MM_TNV
#define KILN_MM_TNV 2
#endif
/* K slice per barrier in the summed-batch kernels matmul_sum_* (see KILN_MM_DEFINE_OUTER). The
 * other kernels have no barrier: on PoCL a barrier's mere presence costs (values live across it are
 * spilled; measured 1.5x on a K = 64 product), while a summed batch, whose K runs over a whole batch,
 * needs the group to share each product's operands in cache. */
#ifndef KILN_MM_KB
#define KILN_MM_KB 256
#endif
/* The same K slice for the other outer-product kernels (nn, tn, tt); 0, the default, compiles them
 * without the barrier. A tuner's candidate: large K (1024^3) may gain from it where the barrier's
 * spills cost less than the cache misses. */
#ifndef KILN_MM_MKB
#define KILN_MM_MKB 0
#endif
/* Work-group order: PoCL hands out groups in row-major group-id order.  With
 * KILN_MM_SWZ = R > 1, consecutive groups instead walk down bands of R group rows, so a band's
 * rows of the scalar operand stay in cache while the other operand's panels stream past once per
 * band instead of once per group row. */
#ifndef KILN_MM_SWZ
#define KILN_MM_SWZ 4
#endif
/* nt has no operand that is contiguous along an output dimension, so it runs dot products along
 * K instead (float KILN_MM_DVW vectors), KILN_MM_DTM x KILN_MM_DTN outputs at a time; the
 * work-item walks its tile in such sub-tiles so that the launch rule is the same as nn/tn. */
#ifndef KILN_MM_DVW
#define KILN_MM_DVW 8
#endif
#ifndef KILN_MM_DTM
#define KILN_MM_DTM 3
#endif
#ifndef KILN_MM_DTN
#define KILN_MM_DTN 4
#endif
/* nt products with K above KILN_MM_DKB run K in blocks of that many (the weight gradient of a
 * convolution sums over every position of the batch: K = 25088 for a 14 x 14 layer at batch 128). */
#ifndef KILN_MM_DKB
#define KILN_MM_DKB 1024
#endif
/* Small: products whose whole work is a few microseconds (the MLP head, 128 x 128 x 10).
 * Narrow tiles (KILN_MM_STM rows of one KILN_MM_SVW-float vector) give enough work-items for both
 * cores and keep N >= KILN_MM_SVW on the vectorised path. */
#ifndef KILN_MM_STM
#define KILN_MM_STM 2
#endif
#ifndef KILN_MM_SVW
#define KILN_MM_SVW 8
#endif
#ifndef KILN_MM_SDTN
#define KILN_MM_SDTN 4
#endif

/* full unrolling turns the per-work-item tile arrays into registers */
#define KILN_UNROLL _Pragma("unroll")
#define KILN_CAT_(a, b) a##b
#define KILN_CAT(a, b) KILN_CAT_(a, b)
#define kiln_floatsv KILN_CAT(float, KILN_MM_SVW)
#define kiln_vloadsv KILN_CAT(vload, KILN_MM_SVW)
#define kiln_vstoresv KILN_CAT(vstore, KILN_MM_SVW)
#define kiln_floatd KILN_CAT(float, KILN_MM_DVW)
#define kiln_vloadd KILN_CAT(vload, KILN_MM_DVW)

/* Global id of this work-item after the band swizzle described at KILN_MM_SWZ. */
inline int2 kiln_mm_swizzled_id(const int R) {
    if (R <= 1) return (int2)(get_global_id(0), get_global_id(1));
    const int ngx = get_num_groups(0), ngy = get_num_groups(1);
    const int lin = get_group_id(1) * ngx + get_group_id(0);
    const int band = lin / (R * ngx), in = lin - band * R * ngx;
    const int rows = min(R, ngy - band * R); /* last band may be short */
    const int gx = in / rows, gy = band * R + in % rows;
    return (int2)(gx * get_local_size(0) + get_local_id(0), gy * get_local_size(1) + get_local_id(1));
}

/* Scalar epilogue for one element: edges, transposed stores, dot products. A macro, so that C may
 * be global or local memory. */
#define KILN_MM_STORE1(cp, value, b, flags, slope)                                  \
    do {                                                                            \
        float x_ = (value);                                                         \
        if ((flags) & 2) x_ += (b);                                                 \
        x_ = kiln_act_float(x_, ((flags) >> 4) & 15, (slope));                      \
        *(cp) = ((flags) & 1) ? *(cp) + x_ : x_;                                    \
    } while (0)
inline void kiln_mm_store1(__global float* c, float x, const float b, const int flags, const float slope) {
    KILN_MM_STORE1(c, x, b, flags, slope);
}

#define KILN_MM_ARGS                                                                \
    const int M, const int N, const int K, __global const float *A,                 \
        const int lda, __global const float *B, const int ldb, __global float *C,   \
        const int ldc, __global const float *bias, const int flags,                 \
        const float slope, const int sa, const int sb, const int sc, const int nb

/* The batch's product of this work-item: A, B, C moved to it. With nb > 1 the work-item sums nb
 * products, the operands sa and sb apart, into one C (a weight gradient over a batch). */
#define KILN_MM_BATCH()                                                              \
    const int bz_ = get_global_id(2);                                                \
    A += bz_ * sa * nb; B += bz_ * sb * nb; C += bz_ * sc

/* ------------------------------------------------- outer-product tile (nn/tn/tt)
 * For each k the work-item loads TNV vectors of the "vector" operand (a row of op(B) for nn/tn,
 * a row of stored A for tt: contiguous along the output column) and broadcasts TM scalars of the
 * "scalar" operand, TM*TNV FMAs. Operand addressing is by strides so one body serves three variants:
 *   scalar element (s, k) = sp[s*s_ld + k*s_kst],   vector row k = vp + k*v_ld
 *   output (s, v) = C[s*c_sld + v*c_vld],           bias (s, v) = bias[s*b_s + v*b_v]
 * Inlined with literal strides, the per-variant branches fold away.
 *
 * Edges: a tile that would run past S or V is shifted back to end at S / V, so every load stays
 * inside the matrix and the hot loop has no bounds checks; the rows and lanes it shares with the
 * previous tile are not stored (storing them twice would break accumulate).  Only a matrix
 * smaller than one tile (S < TM or V < TV) falls back to scalar dot products. */
#define KILN_MM_DEFINE_OUTER(FN, TM, TNV, VW, KB, SWZ, VT, VLOAD, VSTORE)           \
    KILN_MM_DEFINE_OUTER_IN(FN, TM, TNV, VW, KB, SWZ, VT, VLOAD, VSTORE, __global, __global, __global)
/* The same body with the scalar operand, the vector operand and C in the given address spaces
 * (global or local memory: the convolutions stage a sample's columns in local memory). */
#define KILN_MM_DEFINE_OUTER_IN(FN, TM, TNV, VW, KB, SWZ, VT, VLOAD, VSTORE, SSP, VSP, CSP) \
inline void FN(const int S, const int V, const int K,                               \
               SSP const float* sp, const int s_ld, const int s_kst,                \
               VSP const float* vp, const int v_ld,                                 \
               CSP float* C, const int c_sld, const int c_vld,                      \
               __global const float* bias, const int b_s, const int b_v,            \
               const int flags, const float slope,                                  \
               const int nb, const int s_b, const int v_b)                          \
{                                                                                   \
    const int TV = TNV * VW;                                                        \
    const int2 g = kiln_mm_swizzled_id(SWZ);                                        \
    const int v0 = g.x * TV, s0 = g.y * TM;                                         \
    if (V < TV || S < TM) {                                                         \
        /* matrix smaller than one tile: plain scalar dot products, kept free       \
         * of vector temporaries that would compete for registers below */          \
        if (v0 >= V || s0 >= S) return;                                             \
        for (int s = s0; s < S && s < s0 + TM; ++s)                                 \
            for (int v = v0; v < V && v < v0 + TV; ++v) {                           \
                float x = 0.0f;                                                     \
                for (int p = 0; p < nb; ++p)                                        \
                    for (int k = 0; k < K; ++k)                                     \
                        x = fma(sp[p * s_b + s * s_ld + k * s_kst], vp[p * v_b + k * v_ld + v], x); \
                KILN_MM_STORE1(C + s * c_sld + v * c_vld, x,                        \
                               (flags & 2) ? bias[s * b_s + v * b_v] : 0.0f, flags, slope); \
            }                                                                       \
        return;                                                                     \
    }                                                                               \
    /* edge tiles are shifted back inside the matrix (see above) */                 \
    const int vl = min(v0, V - TV), sl = min(s0, S - TM);                           \
    VT acc[TM][TNV];                                                                \
    KILN_UNROLL for (int i = 0; i < TM; ++i)                                        \
        KILN_UNROLL for (int j = 0; j < TNV; ++j) acc[i][j] = 0.0f;                 \
    /* a padding work-item (past the last tile) only keeps the group's barriers */   \
    const int idle = v0 >= V || s0 >= S;                                            \
    for (int p = 0; p < nb; ++p) {                                                  \
    SSP const float* sk = sp + p * s_b + sl * s_ld; /* scalar operand at (sl, k) */ \
    VSP const float* vk = vp + p * v_b + vl;        /* vector operand row k */ \
    for (int kb = 0; kb < K; kb += (KB ? KB : K)) {                                 \
        const int ke = idle ? kb : KB ? min(K, kb + KB) : K;                        \
        for (int k = kb; k < ke; ++k, sk += s_kst, vk += v_ld) {                    \
            VT b[TNV];                                                              \
            KILN_UNROLL for (int j = 0; j < TNV; ++j) b[j] = VLOAD(j, vk);          \
            KILN_UNROLL for (int i = 0; i < TM; ++i) {                              \
                const float a = sk[i * s_ld];                                       \
                KILN_UNROLL for (int j = 0; j < TNV; ++j)                           \
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
    }                                                                               \
    if (idle) return; /* after the barriers */                                      \
    const int act = (flags >> 4) & 15;                                              \
    if (c_vld == 1 && vl == v0 && sl == s0) {                                       \
        /* interior tile of a row-major C: whole-vector epilogue; the bias runs     \
         * along the vector (per column) or is one value per row */                 \
        KILN_UNROLL for (int i = 0; i < TM; ++i)                                    \
            KILN_UNROLL for (int j = 0; j < TNV; ++j) {                             \
                CSP float* c = C + (s0 + i) * c_sld + v0 + j * VW;                  \
                VT x = acc[i][j];                                                   \
                if (flags & 2) x += b_s ? (VT)(bias[(s0 + i) * b_s]) : VLOAD(j, bias + v0); \
                x = KILN_ACT(x, act, slope, VT);                                    \
                if (flags & 1) x += VLOAD(0, c);                                    \
                VSTORE(x, 0, c);                                                    \
            }                                                                       \
    } else {                                                                        \
        /* shifted or transposed tile: element stores, skipping the rows and        \
         * lanes that belong to the previous tile */                                \
        KILN_UNROLL for (int i = 0; i < TM; ++i) {                                  \
            const int s = sl + i;                                                   \
            if (s < s0) continue;                                                   \
            float x[TNV * VW];                                                      \
            KILN_UNROLL for (int j = 0; j < TNV; ++j) VSTORE(acc[i][j], j, x);      \
            for (int l = v0 - vl; l < TV; ++l) {                                    \
                const int v = vl + l;                                               \
                KILN_MM_STORE1(C + s * c_sld + v * c_vld, x[l],                     \
                               (flags & 2) ? bias[s * b_s + v * b_v] : 0.0f, flags, slope); \
            }                                                                       \
        }                                                                           \
    }                                                                               \
}

/* Horizontal sum of a kiln_floatd, by halving (log2 steps of vector adds). */
inline float kiln_mm_hsum(kiln_floatd v) {
#if KILN_MM_DVW == 16
    float8 h8 = v.lo + v.hi;
#elif KILN_MM_DVW == 8
    float8 h8 = v;
#endif
#if KILN_MM_DVW >= 8
    float4 h4 = h8.lo + h8.hi;
#else
    float4 h4 = v;
#endif
    float2 h2 = h4.lo + h4.hi;
    return h2.x + h2.y;
}

/* ------------------------------------------------------ dot-product tile (nt)
 * C = A . B^T with A (M x K) and B (N x K) both contiguous along K: each output is a dot product
 * of two rows.  DTM x DTN outputs at a time keep DTM*DTN vector accumulators; the rows are re-read
 * from cache for each sub-tile. */
#define KILN_MM_DEFINE_DOT(FN, TM, TN, DTM, DTN, SWZ, KB)                           \
inline void FN(const int M, const int N, const int K,                               \
               __global const float* A0, const int lda,                             \
               __global const float* B0, const int ldb,                             \
               __global float* C, const int ldc, __global const float* bias,        \
               const int flags, const float slope, const int nb, const int sa, const int sb) \
{                                                                                   \
    const int2 g = kiln_mm_swizzled_id(SWZ);                                        \
    const int n0 = g.x * (TN), m0 = g.y * (TM);                                     \
    if (n0 >= N || m0 >= M) return;                                                 \
    /* A long K runs in blocks of KB, so a sub-tile's rows stay in cache; partial   \
     * sums wait in C between blocks, the epilogue runs on the last. (With          \
     * accumulate, one pass: C holds the old values.) */                            \
    /* A summed batch (nb products) runs in blocks of several products when K is short: each    \
     * block's dots accumulate in registers, the partial sums wait in C between blocks. */     \
    const int kstep = (KB) > 0 && K > (KB) && !(flags & 1) ? (KB) : K;              \
    const int pstep = kstep == K && (KB) > 0 ? max(1, (KB) / K) : 1;               \
    for (int pb = 0; pb < nb; pb += pstep)                                          \
    for (int kb = 0; kb < K; kb += kstep) {                                         \
        const int pe = min(nb, pb + pstep);                                         \
        const int ke = min(K, kb + kstep), kv = kb + (ke - kb) / KILN_MM_DVW * KILN_MM_DVW; \
        const int first = pb == 0 && kb == 0, last = pe == nb && ke == K;           \
        for (int si = 0; si < (TM) && m0 + si < M; si += DTM)                       \
            for (int sj = 0; sj < (TN) && n0 + sj < N; sj += DTN) {                 \
                int rowa[DTM], rowb[DTN];                                           \
                KILN_UNROLL for (int i = 0; i < DTM; ++i) rowa[i] = min(m0 + si + i, M - 1) * lda; \
                KILN_UNROLL for (int j = 0; j < DTN; ++j) rowb[j] = min(n0 + sj + j, N - 1) * ldb; \
                kiln_floatd acc[DTM][DTN];                                          \
                KILN_UNROLL for (int i = 0; i < DTM; ++i)                           \
                    KILN_UNROLL for (int j = 0; j < DTN; ++j) acc[i][j] = 0.0f;     \
                for (int p = pb; p < pe; ++p) {                                     \
                    __global const float* A = A0 + p * sa;                          \
                    __global const float* B = B0 + p * sb;                          \
                    for (int k = kb; k < kv; k += KILN_MM_DVW) {                    \
                        kiln_floatd a[DTM];                                         \
                        KILN_UNROLL for (int i = 0; i < DTM; ++i) a[i] = kiln_vloadd(0, A + rowa[i] + k); \
                        KILN_UNROLL for (int j = 0; j < DTN; ++j) {                 \
                            const kiln_floatd b = kiln_vloadd(0, B + rowb[j] + k);  \
                            KILN_UNROLL for (int i = 0; i < DTM; ++i) acc[i][j] = fma(a[i], b, acc[i][j]); \
                        }                                                           \
                    }                                                               \
                }                                                                   \
                KILN_UNROLL for (int i = 0; i < DTM; ++i)                           \
                    KILN_UNROLL for (int j = 0; j < DTN; ++j) {                     \
                        const int m = m0 + si + i, n = n0 + sj + j;                 \
                        float x = kiln_mm_hsum(acc[i][j]);                          \
                        for (int p = pb; p < pe; ++p)                               \
                            for (int k = kv; k < ke; ++k)                           \
                                x = fma(A0[p * sa + rowa[i] + k], B0[p * sb + rowb[j] + k], x); \
                        if (m < M && n < N && si + i < (TM) && sj + j < (TN)) {     \
                            __global float* c = C + m * ldc + n;                    \
                            if (!first) x += *c;                                    \
                            if (last) kiln_mm_store1(c, x, (flags & 2) ? bias[(flags & 4) ? m : n] : 0.0f, \
                                                     flags, slope);                 \
                            else *c = x;                                            \
                        }                                                           \
                    }                                                               \
            }                                                                       \
    }                                                                               \
}

/* ---------------------------------------------------------------- variants
 * Stride table (see KILN_MM_DEFINE_OUTER):
 *   nn: scalar = A[m*lda + k]  vector = B row k   C[m*ldc + n]  bias[n] (row bias: bias[m])
 *   tn: scalar = A[k*lda + m]  vector = B row k   C[m*ldc + n]  bias[n] (bias[m])
 *   tt: C^T = B_stored . A_stored: scalar = B[n*ldb + k], vector = A row k,
 *       C[n + m*ldc] written transposed, bias[n] along the scalar dimension (bias[m] along v). */
#define KILN_MM_DEFINE_NN(PFX, OUTER)                                               \
__kernel void PFX##nn(KILN_MM_ARGS) {                                               \
    KILN_MM_BATCH();                                                                \
    const int rb = (flags & 4) != 0;                                                \
    OUTER(M, N, K, A, lda, 1, B, ldb, C, ldc, 1, bias, rb, !rb, flags, slope, nb, sa, sb); \
}
#define KILN_MM_DEFINE_TN(PFX, OUTER)                                               \
__kernel void PFX##tn(KILN_MM_ARGS) {                                               \
    KILN_MM_BATCH();                                                                \
    const int rb = (flags & 4) != 0;                                                \
    OUTER(M, N, K, A, 1, lda, B, ldb, C, ldc, 1, bias, rb, !rb, flags, slope, nb, sa, sb); \
}
#define KILN_MM_DEFINE_TT(PFX, OUTER)                                               \
__kernel void PFX##tt(KILN_MM_ARGS) {                                               \
    KILN_MM_BATCH();                                                                \
    const int rb = (flags & 4) != 0;                                                \
    OUTER(N, M, K, B, ldb, 1, A, lda, C, 1, ldc, bias, !rb, rb, flags, slope, nb, sb, sa); \
}
#define KILN_MM_DEFINE_NT(PFX, DOT)                                                 \
__kernel void PFX##nt(KILN_MM_ARGS) {                                               \
    KILN_MM_BATCH();                                                                \
    DOT(M, N, K, A, lda, B, ldb, C, ldc, bias, flags, slope, nb, sa, sb);           \
}

/* A products program may hold one variant only (KILN_MM_VARIANT 1 nn, 2 nt, 3 tn, 4 tt; 0, the
 * default, all four): PoCL compiles each kernel for its work-group at the first launch, seconds
 * for these unrolled tiles, so the tuner builds only the variant a candidate is timed on. */
#ifndef KILN_MM_VARIANT
#define KILN_MM_VARIANT 0
#endif
#define KILN_MM_HAS(v) (KILN_MM_VARIANT == 0 || KILN_MM_VARIANT == (v))

#ifndef KILN_GPU
/* Small kernels: same bodies, tile KILN_MM_STM x KILN_MM_SVW, one vector per row. */
KILN_MM_DEFINE_OUTER(kiln_mm_outer_small, KILN_MM_STM, 1, KILN_MM_SVW, 0, 1, kiln_floatsv, kiln_vloadsv, kiln_vstoresv)
KILN_MM_DEFINE_DOT(kiln_mm_dot_small, KILN_MM_STM, KILN_MM_SVW, KILN_MM_STM, KILN_MM_SDTN, 1, KILN_MM_DKB)
KILN_MM_DEFINE_OUTER(kiln_mm_outer_main, KILN_MM_TM, KILN_MM_TNV, KILN_VEC, KILN_MM_MKB, KILN_MM_SWZ, floatv, vloadv, vstorev)
KILN_MM_DEFINE_DOT(kiln_mm_dot_main, KILN_MM_TM, KILN_MM_TNV * KILN_VEC, KILN_MM_DTM, KILN_MM_DTN, KILN_MM_SWZ, KILN_MM_DKB)
#if KILN_MM_HAS(1)
KILN_MM_DEFINE_NN(matmul_small_, kiln_mm_outer_small)
KILN_MM_DEFINE_NN(matmul_, kiln_mm_outer_main)
#endif
#if KILN_MM_HAS(2)
KILN_MM_DEFINE_NT(matmul_small_, kiln_mm_dot_small)
KILN_MM_DEFINE_NT(matmul_, kiln_mm_dot_main)
/* nt with at most KILN_MM_NARROW columns (a Linear layer's narrow output: the classes): one
 * work-item per row of C, each column's dot product along K in a vector accumulator of its own,
 * so a row of A is loaded once for all the columns. Not for summed batches. */
#define KILN_MM_NARROW 16
__kernel void matmul_narrow_nt(KILN_MM_ARGS) {
    KILN_MM_BATCH();
    const int m = get_global_id(0);
    if (m >= M) return;
    __global const float* a = A + m * lda;
    floatv acc[KILN_MM_NARROW];
    KILN_UNROLL for (int j = 0; j < KILN_MM_NARROW; ++j) acc[j] = 0.0f;
    const int kv = K / KILN_VEC * KILN_VEC;
    for (int k = 0; k < kv; k += KILN_VEC) {
        const floatv x = vloadv(0, a + k);
        KILN_UNROLL for (int j = 0; j < KILN_MM_NARROW; ++j)
            if (j < N) acc[j] = fma(x, vloadv(0, B + j * ldb + k), acc[j]);
    }
    for (int j = 0; j < N && j < KILN_MM_NARROW; ++j) {
        float x = kiln_hsum(acc[j]);
        for (int k = kv; k < K; ++k) x = fma(a[k], B[j * ldb + k], x);
        kiln_mm_store1(C + m * ldc + j, x, (flags & 2) ? bias[(flags & 4) ? m : j] : 0.0f, flags, slope);
    }
}
#endif
#if KILN_MM_HAS(3)
KILN_MM_DEFINE_TN(matmul_small_, kiln_mm_outer_small)
KILN_MM_DEFINE_TN(matmul_, kiln_mm_outer_main)
#endif
#if KILN_MM_HAS(4)
KILN_MM_DEFINE_TT(matmul_small_, kiln_mm_outer_small)
KILN_MM_DEFINE_TT(matmul_, kiln_mm_outer_main)
#endif

/* ------------------------------------------------------------ packed panels
 * A large product first copies op(A) and op(B) into panels, as BLAS libraries pack theirs: op(A)
 * in panels of KILN_MM_TM rows, [ceil(M/TM)][K][TM], and op(B) in panels of TV = KILN_MM_TNV *
 * KILN_VEC columns, [ceil(N/TV)][K][TV], both zero-padded. A work-item then reads its two panels
 * as two sequential streams, which the hardware prefetchers follow, instead of TM rows of A and
 * a row of B a whole row stride apart for every k (measured on a Zen 1 EPYC: 1024^3 at 1.3-2.0x
 * the unpacked kernel). The panels serve all four transposes, so one product kernel does.
 *
 * matmul_pack: element (r, k) of the source is src[r*rs + k*ks] (A: rows m; B: columns n as
 * rows), written to dst[(r/T*K + k)*T + r%T]. Both loops read 8 contiguous floats at a time:
 * with ks == 1 (rows contiguous along k) a work-item packs 8 k of one panel, else (rs == 1) one
 * k of one panel, T contiguous floats. Launch: (ceil(K/8) or K, panels). */
__kernel void matmul_pack(const int R, const int K, const int T, __global const float* src,
                          const int rs, const int ks, __global float* dst) {
    const int p = get_global_id(1), r0 = p * T;
    if (r0 >= R) return;
    if (ks == 1) {
        const int k0 = get_global_id(0) * 8;
        if (k0 >= K) return;
        __global float* d = dst + (p * K + k0) * T;
        for (int t = 0; t < T; ++t) {
            const int r = r0 + t;
            if (r >= R) {  /* a padding row of the last panel (its address may not exist) */
                for (int q = 0; q < 8 && k0 + q < K; ++q) d[q * T + t] = 0.0f;
                continue;
            }
            __global const float* x = src + r * rs + k0;
            if (k0 + 8 <= K) {
                const float8 v = vload8(0, x);
                d[t] = v.s0; d[T + t] = v.s1; d[2 * T + t] = v.s2; d[3 * T + t] = v.s3;
                d[4 * T + t] = v.s4; d[5 * T + t] = v.s5; d[6 * T + t] = v.s6; d[7 * T + t] = v.s7;
            } else {
                for (int q = 0; q < 8 && k0 + q < K; ++q) d[q * T + t] = x[q];
            }
        }
    } else {
        const int k = get_global_id(0);
        if (k >= K) return;
        __global float* d = dst + (p * K + k) * T;
        __global const float* x = src + k * ks + r0;
        int t = 0;
        for (; t + 8 <= T && r0 + t + 8 <= R; t += 8) vstore8(vload8(0, x + t), 0, d + t);
        for (; t < T; ++t) d[t] = r0 + t < R ? x[t] : 0.0f;
    }
}

/* C = act(op(A).op(B) + bias) (or C += ...) from the panels: the outer-product tile of
 * KILN_MM_DEFINE_OUTER with both operands sequential. Launch: (ceil(N/TV), ceil(M/TM)) tiles,
 * rounded up to the group. */
__kernel void matmul_packed(const int M, const int N, const int K, __global const float* Ap,
                            __global const float* Bp, __global float* C, const int ldc,
                            __global const float* bias, const int flags, const float slope) {
    const int TM = KILN_MM_TM, TNV = KILN_MM_TNV, TV = KILN_MM_TNV * KILN_VEC;
    const int2 g = kiln_mm_swizzled_id(KILN_MM_SWZ);
    const int m0 = g.y * TM, n0 = g.x * TV;
    if (m0 >= M || n0 >= N) return;
    __global const float* a = Ap + g.y * K * TM;
    __global const float* b = Bp + g.x * K * TV;
    floatv acc[KILN_MM_TM][KILN_MM_TNV];
    KILN_UNROLL for (int i = 0; i < TM; ++i)
        KILN_UNROLL for (int j = 0; j < TNV; ++j) acc[i][j] = 0.0f;
    for (int k = 0; k < K; ++k, a += TM, b += TV) {
        floatv bv[KILN_MM_TNV];
        KILN_UNROLL for (int j = 0; j < TNV; ++j) bv[j] = vloadv(j, b);
        KILN_UNROLL for (int i = 0; i < TM; ++i) {
            const float s = a[i];
            KILN_UNROLL for (int j = 0; j < TNV; ++j) acc[i][j] = fma(s, bv[j], acc[i][j]);
        }
    }
    const int act = (flags >> 4) & 15, rowBias = (flags & 4) != 0;
    KILN_UNROLL for (int i = 0; i < TM; ++i) {
        const int m = m0 + i;
        if (m >= M) break;
        KILN_UNROLL for (int j = 0; j < TNV; ++j) {
            const int n = n0 + j * KILN_VEC;
            __global float* c = C + m * ldc + n;
            if (n + KILN_VEC <= N) {
                floatv x = acc[i][j];
                if (flags & 2) x += rowBias ? (floatv)(bias[m]) : vloadv(0, bias + n);
                x = KILN_ACT(x, act, slope, floatv);
                if (flags & 1) x += vloadv(0, c);
                vstorev(x, 0, c);
            } else {
                float x[KILN_VEC];
                vstorev(acc[i][j], 0, x);
                for (int l = 0; l < KILN_VEC && n + l < N; ++l)
                    KILN_MM_STORE1(c + l, x[l], (flags & 2) ? bias[rowBias ? m : n + l] : 0.0f, flags, slope);
            }
        }
    }
}

/* Summed batches (nb > 1: a weight gradient over the samples), K-blocked with barriers. Only in
 * the library's program: their barrier makes PoCL's first compile take ~10 s each, so the tuner
 * leaves them to the rule table. */
#ifndef KILN_ONLY_MATMUL
KILN_MM_DEFINE_OUTER(kiln_mm_outer_sum, KILN_MM_TM, KILN_MM_TNV, KILN_VEC, KILN_MM_KB, KILN_MM_SWZ, floatv, vloadv, vstorev)
KILN_MM_DEFINE_NN(matmul_sum_, kiln_mm_outer_sum)
KILN_MM_DEFINE_TN(matmul_sum_, kiln_mm_outer_sum)
KILN_MM_DEFINE_TT(matmul_sum_, kiln_mm_outer_sum)
#endif
#else
/* ---------------------------------------------------------------- GPU path
 * Local-memory tiling, both operands staged: a work-group of KILN_MM_GLX x KILN_MM_GLY work-items
 * (along n, along m) computes a TM x TN = (GLY*GW) x (GLX*GW) tile of C, each work-item GW x GW
 * outputs strided by the group's width so that neighbouring work-items touch neighbouring
 * addresses (coalescing). K is walked in slices of KILN_MM_GK staged in local memory;
 * out-of-range elements are staged as zero. Launch: local (GLX, GLY, 1), global
 * (ceil(N/TN)*GLX, ceil(M/TM)*GLY, batch), for all four variants. The defaults (16 x 8 items of
 * 4 x 4: a 32 x 64 tile) follow CLBlast's published A100 tuning; `kiln tune` searches them on the
 * device in hand. */
#ifndef KILN_MM_GLX
#define KILN_MM_GLX 16
#endif
#ifndef KILN_MM_GLY
#define KILN_MM_GLY 8
#endif
#ifndef KILN_MM_GW
#define KILN_MM_GW 4
#endif
#ifndef KILN_MM_GK
#define KILN_MM_GK 16
#endif
#define KILN_MM_GTM (KILN_MM_GLY * KILN_MM_GW)
#define KILN_MM_GTN (KILN_MM_GLX * KILN_MM_GW)

/* OpenCL C 1.2 allows __local variables only at kernel scope: the kernels own the tiles and pass
 * them in.  +1 column: avoids bank conflicts on column reads. */
typedef float kiln_mm_gtile_a[KILN_MM_GK][KILN_MM_GTM + 1];
typedef float kiln_mm_gtile_b[KILN_MM_GK][KILN_MM_GTN + 1];
inline void kiln_mm_gpu(const int ta, const int tb, __local kiln_mm_gtile_a* restrict Asp,
                        __local kiln_mm_gtile_b* restrict Bsp, const int M, const int N, const int K,
                        __global const float *A, const int lda, __global const float *B, const int ldb,
                        __global float *C, const int ldc, __global const float *bias, const int flags,
                        const float slope, const int nb, const int sa, const int sb) {
#define As (*Asp)
#define Bs (*Bsp)
    const int GLX = KILN_MM_GLX, GLY = KILN_MM_GLY, GW = KILN_MM_GW, GK = KILN_MM_GK;
    const int TM = KILN_MM_GTM, TN = KILN_MM_GTN, L = GLX * GLY;
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const int tid = ty * GLX + tx;
    float acc[KILN_MM_GW][KILN_MM_GW];
    for (int i = 0; i < GW; ++i)
        for (int j = 0; j < GW; ++j) acc[i][j] = 0.0f;

    for (int p = 0; p < nb; ++p, A += sa, B += sb)
    for (int k0 = 0; k0 < K; k0 += GK) {
        /* stage op(A)[m0.., k0..] and op(B)[k0.., n0..], indexed so that consecutive work-items
         * read consecutive addresses */
        for (int e = tid; e < TM * GK; e += L) {
            const int kk = ta ? e / TM : e % GK, mm = ta ? e % TM : e / GK;
            const int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < K) ? (ta ? A[k * lda + m] : A[m * lda + k]) : 0.0f;
        }
        for (int e = tid; e < TN * GK; e += L) {
            const int kk = tb ? e % GK : e / TN, nn = tb ? e / GK : e % TN;
            const int n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < K) ? (tb ? B[n * ldb + k] : B[k * ldb + n]) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < GK; ++kk) {
            float a[KILN_MM_GW], b[KILN_MM_GW];
            for (int i = 0; i < GW; ++i) a[i] = As[kk][ty + i * GLY];
            for (int j = 0; j < GW; ++j) b[j] = Bs[kk][tx + j * GLX];
            for (int i = 0; i < GW; ++i)
                for (int j = 0; j < GW; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < GW; ++i)
        for (int j = 0; j < GW; ++j) {
            const int m = m0 + ty + i * GLY, n = n0 + tx + j * GLX;
            if (m < M && n < N)
                kiln_mm_store1(C + m * ldc + n, acc[i][j], (flags & 2) ? bias[(flags & 4) ? m : n] : 0.0f,
                               flags, slope);
        }
#undef As
#undef Bs
}
#define KILN_MM_GPU_KERNEL(NAME, TA, TB)                                            \
    __kernel __attribute__((reqd_work_group_size(KILN_MM_GLX, KILN_MM_GLY, 1)))     \
    void NAME(KILN_MM_ARGS) {                                                       \
        __local kiln_mm_gtile_a As;                                                 \
        __local kiln_mm_gtile_b Bs;                                                 \
        KILN_MM_BATCH();                                                            \
        kiln_mm_gpu(TA, TB, &As, &Bs, M, N, K, A, lda, B, ldb, C, ldc, bias, flags, slope, nb, sa, sb); \
    }
#if KILN_MM_HAS(1)
KILN_MM_GPU_KERNEL(matmul_nn, 0, 0)
#endif
#if KILN_MM_HAS(2)
KILN_MM_GPU_KERNEL(matmul_nt, 0, 1)
#endif
#if KILN_MM_HAS(3)
KILN_MM_GPU_KERNEL(matmul_tn, 1, 0)
#endif
#if KILN_MM_HAS(4)
KILN_MM_GPU_KERNEL(matmul_tt, 1, 1)
#endif
#endif

#ifndef KILN_ONLY_MATMUL  // everything after the products
// ---------------------------------------------------------------------------------------------
// Backward through a Linear layer's fused epilogue (bias, then act): from the gradient g of its
// output y, gz = g * act'(y) (kiln_act_grad from the output: relu, leaky relu with slope > 0,
// sigmoid and tanh, as the launcher checks), and the bias gradient gbias[c] = sum over rows of
// gz[r, c], in one pass. Each column is summed by one work-item, rows in order: deterministic, no
// atomics. A work-item owns KILN_VEC neighbouring columns as a vector; a last partial group of
// columns takes the scalar path.
__kernel void linear_act_backward(const int rows, const int cols, const int act, const float slope,
                                  __global const float* g, __global const float* y, __global float* gz,
                                  __global float* gbias, const int want_bias) {
    const int c0 = get_global_id(0) * KILN_VEC;
    if (c0 >= cols) return;
    if (c0 + KILN_VEC <= cols) {
        floatv sum = (floatv)(0.0f);
        for (int r = 0; r < rows; ++r) {
            const int i = r * cols + c0;
            const floatv e = KILN_ACT_GRAD(vloadv(0, g + i), vloadv(0, y + i), act, slope, floatv);
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
            const float e = kiln_act_grad_float(g[i], y[i], act, slope);
            gz[i] = e;
            sum += e;
        }
        if (want_bias) gbias[c] = sum;
    }
}

#endif  // !KILN_ONLY_MATMUL
// A products program with KILN_WITH_CONV also holds the convolutions (their staged kernels run
// the matmul tiles on columns in local memory): the tuner's convolution candidates.
#if !defined(KILN_ONLY_MATMUL) || defined(KILN_WITH_CONV)
// =============================================================================================
// Convolution (im2col, col2im) and pooling over NCHW
// =============================================================================================
// The geometry of a 2-D window over x [N, C, H, W] giving [N, C or O, OH, OW], as two int8
// arguments: g = (N, C, H, W, OH, OW, KH, KW) and s = (SH, SW, PH, PW, DH, DW, -, -): kernel,
// stride, zero padding and dilation. Window (oh, ow) element (i, j) reads input row
// oh * SH - PH + i * DH and column ow * SW - PW + j * DW; outside [0, H) x [0, W) it is padding.
// The backward kernels are gathers (each input element sums the outputs whose windows hold it),
// never atomics, so results do not depend on scheduling.
// Windows that tile the input: stride = kernel, no padding, no dilation (2 x 2 max pooling).
#define KILN_TILING(KH, KW, SH, SW, PH, PW, DH, DW) \
    ((SH) == (KH) && (SW) == (KW) && (PH) == 0 && (PW) == 0 && (DH) == 1 && (DW) == 1)
#define KILN_GEOMETRY                                                                           \
    const int N = g.s0, C = g.s1, H = g.s2, W = g.s3, OH = g.s4, OW = g.s5, KH = g.s6, KW = g.s7; \
    const int SH = s.s0, SW = s.s1, PH = s.s2, PW = s.s3, DH = s.s4, DW = s.s5

// Row (c, i, j) of a sample's columns (OH * OW values: what kernel position (i, j) of each window
// sees in channel c, 0 in the padding) from the sample's input xs, written to global or local memory.
#define KILN_DEFINE_IM2COL_ROW(NAME, OSP) \
inline void NAME(__global const float* xs, const int row, const int8 g, const int8 s, OSP float* out) { \
    KILN_GEOMETRY;                                                                                      \
    const int j = row % KW, i = row / KW % KH, c = row / (KW * KH);                                     \
    __global const float* plane = xs + (long)c * H * W;                                                 \
    const int iw0 = j * DW - PW;                                                                        \
    /* Columns [lo, hi) of a stride-1 row read in[ow + iw0]; the rest are padding. */                   \
    const int lo = clamp(-iw0, 0, OW), hi = clamp(W - iw0, lo, OW);                                     \
    for (int oh = 0; oh < OH; ++oh, out += OW) {                                                        \
        const int ih = oh * SH - PH + i * DH;                                                           \
        if (ih < 0 || ih >= H) {                                                                        \
            for (int ow = 0; ow < OW; ++ow) out[ow] = 0.0f;                                             \
            continue;                                                                                   \
        }                                                                                               \
        __global const float* in = plane + ih * W;                                                      \
        if (SW == 1) {                                                                                  \
            for (int ow = 0; ow < lo; ++ow) out[ow] = 0.0f;                                             \
            for (int ow = lo; ow < hi; ++ow) out[ow] = in[ow + iw0];                                    \
            for (int ow = hi; ow < OW; ++ow) out[ow] = 0.0f;                                            \
        } else {                                                                                        \
            for (int ow = 0; ow < OW; ++ow) {                                                           \
                const int iw = ow * SW + iw0;                                                           \
                out[ow] = iw >= 0 && iw < W ? in[iw] : 0.0f;                                            \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}
KILN_DEFINE_IM2COL_ROW(kiln_im2col_row_global, __global)
KILN_DEFINE_IM2COL_ROW(kiln_im2col_row_local, __local)

// Input row (c, h) of a sample's gradient (W values) gathered, in a fixed order, from the
// sample's column gradients: each element sums the columns of the windows that read it.
inline void kiln_col2im_row(__global const float* sample, const int c, const int h, const int8 g, const int8 s,
                            __global float* out) {
    KILN_GEOMETRY;
    const int plane = OH * OW;
    if (SH == 1 && SW == 1) {
        /* Stride 1: window row oh = h + PH - i * DH and column ow = w + PW - j * DW, no division;
         * for each kernel position the contributions to this row are one contiguous run of a row. */
        for (int w = 0; w < W; ++w) out[w] = 0.0f;
        for (int i = 0; i < KH; ++i) {
            const int oh = h + PH - i * DH;
            if (oh < 0 || oh >= OH) continue;
            for (int j = 0; j < KW; ++j) {
                __global const float* src = sample + ((c * KH + i) * KW + j) * plane + oh * OW;
                const int shift = PW - j * DW; /* ow = w + shift */
                const int w0 = max(0, -shift), w1 = min(W, OW - shift);
                for (int w = w0; w < w1; ++w) out[w] += src[w + shift];
            }
        }
        return;
    }
    for (int w = 0; w < W; ++w) {
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            const int ohs = h + PH - i * DH;
            if (ohs < 0 || ohs % SH != 0 || ohs / SH >= OH) continue;
            const int oh = ohs / SH;
            for (int j = 0; j < KW; ++j) {
                const int ows = w + PW - j * DW;
                if (ows < 0 || ows % SW != 0 || ows / SW >= OW) continue;
                sum += sample[((c * KH + i) * KW + j) * plane + oh * OW + ows / SW];
            }
        }
        out[w] = sum;
    }
}

// cols [N, C*KH*KW, OH*OW] from x: for sample n, row (c, i, j) and column (oh, ow) hold the input
// element that kernel position (i, j) of window (oh, ow) sees in channel c (0 in the padding). A
// convolution is then W [O, C*KH*KW] · cols[n], one product per sample, each reading its own
// contiguous block. One work-item per (n, row): a contiguous block of OH * OW outputs, so the index
// arithmetic (integer divisions are slow on a CPU device) is paid once per block, not per element.
__kernel void conv_im2col(const int8 g, const int8 s, __global const float* x, __global float* cols) {
    KILN_GEOMETRY;
    const int item = get_global_id(0);
    if (item >= N * C * KH * KW) return;
    const int n = item / (C * KH * KW), row = item - n * (C * KH * KW);
    kiln_im2col_row_global(x + (long)n * C * H * W, row, g, s, cols + (long)item * (OH * OW));
}

// dx [N, C, H, W] from dcols [N, C*KH*KW, OH*OW] (the gradient of cols). Work-item: one (n, c, h) row.
__kernel void conv_col2im(const int8 g, const int8 s, __global const float* dcols, __global float* dx) {
    KILN_GEOMETRY;
    const int item = get_global_id(0);
    if (item >= N * C * H) return;
    const int h = item % H, c = item / H % C, n = item / (H * C);
    kiln_col2im_row(dcols + (long)n * C * KH * KW * OH * OW, c, h, g, s, dx + (long)item * W);
}

// wf [C, O, KH, KW] = w [O, C, KH, KW] with the kernel turned half a turn: wf[c][o][i][j] =
// w[o][c][KH-1-i][KW-1-j]. A stride-1 convolution's input gradient is the convolution of dy with wf
// (padding (K - 1) * D - P), so it runs as a forward product. One work-item per element of wf.
__kernel void conv_weight_flip(const int O, const int C, const int KH, const int KW, __global const float* w,
                               __global float* wf) {
    const int e = get_global_id(0);
    if (e >= O * C * KH * KW) return;
    const int j = e % KW, i = e / KW % KH, o = e / (KW * KH) % O, c = e / (KW * KH * O);
    wf[e] = w[((o * C + c) * KH + KH - 1 - i) * KW + KW - 1 - j];
}

#ifndef KILN_GPU
// ---------------------------------------------------------------------------------------------
// The convolution's products with each sample's columns staged in local memory (CPU devices, where
// local memory is cached RAM): a work-group stages a sample's im2col columns (or several samples'
// columns and transposed dy) where its work-items then run the matmul tile (KILN_MM_DEFINE_OUTER),
// so the columns -- nine times the input for a 3 x 3 kernel -- stay in the core's cache and never
// cross to global memory. (A stride-1 input gradient runs as conv_forward_staged of dy with the
// flipped weights.) Launch (KernelLibrary): dimensions 0
// and 1 are exactly the product's tile grid (one work-group), dimension 2 the samples (or groups
// of samples); the host checks that the staged block fits the device's local memory.
//   O: output channels; flags and slope: the matmul epilogue (bias per row, activation).
//   KILN_CONV_TM, KILN_CONV_TNV: the staged products' tile (rows, vectors), the matmul's by default.
#ifndef KILN_CONV_TM
#define KILN_CONV_TM KILN_MM_TM
#endif
#ifndef KILN_CONV_TNV
#define KILN_CONV_TNV KILN_MM_TNV
#endif
KILN_MM_DEFINE_OUTER_IN(kiln_conv_outer_forward, KILN_CONV_TM, KILN_CONV_TNV, KILN_VEC, 0, 1, floatv, vloadv, vstorev,
                        __global, __local, __global)
KILN_MM_DEFINE_OUTER_IN(kiln_conv_outer_weight, KILN_CONV_TM, KILN_CONV_TNV, KILN_VEC, 0, 1, floatv, vloadv, vstorev,
                        __local, __local, __global)

#define KILN_CONV_WORKGROUP                                                                     \
    const int lid = get_local_id(1) * get_local_size(0) + get_local_id(0);                     \
    const int L = get_local_size(0) * get_local_size(1)

// Staged columns: each row (c, i, j) holds P = OH * OW values at a row stride Pp (P rounded up to
// KILN_VEC, so a row is written in whole vectors). For stride-1 windows the rows come from the
// samples' zero-padded planes xp [C][Hp][Wp] (Hp = H + 2 PH, Wp = W + 2 PW), staged first: a row
// is then a few contiguous runs of xp, one per output row, and a vector of positions merges the
// runs it spans with selects (a scalar gather per element costs a CPU device several cycles each).
// Other strides gather from the input directly.
#define KILN_CONV_STAGING                                                                       \
    const int Hp = H + 2 * PH, Wp = W + 2 * PW, stride1 = SH == 1 && SW == 1;                   \
    const int P = OH * OW, Pp = (P + KILN_VEC - 1) / KILN_VEC * KILN_VEC, CKK = C * KH * KW;    \
    const int planeSize = C * Hp * Wp

// Zero-padded planes of `count` samples from x, into xp (count * planeSize floats, then `slack`
// zeros that vector reads past the last row may touch). Work is split by padded row.
inline void kiln_stage_padded(__global const float* xs, const int count, const int C, const int H, const int W,
                              const int PH, const int PW, const int slack, const int lid, const int L,
                              __local float* xp) {
    const int Hp = H + 2 * PH, Wp = W + 2 * PW;
    for (int r = lid; r < count * C * Hp; r += L) {
        const int hp = r % Hp, plane = r / Hp, h = hp - PH;
        __local float* out = xp + (long)r * Wp;
        if (h < 0 || h >= H) {
            for (int w = 0; w < Wp; ++w) out[w] = 0.0f;
            continue;
        }
        __global const float* in = xs + ((long)plane * H + h) * W;
        for (int w = 0; w < PW; ++w) out[w] = 0.0f;
        for (int w = 0; w < W; ++w) out[PW + w] = in[w];
        for (int w = PW + W; w < Wp; ++w) out[w] = 0.0f;
    }
    for (int e = lid; e < slack; e += L) xp[(long)count * C * Hp * Wp + e] = 0.0f;
}
// Zeros past the padded planes: a vector of the last row may read up to KILN_VEC runs ahead.
#define KILN_CONV_SLACK(Wp) ((KILN_VEC + 2) * (Wp) + KILN_VEC)

// Row (c, i, j) of a stride-1 sample's columns from its padded planes xp (see above).
inline void kiln_im2col_row_padded(__local const float* xp, const int row, const int KH, const int KW,
                                   const int DH, const int DW, const int OH, const int OW, const int Hp,
                                   const int Wp, const int P, __local float* out) {
    const int j = row % KW, i = row / KW % KH, c = row / (KW * KH);
    __local const float* base = xp + (long)c * Hp * Wp + i * DH * Wp + j * DW;
    for (int p0 = 0; p0 < P; p0 += KILN_VEC) {
        const int oh0 = p0 / OW, ow0 = p0 - oh0 * OW;
        // Lane l is position p0 + l: output row oh0 + d for the d-th run it falls in.
        const intv col = ow0 + KILN_IOTA;
        floatv v = vloadv(0, base + oh0 * Wp + ow0);
        for (int d = 1, edge = OW; edge < ow0 + KILN_VEC; ++d, edge += OW)
            v = select(v, vloadv(0, base + (oh0 + d) * Wp + ow0 - d * OW), col >= edge);
        vstorev(v, 0, out + p0);
    }
}

// y[n] [O, OH*OW] = act(w [O, C*KH*KW] · cols[n] + bias), cols[n] staged. Work-group: sample n.
// The sample's channels are staged `chunkC` at a time (all of them when its columns fit the local
// memory): each chunk's product runs over its cc*KH*KW rows and adds into y, the bias with the first.
// The host chunks only products without an activation (the epilogue applies it before adding y).
__kernel void conv_forward_staged(const int8 g, const int8 s, const int O, const int flags, const float slope,
                                  const int chunkC, __global const float* x, __global const float* w,
                                  __global const float* bias, __global float* y, __local float* xp,
                                  __local float* cols) {
    KILN_GEOMETRY;
    KILN_CONV_WORKGROUP;
    KILN_CONV_STAGING;
    const int n = get_group_id(2), KK = KH * KW;
    __global const float* xs = x + (long)n * C * H * W;
    for (int c0 = 0; c0 < C; c0 += chunkC) {
        const int cc = min(chunkC, C - c0);
        if (c0 > 0) barrier(CLK_LOCAL_MEM_FENCE);  // the previous chunk's products are done with the staging
        if (stride1) kiln_stage_padded(xs + (long)c0 * H * W, 1, cc, H, W, PH, PW, KILN_CONV_SLACK(Wp), lid, L, xp);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int row = lid; row < cc * KK; row += L) {
            if (stride1) kiln_im2col_row_padded(xp, row, KH, KW, DH, DW, OH, OW, Hp, Wp, P, cols + row * Pp);
            else kiln_im2col_row_local(xs, c0 * KK + row, g, s, cols + row * Pp);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        kiln_conv_outer_forward(O, P, cc * KK, w + c0 * KK, CKK, 1, cols, Pp, y + (long)n * O * P, P, 1, bias, 1, 0,
                                c0 == 0 ? flags : (flags & ~2) | 1, slope, 1, 0, 0);
    }
}

// partial[grp] [O, C*KH*KW] = sum over the group's samples n of dy[n] · cols[n]^T, `per` samples
// a group, staged `chunk` at a time (their padded planes, columns and transposed dy) and run as
// outer products (the tt form: C written transposed). Work-group: group grp; the host sums the
// groups' partials in order.
__kernel void conv_weight_grad_staged(const int8 g, const int8 s, const int O, const int per, const int chunk,
                                      __global const float* x, __global const float* dy, __global float* partial,
                                      __local float* xp, __local float* cols, __local float* dyT) {
    KILN_GEOMETRY;
    KILN_CONV_WORKGROUP;
    KILN_CONV_STAGING;
    const int grp = get_group_id(2);
    const int first = grp * per, last = min(N, first + per);
    __global float* out = partial + (long)grp * O * CKK;
    for (int n0 = first; n0 < last; n0 += chunk) {
        const int count = min(chunk, last - n0);
        __global const float* xs = x + (long)n0 * C * H * W;
        barrier(CLK_LOCAL_MEM_FENCE);  // the previous chunk's products are done with the staging
        if (stride1) kiln_stage_padded(xs, count, C, H, W, PH, PW, KILN_CONV_SLACK(Wp), lid, L, xp);
        for (int r = lid; r < count * O; r += L) {
            const int q = r / O, o = r - q * O;
            __global const float* src = dy + ((long)(n0 + q) * O + o) * P;
            __local float* dst = dyT + q * P * O + o;
            for (int p = 0; p < P; ++p) dst[p * O] = src[p];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int r = lid; r < count * CKK; r += L) {
            const int q = r / CKK, row = r - q * CKK;
            __local float* dst = cols + (q * CKK + row) * Pp;
            if (stride1) kiln_im2col_row_padded(xp + q * planeSize, row, KH, KW, DH, DW, OH, OW, Hp, Wp, P, dst);
            else kiln_im2col_row_local(xs + (long)q * C * H * W, row, g, s, dst);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        kiln_conv_outer_weight(CKK, O, P, cols, Pp, 1, dyT, O, out, 1, CKK, out, 0, 0, n0 > first ? 1 : 0, 0.0f,
                               count, CKK * Pp, P * O);
    }
}
#endif  // !KILN_GPU
#endif  // the convolution products
#ifndef KILN_ONLY_MATMUL  // pooling, augmentation

// Max pooling: y [N, C, OH, OW] = the largest input in each window (padding counts as -inf, so
// it never wins; NaN does, as in PyTorch), and idx the index h * W + w of the first maximum in its
// input plane (int32, as PyTorch's indices). Work-item: one (n, c, oh) row.
__kernel void pool_max(const int8 g, const int8 s, __global const float* x, __global float* y,
                       __global int* idx) {
    KILN_GEOMETRY;
    const int item = get_global_id(0);
    if (item >= N * C * OH) return;
    const int oh = item % OH, plane = item / OH;
    __global const float* in = x + (long)plane * H * W;
    if (KILN_TILING(KH, KW, SH, SW, PH, PW, DH, DW)) {
        // Windows that tile the image: every window lies inside it, no bounds to check.
        for (int ow = 0; ow < OW; ++ow) {
            int mi = oh * KH * W + ow * KW;
            float m = in[mi];
            for (int i = 0; i < KH; ++i) {
                for (int j = 0; j < KW; ++j) {
                    const int at = (oh * KH + i) * W + ow * KW + j;
                    if (kiln_argmax_beats(in[at], at, m, mi)) { m = in[at]; mi = at; }
                }
            }
            y[(long)item * OW + ow] = m;
            idx[(long)item * OW + ow] = mi;
        }
        return;
    }
    for (int ow = 0; ow < OW; ++ow) {
        float m = -INFINITY;
        int mi = -1;
        for (int i = 0; i < KH; ++i) {
            const int ih = oh * SH - PH + i * DH;
            if (ih < 0 || ih >= H) continue;
            for (int j = 0; j < KW; ++j) {
                const int iw = ow * SW - PW + j * DW;
                if (iw < 0 || iw >= W) continue;
                const int at = ih * W + iw;
                if (mi < 0 || kiln_argmax_beats(in[at], at, m, mi)) { m = in[at]; mi = at; }
            }
        }
        y[(long)item * OW + ow] = m;
        idx[(long)item * OW + ow] = mi;
    }
}

// dx of max pooling: each input element sums dy of the windows whose saved index is itself.
// Work-item: one (n, c, h) row.
__kernel void pool_max_backward(const int8 g, const int8 s, __global const float* dy,
                                __global const int* idx, __global float* dx) {
    KILN_GEOMETRY;
    const int item = get_global_id(0);
    if (item >= N * C * H) return;
    const int h = item % H, plane = item / H;
    const long base = (long)plane * OH * OW;
    if (KILN_TILING(KH, KW, SH, SW, PH, PW, DH, DW)) {
        // Each element is in at most one window: (h / KH, w / KW), counted without dividing.
        const int oh = h / KH;
        __global float* out = dx + (long)item * W;
        int ow = 0, j = 0;
        for (int w = 0; w < W; ++w) {
            const long o = base + oh * OW + ow;
            out[w] = oh < OH && ow < OW && idx[o] == h * W + w ? dy[o] : 0.0f;
            if (++j == KW) { j = 0; ++ow; }
        }
        return;
    }
    for (int w = 0; w < W; ++w) {
        float sum = 0.0f;
        const int at = h * W + w;
        for (int i = 0; i < KH; ++i) {
            const int ohs = h + PH - i * DH;
            if (ohs < 0 || ohs % SH != 0 || ohs / SH >= OH) continue;
            for (int j = 0; j < KW; ++j) {
                const int ows = w + PW - j * DW;
                if (ows < 0 || ows % SW != 0 || ows / SW >= OW) continue;
                const long o = base + (ohs / SH) * OW + ows / SW;
                if (idx[o] == at) sum += dy[o];
            }
        }
        dx[(long)item * W + w] = sum;
    }
}

// 2 x 2 max pooling with stride 2 (the common case): no window loops and no bounds (the windows
// tile the image). Work-item: rows of one plane (below), four outputs at a time as float4 (the
// rows' even and odd elements). Same results as pool_max: scanning in index order, a value
// replaces the maximum when larger, or when it is the first NaN -- written with selects and
// bitwise masks (for scalars too: isnan is 1 or 0 there, so ~isnan is -1 or -2), never branches
// (a branch per element costs a CPU device 2-3x).
//
// Fused with what precedes it in a conv block (BatchNorm2d -> activation -> MaxPool2d):
//   norm != 0: each input is first normalized, (x - mean) * scale + shift, coefficients
//              coef = [mean | scale | shift] per channel (c = plane % C), as bn_apply;
//   act != 0:  the window's maximum then goes through the activation (a KILN_ACT_* code). For a
//              non-decreasing activation (relu, leaky relu of slope >= 0, sigmoid, tanh) the
//              maximum of act(v) is act of the maximum, at the same first index, NaN included.
// So the block reads its input once and writes only the pooled output and indices.
#define KILN_POOL2_STEP(v, i, B, SEL)                                                          \
    do {                                                                                        \
        const B beats_ = isgreater(v, m) | (isnan(v) & ~isnan(m));                              \
        m = SEL(m, v, beats_);                                                                  \
        mi = SEL(mi, i, beats_);                                                                \
    } while (0)
#define KILN_SCALAR_SELECT(a, b, c) ((c) ? (b) : (a))
// Work-item: `rows` output rows of one plane (a whole plane on a CPU, where a work-item per row
// spends more on its index arithmetic than on its windows; one row on a GPU). A row runs four
// windows at a time; its last, partial four is the row's last four windows (overlapping the
// previous ones, which are written again with the same values), so only rows narrower than four
// windows take the scalar loop.
inline void kiln_pool2_row4(__global const float* r0, __global const float* r1, const int a, const int W,
                            const float mean, const float scale, const float shift, const int act, const float slope,
                            __global float* out, __global int* at) {
    const float8 top = fma(vload8(0, r0) - mean, scale, shift);
    const float8 bottom = fma(vload8(0, r1) - mean, scale, shift);
    const int4 i = a + (int4)(0, 2, 4, 6);
    float4 m = top.even;
    int4 mi = i;
    KILN_POOL2_STEP(top.odd, i + 1, int4, select);
    KILN_POOL2_STEP(bottom.even, i + W, int4, select);
    KILN_POOL2_STEP(bottom.odd, i + W + 1, int4, select);
    vstore4(KILN_ACT(m, act, slope, float4), 0, out);
    vstore4(mi, 0, at);
}

__kernel void pool_max2(const int planes, const int H, const int W, const int OH, const int OW,
                        __global const float* x, __global float* y, __global int* idx,
                        const int C, const int norm, __global const float* coef, const int act,
                        const float slope, const int rows) {
    const int blocks = (OH + rows - 1) / rows;
    const int item = get_global_id(0);
    if (item >= planes * blocks) return;
    const int plane = item / blocks, oh0 = (item - plane * blocks) * rows, oh1 = min(OH, oh0 + rows);
    // Identity coefficients when not normalizing: (v - 0) * 1 + 0 is v exactly.
    const int c = plane % C;
    const float mean = norm ? coef[c] : 0.0f, scale = norm ? coef[C + c] : 1.0f;
    const float shift = norm ? coef[2 * C + c] : 0.0f;
    for (int oh = oh0; oh < oh1; ++oh) {
        __global const float* r0 = x + (long)plane * H * W + (2 * oh) * W;
        __global const float* r1 = r0 + W;
        const long e = ((long)plane * OH + oh) * OW;
        __global float* out = y + e;
        __global int* at = idx + e;
        const int a0 = (2 * oh) * W;
        if (OW >= 4) {
            for (int ow = 0;; ow += 4) {
                const int o = min(ow, OW - 4);
                kiln_pool2_row4(r0 + 2 * o, r1 + 2 * o, a0 + 2 * o, W, mean, scale, shift, act, slope, out + o, at + o);
                if (o == OW - 4) break;
            }
            continue;
        }
        for (int ow = 0; ow < OW; ++ow) {
            const int a = a0 + 2 * ow;
            float m = fma(r0[2 * ow] - mean, scale, shift);
            int mi = a;
            KILN_POOL2_STEP(fma(r0[2 * ow + 1] - mean, scale, shift), a + 1, int, KILN_SCALAR_SELECT);
            KILN_POOL2_STEP(fma(r1[2 * ow] - mean, scale, shift), a + W, int, KILN_SCALAR_SELECT);
            KILN_POOL2_STEP(fma(r1[2 * ow + 1] - mean, scale, shift), a + W + 1, int, KILN_SCALAR_SELECT);
            out[ow] = KILN_ACT(m, act, slope, float);
            at[ow] = mi;
        }
    }
}

// dx of pool_max2: each output row writes its own two rows of dx (the windows tile the image: no
// overlap, so no sum and no race); inputs outside every window (an odd last row or column) are
// zeroed by the launcher beforehand. With act != 0 the gradient first goes back through the fused
// activation, its derivative from the pooled output y (kiln_act_grad). Work-item: `rows` output
// rows of one plane, as pool_max2.
__kernel void pool_max2_backward(const int planes, const int H, const int W, const int OH, const int OW,
                                 __global const float* dy, __global const int* idx, __global float* dx,
                                 __global const float* y, const int act, const float slope, const int rows) {
    const int blocks = (OH + rows - 1) / rows;
    const int item = get_global_id(0);
    if (item >= planes * blocks) return;
    const int plane = item / blocks, oh0 = (item - plane * blocks) * rows, oh1 = min(OH, oh0 + rows);
    __global float* out = dx + (long)plane * H * W;
    for (int oh = oh0; oh < oh1; ++oh) {
        const long e = ((long)plane * OH + oh) * OW;
        __global const float* g = dy + e;
        __global const float* pooled = y + e;
        __global const int* at = idx + e;
        for (int ow = 0; ow < OW; ++ow) {
            const int a = (2 * oh) * W + 2 * ow, m = at[ow];
            const float v = act ? KILN_ACT_GRAD(g[ow], pooled[ow], act, slope, float) : g[ow];
            out[a] = m == a ? v : 0.0f;
            out[a + 1] = m == a + 1 ? v : 0.0f;
            out[a + W] = m == a + W ? v : 0.0f;
            out[a + W + 1] = m == a + W + 1 ? v : 0.0f;
        }
    }
}

// Backward of the fused BatchNorm2d -> activation -> 2 x 2 max pooling (pool_max2 with norm) in two
// passes that never write the normalized tensor's gradient gz: gz is dy of each window (through the
// activation's derivative from the pooled output) at the window's saved index, 0 elsewhere, so both
// passes rebuild it from the pooled tensors (a quarter of the size).
//   pool_max2_bn_backward_partial: bn_backward_partial's sums over gz, in its chunk layout (so
//     bn_backward_finalize takes them unchanged): sum gz and sum gz * (x - mean) per channel.
//   pool_max2_bn_backward_dx: dx = k * gz - k * mean(gz) - k * invstd * mean(gz * xhat) * (x - mean)
//     with bn_backward_finalize's coef, for every input element (those outside every window too).
// g = (planes, H, W, OH, OW, C, act, -) as an int8; slope the activation's parameter.

// gz at the window of pooled element e of plane `plane` (its dy through the activation).
inline float kiln_pool2_grad(__global const float* dy, __global const float* y, const long e, const int act,
                             const float slope) {
    return act ? KILN_ACT_GRAD(dy[e], y[e], act, slope, float) : dy[e];
}

// gz of the 2 x 8 inputs of four neighbouring windows (pooled elements e .. e + 3, top-left input a):
// each window's gradient where its saved index points, 0 at its other three inputs.
inline void kiln_pool2_window_grads(__global const float* dy, __global const float* y, __global const int* idx,
                                    const long e, const int a, const int W, const int act, const float slope,
                                    float8* top, float8* bottom) {
    const int4 at = a + (int4)(0, 2, 4, 6);
    const int4 m = vload4(0, idx + e);
    float4 v = vload4(0, dy + e);
    if (act) v = KILN_ACT_GRAD(v, vload4(0, y + e), act, slope, float4);
    const uint8 interleave = (uint8)(0, 4, 1, 5, 2, 6, 3, 7);
    *top = shuffle2(select((float4)(0.0f), v, m == at), select((float4)(0.0f), v, m == at + 1), interleave);
    *bottom = shuffle2(select((float4)(0.0f), v, m == at + W), select((float4)(0.0f), v, m == at + W + 1), interleave);
}

__kernel void pool_max2_bn_backward_partial(const int N, const int C, const int R, const int8 g, const float slope,
                                            __global const float* x, __global const float* dy,
                                            __global const int* idx, __global const float* y,
                                            __global const float* mean, __global float* partial) {
    const int H = g.s1, W = g.s2, OH = g.s3, OW = g.s4, act = g.s6;
    const int chunks = (N + R - 1) / R, P = OH * OW;
#ifdef KILN_GPU
    // Value j of the chunk: pooled element e of plane (sample, c); x is read at its window's argmax.
#define KILN_BN_POOLED(j)                                                                        \
    const int plane = (r0 + (j) / P) * C + c;                                                    \
    const long e = (long)plane * P + (j) % P;                                                    \
    gv = kiln_pool2_grad(dy, y, e, act, slope);                                                  \
    xv = x[(long)plane * H * W + idx[e]];
    KILN_BN_PARTIAL_GPU(P, KILN_BN_POOLED)
#undef KILN_BN_POOLED
#else
    // gz is non-zero only at each window's saved index, so the sums run over the pooled elements
    // (four at a time), reading x only there.
    const int c = get_global_id(0), chunk = get_global_id(1);
    if (c >= C || chunk >= chunks) return;
    const int r0 = chunk * R, r1 = min(N, r0 + R);
    const float m = mean[c];
    float4 a4 = 0.0f, b4 = 0.0f;
    float sdy = 0.0f, sdyx = 0.0f;
    for (int r = r0; r < r1; ++r) {
        const long plane = (long)r * C + c;
        __global const float* in = x + plane * H * W;
        const long e1 = (plane + 1) * P;
        long e = plane * P;
        for (; e + 4 <= e1; e += 4) {
            float4 v = vload4(0, dy + e);
            if (act) v = KILN_ACT_GRAD(v, vload4(0, y + e), act, slope, float4);
            const int4 at = vload4(0, idx + e);
            const float4 xs = (float4)(in[at.x], in[at.y], in[at.z], in[at.w]);
            a4 += v;
            b4 = fma(v, xs - m, b4);
        }
        for (; e < e1; ++e) {
            const float v = kiln_pool2_grad(dy, y, e, act, slope);
            sdy += v;
            sdyx += v * (in[idx[e]] - m);
        }
    }
    partial[(2 * chunk) * C + c] = sdy + (a4.x + a4.y) + (a4.z + a4.w);
    partial[(2 * chunk + 1) * C + c] = sdyx + (b4.x + b4.y) + (b4.z + b4.w);
#endif
}

// Work-item: `rows` pairs of input rows (plane, 2 oh .. 2 oh + 1) of one plane (several on a CPU,
// up to all of them and, with an odd H, the last row alone; one on a GPU), four windows at a time
// as float4 like pool_max2, the last four of a row overlapping the ones before (so dx must not be
// x or dy: the overlap reads them again after the first four are written).
__kernel void pool_max2_bn_backward_dx(const int8 g, const float slope, __global const float* x,
                                       __global const float* dy, __global const int* idx,
                                       __global const float* y, __global const float* coef,
                                       __global float* dx, const int rows) {
    const int planes = g.s0, H = g.s1, W = g.s2, OH = g.s3, OW = g.s4, C = g.s5, act = g.s6;
    const int pairs = OH + (H & 1), blocks = (pairs + rows - 1) / rows;
    const int item = get_global_id(0);
    if (item >= planes * blocks) return;
    const int plane = item / blocks, oh0 = (item - plane * blocks) * rows, oh1 = min(pairs, oh0 + rows), c = plane % C;
    const float mean = coef[c], k = coef[C + c], kdy = coef[2 * C + c], kxhat = coef[3 * C + c];
    __global const float* in = x + (long)plane * H * W;
    __global float* out = dx + (long)plane * H * W;
    for (int oh = oh0; oh < oh1; ++oh) {
        if (oh == OH) {
            // The odd last row belongs to no window: gz = 0 there.
            for (int w = 0; w < W; ++w) {
                const int a = (H - 1) * W + w;
                out[a] = -kdy - kxhat * (in[a] - mean);
            }
            continue;
        }
        const long e0 = (long)plane * OH * OW + (long)oh * OW;
        const int a0 = (2 * oh) * W;
        if (OW >= 4) {
            for (int ow = 0;; ow += 4) {
                const int o = min(ow, OW - 4);
                float8 gtop, gbottom;
                kiln_pool2_window_grads(dy, y, idx, e0 + o, a0 + 2 * o, W, act, slope, &gtop, &gbottom);
                const float8 top = vload8(0, in + a0 + 2 * o), bottom = vload8(0, in + a0 + W + 2 * o);
                vstore8(k * gtop - kdy - kxhat * (top - mean), 0, out + a0 + 2 * o);
                vstore8(k * gbottom - kdy - kxhat * (bottom - mean), 0, out + a0 + W + 2 * o);
                if (o == OW - 4) break;
            }
        } else {
            for (int ow = 0; ow < OW; ++ow) {
                const int a = a0 + 2 * ow, m = idx[e0 + ow];
                const float v = kiln_pool2_grad(dy, y, e0 + ow, act, slope);
                for (int q = 0; q < 4; ++q) {
                    const int at = a + (q >> 1) * W + (q & 1);
                    out[at] = k * (m == at ? v : 0.0f) - kdy - kxhat * (in[at] - mean);
                }
            }
        }
        if (W & 1) {
            // The odd last column of this row pair.
            for (int q = 0; q < 2; ++q) {
                const int at = a0 + q * W + W - 1;
                out[at] = -kdy - kxhat * (in[at] - mean);
            }
        }
    }
}

// Average pooling with the padding counted (PyTorch's count_include_pad=True): the window's sum
// over KH * KW. Work-item: one (n, c, oh) row.
__kernel void pool_avg(const int8 g, const int8 s, __global const float* x, __global float* y) {
    KILN_GEOMETRY;
    const int item = get_global_id(0);
    if (item >= N * C * OH) return;
    const int oh = item % OH, plane = item / OH;
    __global const float* in = x + (long)plane * H * W;
    const float scale = 1.0f / (float)(KH * KW);
    for (int ow = 0; ow < OW; ++ow) {
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            const int ih = oh * SH - PH + i * DH;
            if (ih < 0 || ih >= H) continue;
            for (int j = 0; j < KW; ++j) {
                const int iw = ow * SW - PW + j * DW;
                if (iw >= 0 && iw < W) sum += in[ih * W + iw];
            }
        }
        y[(long)item * OW + ow] = sum * scale;
    }
}

// dx of average pooling: each input element sums dy / (KH * KW) over the windows that hold it.
__kernel void pool_avg_backward(const int8 g, const int8 s, __global const float* dy, __global float* dx) {
    KILN_GEOMETRY;
    const int item = get_global_id(0);
    if (item >= N * C * H) return;
    const int h = item % H, plane = item / H;
    const long base = (long)plane * OH * OW;
    const float scale = 1.0f / (float)(KH * KW);
    if (KILN_TILING(KH, KW, SH, SW, PH, PW, DH, DW)) {
        const int oh = h / KH;
        __global float* out = dx + (long)item * W;
        int ow = 0, j = 0;
        for (int w = 0; w < W; ++w) {
            out[w] = oh < OH && ow < OW ? dy[base + oh * OW + ow] * scale : 0.0f;
            if (++j == KW) { j = 0; ++ow; }
        }
        return;
    }
    for (int w = 0; w < W; ++w) {
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            const int ohs = h + PH - i * DH;
            if (ohs < 0 || ohs % SH != 0 || ohs / SH >= OH) continue;
            for (int j = 0; j < KW; ++j) {
                const int ows = w + PW - j * DW;
                if (ows < 0 || ows % SW != 0 || ows / SW >= OW) continue;
                sum += dy[base + (ohs / SH) * OW + ows / SW];
            }
        }
        dx[(long)item * W + w] = sum * scale;
    }
}

// Data augmentation of image batches x [N, C, H, W] on the device: a random crop of H x W from the
// image zero-padded by `pad` on every side, and a horizontal flip with probability 1/2, per image,
// from its four Philox words r[4n .. 4n+4) (philox_bits): the crop's row offset is word 0 mod
// 2 pad + 1, its column offset word 1 mod 2 pad + 1, the flip the top bit of word 2.
__kernel void augment_crop_flip(const int N, const int C, const int H, const int W, const int pad,
                                __global const uint* r, __global const float* x, __global float* y) {
    const int item = get_global_id(0);
    if (item >= N * C * H) return;
    const int h = item % H, n = item / (C * H);
    const uint span = (uint)(2 * pad + 1);
    const int dy = (int)(r[4 * n] % span) - pad, dx = (int)(r[4 * n + 1] % span) - pad;
    const int flip = r[4 * n + 2] >> 31;
    const int ih = h + dy;
    __global const float* in = x + (long)(item - h) * W + (long)ih * W;
    __global float* out = y + (long)item * W;
    for (int w = 0; w < W; ++w) {
        const int iw = (flip ? W - 1 - w : w) + dx;
        out[w] = ih >= 0 && ih < H && iw >= 0 && iw < W ? in[iw] : 0.0f;
    }
}

#endif  // !KILN_ONLY_MATMUL
#else  // KILN_BENCH

// =============================================================================================
// Microkernels of the benchmark suite (benchmarks/Suite/Peak.swift), measuring the device's own
// ceilings. Only the suite's program is built with KILN_BENCH; the library's never contains them.
// =============================================================================================

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

#endif  // KILN_BENCH
