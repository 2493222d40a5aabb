// High/low group sums of every feature of x [n, F] (row-major, NaN = missing) for every
// module split: high/low [n, K] uint8 group memberships. Values are centred by x_centre
// [F] first (as isograph_gpu.ops.contrast.group_sums). One pass over x; threadIdx.x ->
// feature, blockIdx.y -> a tile of KT modules.
// Outputs [F, K]: count, sum, sum of squares for the high and for the low group.

#define KT 8

template <typename T>
__device__ void group_sums_impl(const T* __restrict__ x, const unsigned char* __restrict__ high,
                                const unsigned char* __restrict__ low,
                                const T* __restrict__ x_centre, int n, int F, int K,
                                T* __restrict__ count_h, T* __restrict__ sum_h,
                                T* __restrict__ sq_h, T* __restrict__ count_l,
                                T* __restrict__ sum_l, T* __restrict__ sq_l) {
    const int f = blockIdx.x * blockDim.x + threadIdx.x;
    const int k0 = blockIdx.y * KT;
    if (f >= F) return;
    T ch[KT], sh[KT], qh[KT], cl[KT], sl[KT], ql[KT];
#pragma unroll
    for (int j = 0; j < KT; ++j) ch[j] = sh[j] = qh[j] = cl[j] = sl[j] = ql[j] = T(0);
    const T xc = x_centre[f];
    for (int i = 0; i < n; ++i) {
        const T xv = x[(size_t)i * F + f];
        if (!isfinite(xv)) continue;
        const T xd = xv - xc;
        const T xd2 = xd * xd;
#pragma unroll
        for (int j = 0; j < KT; ++j) {
            if (k0 + j >= K) break;
            const size_t m = (size_t)i * K + k0 + j;
            if (high[m]) { ch[j] += T(1); sh[j] += xd; qh[j] += xd2; }
            else if (low[m]) { cl[j] += T(1); sl[j] += xd; ql[j] += xd2; }
        }
    }
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        if (k0 + j >= K) break;
        const size_t o = (size_t)f * K + k0 + j;
        count_h[o] = ch[j]; sum_h[o] = sh[j]; sq_h[o] = qh[j];
        count_l[o] = cl[j]; sum_l[o] = sl[j]; sq_l[o] = ql[j];
    }
}

extern "C" __global__ void group_sums_f32(const float* x, const unsigned char* high,
                                          const unsigned char* low, const float* x_centre,
                                          int n, int F, int K, float* count_h, float* sum_h,
                                          float* sq_h, float* count_l, float* sum_l,
                                          float* sq_l) {
    group_sums_impl<float>(x, high, low, x_centre, n, F, K, count_h, sum_h, sq_h, count_l,
                           sum_l, sq_l);
}

extern "C" __global__ void group_sums_f64(const double* x, const unsigned char* high,
                                          const unsigned char* low, const double* x_centre,
                                          int n, int F, int K, double* count_h, double* sum_h,
                                          double* sq_h, double* count_l, double* sum_l,
                                          double* sq_l) {
    group_sums_impl<double>(x, high, low, x_centre, n, F, K, count_h, sum_h, sq_h, count_l,
                            sum_l, sq_l);
}
