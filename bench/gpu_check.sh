#!/usr/bin/env bash
# One command that checks a GPU machine (issue 10), from the project root:
#
#   bash bench/gpu_check.sh [--quick]
#
# 1. the CUDA tests (pytest -m cuda, reference parity excluded),
# 2. reference parity on CUDA at the default precision, float64 (tests/parity/test_parity_devices.py),
# 3. bench/bench_gpu.py: stages at 1,000 x 250,000 x 32 with X on the device, parity
#    deviations at float64 and float32 from isograph 0.1.5's stored tables, and the whole
#    explain end to end (skipped with --quick),
# 4. bench/bench_training.py: ModuleStatistics at 256 x 50,000 x 16 vs one VAE step,
# 5. the numeric cases against exact arithmetic on CUDA (tests/ops/test_cancellation.py:
#    offsets on NaN-score samples, far-apart groups, 1e10..1e300 outliers, the sync-free
#    selection of the training call; tests/ops/test_betainc.py: the torch betainc route).
# 5. the residency and transfer paths (tests/compute/test_residency.py and tests/compute/test_block_reads.py
#    on CUDA: a matrix kept on the device copied once, streamed module blocks equal to the
#    loaded run) and bench/bench_blocks.py: 1 vs 4 module blocks on a streamed 1,000 x
#    50,000 table on the device (skipped with --quick).
#
# Writes bench/results/gpu_<card>.json (bench_gpu), bench/results/training_cuda.json,
# bench/results/blocks_<card>.json (bench_blocks) and
# bench/results/gpu_check_<card>.json (each step's exit status, seconds and last lines,
# with the card, driver, torch, CUDA and CuPy versions). Each step has its own time limit;
# from the issue-10 H200 timings the whole check should take about 5 minutes there (an
# estimate: it has not run on a GPU yet); --quick skips the end-to-end explain.
#
# Offline machines lack polars and captum: build .device-bundle/ here first with
# ../shared/gpu/make_device_bundle.sh (see its header) and send it with the working tree;
# when .device-bundle/setup.sh is present this script installs from it before anything else.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

if [ -f .device-bundle/setup.sh ]; then
    bash .device-bundle/setup.sh || { echo "gpu_check: .device-bundle/setup.sh failed" >&2; exit 1; }
    # the bundle's setup.sh writes its environment file where its own script says
    env_file=$(grep -o '> *[^ ]*device-env' .device-bundle/setup.sh | tr -d '> ' | head -n1)
    # shellcheck disable=SC1090
    [ -n "$env_file" ] && . "$env_file"
fi
py="${PYTHON:-python3}"
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device; nothing checked" >&2
    exit 2
fi
card=$("$py" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '_', torch.cuda.get_device_name(0).lower()).strip('_'))")
card=${card:-unknown_card}
results=bench/results
mkdir -p "$results"
logs=$(mktemp -d)
: > "$logs/steps.tsv"
failed=0

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local start rc
    start=$(date +%s)
    echo "== gpu_check: $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$logs/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$logs/steps.tsv"
    tail -n 4 "$logs/$name.log"
    [ "$rc" -eq 0 ] || failed=1
}

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
step cuda_tests 120 "$py" -m pytest -q -p no:cacheprovider -m cuda tests \
    --ignore=tests/parity/test_parity_devices.py
step parity_cuda_float64 60 "$py" -m pytest -q -p no:cacheprovider -m cuda \
    tests/parity/test_parity_devices.py
bench_args=(--device cuda --repeats 5 --end-to-end-repeats 1 --out "$results/gpu_$card.json")
[ "$quick" -eq 1 ] && bench_args+=(--skip-end-to-end)
step bench_gpu 270 "$py" bench/bench_gpu.py "${bench_args[@]}"
step bench_training 60 "$py" bench/bench_training.py --device cuda \
    --out "$results/training_cuda.json"
step numerics_cuda 120 "$py" -m pytest -q -p no:cacheprovider -m cuda \
    tests/ops/test_cancellation.py tests/ops/test_betainc.py tests/training/test_training.py
step residency_cuda 90 "$py" -m pytest -q -p no:cacheprovider tests/compute/test_residency.py \
    tests/compute/test_compute_step.py tests/compute/test_block_reads.py
[ "$quick" -eq 1 ] || step bench_blocks 240 "$py" bench/bench_blocks.py --device cuda \
    --repeats 3 --json "$results/blocks_$card.json"

"$py" - "$logs" "$results/gpu_check_$card.json" <<'PY'
import json, sys
from pathlib import Path

sys.path.insert(0, "bench")
import torch
from bench_gpu import machine_info

logs, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = []
for line in (logs / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    tail = (logs / f"{name}.log").read_text(errors="replace").strip().splitlines()[-4:]
    steps.append({"step": name, "exit_status": int(rc), "seconds": int(seconds),
                  "passed": rc == "0", "last_lines": tail})
record = {"check": "bench/gpu_check.sh", "machine": machine_info(torch.device("cuda")),
          "steps": steps, "passed": all(s["passed"] for s in steps)}
out.write_text(json.dumps(record, indent=2) + "\n")
print(json.dumps({s["step"]: (s["exit_status"], s["seconds"]) for s in steps}))
print(f"gpu_check: wrote {out}")
PY
if [ "$failed" -ne 0 ]; then
    echo "gpu_check: FAILED (logs in $logs)" >&2
    exit 1
fi
echo "gpu_check: all steps passed"
