// Pairwise-complete moments of every feature column of x [n, F] against every column of
// y [n, K] in one pass over x (row-major, NaN = missing). Values are centred by the given
// column centres (nan-means) before accumulation, as in isograph_gpu.ops.moments.
//
// Thread layout: threadIdx.x / blockIdx.x -> feature f (coalesced reads of x rows),
// blockIdx.y -> a tile of KT eigengene columns kept in registers.
// Outputs (each [F, K] row-major): n, sx, sy, sxx, syy, sxy.

#define KT 8

template <typename T>
__device__ void masked_moments_impl(const T* __restrict__ x, const T* __restrict__ y,
                                    const T* __restrict__ x_centre,
                                    const T* __restrict__ y_centre, int n, int F, int K,
                                    T* __restrict__ out_n, T* __restrict__ out_sx,
                                    T* __restrict__ out_sy, T* __restrict__ out_sxx,
                                    T* __restrict__ out_syy, T* __restrict__ out_sxy) {
    const int f = blockIdx.x * blockDim.x + threadIdx.x;
    const int k0 = blockIdx.y * KT;
    if (f >= F) return;
    T acc_n[KT], acc_sx[KT], acc_sy[KT], acc_sxx[KT], acc_syy[KT], acc_sxy[KT];
    T yc[KT];
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        acc_n[j] = acc_sx[j] = acc_sy[j] = acc_sxx[j] = acc_syy[j] = acc_sxy[j] = T(0);
        yc[j] = (k0 + j < K) ? y_centre[k0 + j] : T(0);
    }
    const T xc = x_centre[f];
    for (int i = 0; i < n; ++i) {
        const T xv = x[(size_t)i * F + f];
        if (!isfinite(xv)) continue;
        const T xd = xv - xc;
#pragma unroll
        for (int j = 0; j < KT; ++j) {
            if (k0 + j >= K) break;
            const T yv = y[(size_t)i * K + k0 + j];
            if (!isfinite(yv)) continue;
            const T yd = yv - yc[j];
            acc_n[j] += T(1);
            acc_sx[j] += xd;
            acc_sy[j] += yd;
            acc_sxx[j] += xd * xd;
            acc_syy[j] += yd * yd;
            acc_sxy[j] += xd * yd;
        }
    }
#pragma unroll
    for (int j = 0; j < KT; ++j) {
        if (k0 + j >= K) break;
        const size_t o = (size_t)f * K + k0 + j;
        out_n[o] = acc_n[j];
        out_sx[o] = acc_sx[j];
        out_sy[o] = acc_sy[j];
        out_sxx[o] = acc_sxx[j];
        out_syy[o] = acc_syy[j];
        out_sxy[o] = acc_sxy[j];
    }
}

extern "C" __global__ void masked_moments_f32(const float* x, const float* y,
                                              const float* x_centre, const float* y_centre,
                                              int n, int F, int K, float* out_n, float* out_sx,
                                              float* out_sy, float* out_sxx, float* out_syy,
                                              float* out_sxy) {
    masked_moments_impl<float>(x, y, x_centre, y_centre, n, F, K, out_n, out_sx, out_sy,
                               out_sxx, out_syy, out_sxy);
}

extern "C" __global__ void masked_moments_f64(const double* x, const double* y,
                                              const double* x_centre, const double* y_centre,
                                              int n, int F, int K, double* out_n,
                                              double* out_sx, double* out_sy, double* out_sxx,
                                              double* out_syy, double* out_sxy) {
    masked_moments_impl<double>(x, y, x_centre, y_centre, n, F, K, out_n, out_sx, out_sy,
                                out_sxx, out_syy, out_sxy);
}
