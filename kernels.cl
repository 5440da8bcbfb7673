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
