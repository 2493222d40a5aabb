"""The explain-module CLI end to end at several commits, side by side on the same inputs.

"No slower than before" is a ratio measured in one run on one machine: each commit is
exported (``git archive``) to a temporary folder and run as ``python -m isograph_gpu`` from
there, the commits alternating run by run, on the 1,000 x 50,010 x 20 inputs of
bench_explain.py ('large') and the 1,000 x 250,000 x 32 inputs of bench_scaling.py
(``--whole-run``), with ``--no-report`` where the commit has the report (the earlier
commits write none). Wall clock and peak RSS per run (``wait4``), the manifest's stage
timings, medians, each commit's median over the first's. Writes
``bench/results/commits_cpu.json``. ``--feature-cache``: every run is a rerun, from one
feature cache per size written by an untimed run of the last commit first (the commits
must share its format: 54726da and later).

    python bench/bench_commits.py 4d9fbc6 e2fb8cd HEAD --repeats 3
    python bench/bench_commits.py f157273 HEAD --feature-cache --output OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from bench_explain import SIZES, prepare_inputs  # noqa: E402
from bench_scaling import _peak_rss_run, _whole_run_inputs  # noqa: E402

RESULTS = BENCH_DIR / "results" / "commits_cpu.json"


def export(commit: str, root: Path) -> tuple[str, Path]:
    """``(sha, folder)``: the package of ``commit`` exported under ``root``."""
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    folder = root / sha
    folder.mkdir()
    archive = subprocess.run(["git", "archive", sha, "isograph_gpu"], cwd=REPO, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    imported = subprocess.run([sys.executable, "-c", "import isograph_gpu; print(isograph_gpu.__file__)"],
                              cwd=folder, env={**os.environ, "PYTHONPATH": str(folder)},
                              check=True, capture_output=True, text=True).stdout.strip()
    if not Path(imported).resolve().is_relative_to(folder.resolve()):
        raise RuntimeError(f"{commit}: python imported {imported}, not the export")
    return sha, folder


def run_once(folder: Path, paths: dict[str, Path], out: Path,
             cache: Path | None = None) -> dict:
    has_report = "no-report" in (folder / "isograph_gpu" / "cli" / "explain.py").read_text()
    cmd = [sys.executable, "-m", "isograph_gpu", "explain-module",
           "--artifact-dir", str(paths["artifact_dir"]),
           "--feature-table", str(paths["feature_table"]),
           "--feature-meta", str(paths["feature_meta"]),
           "--output-dir", str(out), "--device", "cpu", "--quiet",
           *(["--no-report"] if has_report else []),
           *(["--feature-cache", str(cache)] if cache is not None else [])]
    env = {**os.environ, "PYTHONPATH": str(folder)}
    env.pop("MKL_CBWR", None)  # each commit's own setting
    parent_kib = _rss_kib()
    wall, peak_kib = _peak_rss_run(cmd, env, cwd=folder)  # -m puts the cwd first
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    assert "report" not in manifest.get("timings_seconds", {}), f"{folder}: a report was drawn"
    # Linux carries the forking process's RSS into the child's ru_maxrss (kept across exec):
    # a reading no larger than this process's own RSS measures this process, not the run
    peak = round(peak_kib / 2**20, 3) if peak_kib > parent_kib else None
    return {"wall_s": round(wall, 3), "peak_rss_gib": peak,
            "stage_timings_s": manifest.get("timings_seconds", {})}


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _median_or_none(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="50k,250k")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--feature-cache", action="store_true",
                        help="time reruns from a feature cache written once per size")
    args = parser.parse_args()
    inputs = {  # each prepared (generated once under bench/.work) only when asked for
        "50k": lambda: prepare_inputs("large", SIZES["large"]),
        "250k": lambda: _whole_run_inputs(
            BENCH_DIR / ".work" / "whole_1000_250000_32" / "inputs", 1000, 250000, 32)}
    load = [os.getloadavg()[0]]
    record: dict = {"benchmark": "bench/bench_commits.py", "commits": {}, "sizes": {},
                    "feature_cache": bool(args.feature_cache)}
    with tempfile.TemporaryDirectory(prefix="isograph_gpu_commits_") as tmp:
        exported = [export(c, Path(tmp)) for c in args.commits]
        record["commits"] = {sha: name for (sha, _), name in zip(exported, args.commits,
                                                                 strict=True)}
        for size in args.sizes.split(","):
            paths = inputs[size]()
            runs: dict[str, list[dict]] = {sha: [] for sha, _ in exported}
            cache = None
            if args.feature_cache:  # written once, untimed, by the last commit
                cache = Path(tmp) / f"features_{size}.igcache"
                run_once(exported[-1][1], paths, Path(tmp) / f"cache_{size}", cache)
                shutil.rmtree(Path(tmp) / f"cache_{size}")
            for rep in range(args.repeats):
                for sha, folder in exported:
                    out = Path(tmp) / f"out_{size}_{sha}_{rep}"
                    runs[sha].append(run_once(folder, paths, out, cache))
                    print(size, sha, json.dumps(runs[sha][-1]), flush=True)
                    shutil.rmtree(out)
            first = exported[0][0]
            medians = {sha: statistics.median(r["wall_s"] for r in rs) for sha, rs in runs.items()}
            record["sizes"][size] = {
                "runs": runs, "median_wall_s": medians,
                "median_peak_rss_gib": {sha: _median_or_none([r["peak_rss_gib"] for r in rs])
                                        for sha, rs in runs.items()},
                f"ratio_over_{first}": {sha: round(m / medians[first], 3)
                                        for sha, m in medians.items()}}
            load.append(os.getloadavg()[0])
    record["load_average_1min"] = load
    # judged before the first run: the runs' own threads then load the host
    record["host"] = "quiet" if load[0] <= 0.75 * (os.cpu_count() or 1) else "loaded host"
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({s: v["median_wall_s"] for s, v in record["sizes"].items()}, indent=1))
    print(json.dumps({s: v[f"ratio_over_{exported[0][0]}"] for s, v in record["sizes"].items()},
                     indent=1))


if __name__ == "__main__":
    main()
