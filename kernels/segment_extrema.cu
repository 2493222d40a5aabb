// Per-gene extrema of r [F, K] for all modules at once. Features are grouped by gene via a
// CSR index: the features of gene g are order[offsets[g] .. offsets[g+1]) (ascending row
// index within a gene, so ties keep the lowest row, as isograph_gpu.ops.segments).
// One thread per (gene, module). Outputs [G, K]: max, min, argmax, argmin (row index or -1),
// count of finite r, and switch strength (max - min when count >= 2, else 0).

template <typename T>
__device__ void segment_extrema_impl(const T* __restrict__ r, const long long* __restrict__ order,
                                     const long long* __restrict__ offsets, int G, int K,
                                     T* __restrict__ out_max, T* __restrict__ out_min,
                                     long long* __restrict__ out_argmax,
                                     long long* __restrict__ out_argmin,
                                     long long* __restrict__ out_count,
                                     T* __restrict__ out_strength) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    const int g = blockIdx.y;
    if (k >= K || g >= G) return;
    T hi = -INFINITY, lo = INFINITY;
    long long arg_hi = -1, arg_lo = -1, count = 0;
    for (long long p = offsets[g]; p < offsets[g + 1]; ++p) {
        const long long row = order[p];
        const T v = r[row * K + k];
        if (!isfinite(v)) continue;
        ++count;
        if (v > hi || (v == hi && row < arg_hi)) { hi = v; arg_hi = row; }
        if (v < lo || (v == lo && row < arg_lo)) { lo = v; arg_lo = row; }
    }
    const size_t o = (size_t)g * K + k;
    out_max[o] = hi;
    out_min[o] = lo;
    out_argmax[o] = arg_hi;
    out_argmin[o] = arg_lo;
    out_count[o] = count;
    out_strength[o] = count >= 2 ? hi - lo : T(0);
}

extern "C" __global__ void segment_extrema_f32(const float* r, const long long* order,
                                               const long long* offsets, int G, int K,
                                               float* out_max, float* out_min,
                                               long long* out_argmax, long long* out_argmin,
                                               long long* out_count, float* out_strength) {
    segment_extrema_impl<float>(r, order, offsets, G, K, out_max, out_min, out_argmax,
                                out_argmin, out_count, out_strength);
}

extern "C" __global__ void segment_extrema_f64(const double* r, const long long* order,
                                               const long long* offsets, int G, int K,
                                               double* out_max, double* out_min,
                                               long long* out_argmax, long long* out_argmin,
                                               long long* out_count, double* out_strength) {
    segment_extrema_impl<double>(r, order, offsets, G, K, out_max, out_min, out_argmax,
                                 out_argmin, out_count, out_strength);
}
