#ifndef KILN_COPENCL_SHIM_H
#define KILN_COPENCL_SHIM_H
// Kiln uses only the OpenCL 1.2 API, so NVIDIA, AMD, Intel and PoCL all work.
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#endif
