#!/usr/bin/env bash
# Compile every kernels/*.cu to PTX for sm_90 so CI catches CUDA C errors without a GPU.
# Skips (exit 0) when nvcc is not installed. Usage: .ci/compile_kernels.sh [out_dir]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$(mktemp -d)}"
nvcc_bin="$(command -v nvcc || true)"
if [[ -z "$nvcc_bin" ]]; then
    for cand in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
        [[ -x "$cand" ]] && nvcc_bin="$cand" && break
    done
fi
if [[ -z "$nvcc_bin" ]]; then
    echo "compile_kernels: nvcc not found, skipped"
    exit 0
fi
mkdir -p "$out"
status=0
for src in "$root"/kernels/*.cu; do
    name="$(basename "$src" .cu)"
    if "$nvcc_bin" -ptx -arch=sm_90 -o "$out/$name.ptx" "$src"; then
        echo "compile_kernels: $name.cu -> $out/$name.ptx"
    else
        echo "compile_kernels: FAILED $name.cu" >&2
        status=1
    fi
done
exit $status
