// Times kernels.cl's packed path on the device (matmul_pack x2 + matmul_packed) against matmul_nn, interleaved.
// usage: hp FILE "OPTIONS" M N K TM TV GX GY REPS
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
static char* slurp(const char* p, size_t* n) { FILE* f = fopen(p, "rb"); fseek(f, 0, SEEK_END); *n = ftell(f); rewind(f);
  char* s = malloc(*n + 1); fread(s, 1, *n, f); s[*n] = 0; fclose(f); return s; }
static int cmp(const void* a, const void* b) { double x = *(double*)a, y = *(double*)b; return x < y ? -1 : x > y; }
#define CK(x) do { cl_int e_ = (x); if (e_) { fprintf(stderr, "%s: %d\n", #x, e_); exit(1); } } while (0)
static double ms(cl_event e) { cl_ulong s0, s1; clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, 8, &s0, NULL); clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, 8, &s1, NULL); return (s1 - s0) * 1e-6; }
#define ARG(k, i, v) CK(clSetKernelArg(k, i, sizeof(v), &(v)))
int main(int argc, char** argv) {
  size_t n; char* src = slurp(argv[1], &n);
  int M = atoi(argv[3]), N = atoi(argv[4]), K = atoi(argv[5]), TM = atoi(argv[6]), TV = atoi(argv[7]), gx = atoi(argv[8]), gy = atoi(argv[9]), reps = atoi(argv[10]);
  cl_platform_id pl; cl_device_id dev; CK(clGetPlatformIDs(1, &pl, NULL)); CK(clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 1, &dev, NULL));
  cl_int e; cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e); CK(e);
  cl_command_queue q = clCreateCommandQueue(ctx, dev, CL_QUEUE_PROFILING_ENABLE, &e); CK(e);
  cl_program prog = clCreateProgramWithSource(ctx, 1, (const char**)&src, &n, &e); CK(e);
  if (clBuildProgram(prog, 1, &dev, argv[2], NULL, NULL)) { char log[20000]; clGetProgramBuildInfo(prog, dev, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL); fprintf(stderr, "%s\n", log); return 1; }
  cl_kernel kp = clCreateKernel(prog, "matmul_pack", &e); CK(e);
  cl_kernel kpd = clCreateKernel(prog, "matmul_packed", &e); CK(e);
  cl_kernel knn = clCreateKernel(prog, "matmul_nn", &e); CK(e);
  int pa = (M + TM - 1) / TM, pb = (N + TV - 1) / TV;
  float* A = malloc(4 * M * K), *B = malloc(4 * K * N);
  for (int i = 0; i < M * K; ++i) A[i] = rand() / (float)RAND_MAX; for (int i = 0; i < K * N; ++i) B[i] = rand() / (float)RAND_MAX;
  cl_mem dA = clCreateBuffer(ctx, CL_MEM_COPY_HOST_PTR, 4 * M * K, A, &e), dB = clCreateBuffer(ctx, CL_MEM_COPY_HOST_PTR, 4 * K * N, B, &e);
  cl_mem dC = clCreateBuffer(ctx, 0, 4 * M * N, NULL, &e), dAp = clCreateBuffer(ctx, 0, 4 * pa * TM * K, NULL, &e), dBp = clCreateBuffer(ctx, 0, 4 * pb * TV * K, NULL, &e);
  int zero = 0, one = 1, lda = K, ldb = N, ldc = N; float fz = 0;
  double *tp = malloc(8 * reps), *tn = malloc(8 * reps), *tk = malloc(8 * reps);
  for (int r = -2; r < reps; ++r) {
    cl_event ev[3];
    int rsA = lda, ksA = 1, rsB = 1, ksB = ldb;
    ARG(kp, 0, M); ARG(kp, 1, K); ARG(kp, 2, TM); ARG(kp, 3, dA); ARG(kp, 4, rsA); ARG(kp, 5, ksA); ARG(kp, 6, dAp);
    size_t g1[2] = { ((K + 7) / 8 + 15) / 16 * 16, pa }, l1[2] = { 16, 1 };
    CK(clEnqueueNDRangeKernel(q, kp, 2, NULL, g1, l1, 0, NULL, &ev[0]));
    ARG(kp, 0, N); ARG(kp, 2, TV); ARG(kp, 3, dB); ARG(kp, 4, rsB); ARG(kp, 5, ksB); ARG(kp, 6, dBp);
    size_t g2[2] = { (K + 15) / 16 * 16, pb };
    CK(clEnqueueNDRangeKernel(q, kp, 2, NULL, g2, l1, 0, NULL, &ev[1]));
    ARG(kpd, 0, M); ARG(kpd, 1, N); ARG(kpd, 2, K); ARG(kpd, 3, dAp); ARG(kpd, 4, dBp); ARG(kpd, 5, dC); ARG(kpd, 6, ldc); ARG(kpd, 7, dC); ARG(kpd, 8, zero); ARG(kpd, 9, fz);
    size_t g3[2] = { (pb + gx - 1) / gx * gx, (pa + gy - 1) / gy * gy }, l3[2] = { gx, gy };
    CK(clEnqueueNDRangeKernel(q, kpd, 2, NULL, g3, l3, 0, NULL, &ev[2]));
    clFinish(q);
    if (r >= 0) { tp[r] = ms(ev[0]) + ms(ev[1]); tk[r] = ms(ev[2]); }
    int a = 0; cl_event en;
    ARG(knn, a++, M); ARG(knn, a++, N); ARG(knn, a++, K); ARG(knn, a++, dA); ARG(knn, a++, lda); ARG(knn, a++, dB); ARG(knn, a++, ldb);
    ARG(knn, a++, dC); ARG(knn, a++, ldc); ARG(knn, a++, dC); ARG(knn, a++, zero); ARG(knn, a++, fz); ARG(knn, a++, zero); ARG(knn, a++, zero); ARG(knn, a++, zero); ARG(knn, a++, one);
    size_t g4[3] = { (pb + gx - 1) / gx * gx, (pa + gy - 1) / gy * gy, 1 }, l4[3] = { gx, gy, 1 };
    CK(clEnqueueNDRangeKernel(q, knn, 3, NULL, g4, l4, 0, NULL, &en)); clFinish(q);
    if (r >= 0) tn[r] = ms(en);
  }
  double tot[1000]; for (int i = 0; i < reps; ++i) tot[i] = tp[i] + tk[i];
  qsort(tp, reps, 8, cmp); qsort(tk, reps, 8, cmp); qsort(tn, reps, 8, cmp); qsort(tot, reps, 8, cmp);
  double f = 2.0 * M * N * K * 1e-6;
  printf("%5dx%5dx%5d  nn %.3f ms (%.1f)  packed total %.3f ms (%.1f) = pack %.3f + product %.3f\n", M, K, N, tn[reps/2], f / tn[reps/2], tot[reps/2], f / tot[reps/2], tp[reps/2], tk[reps/2]);
}
