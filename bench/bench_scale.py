"""``explain-module`` at GTEx's sample count: 17,000 samples x 50,000 transcripts x 20
modules, streamed within the memory budget, from the parquet and from the feature cache.

The inputs are written by :func:`isograph_gpu.synthetic.write_synthetic_dataset` (the
generator's tables, streamed to disk in row groups; float32 values) under ``--work`` (default
``bench/.work/scale``, git-ignored, reused while the parameters match; ``--remove-inputs`` deletes them
at the end). The feature table is the reference's samples x features parquet: it is the
layout the CLI streams in column blocks (a features x samples parquet is read whole by
polars and then copied to float64, 10 GB at this size, over this host's share).

Three CLI runs in fresh processes, one after another on the same inputs, each with
``--stream-features --memory-budget B --no-report --device cpu``: without
``--feature-cache`` (``no_cache``), writing the cache (``first_run``) and reading it
(``rerun``). Per run: wall clock and peak RSS (``/usr/bin/time``), CPU seconds (user +
system), the manifest's stage timings and the load average before and after. The tables of
the three runs are checked equal. Then a projection to ``--project-features`` (250,000)
transcripts at the same samples and modules: the stages that scale with the features
(feature statistics, the cache's write and hash, the per-feature tables) scaled linearly
by the feature count, the others kept, with the per-feature costs they rest on.

Usage: ``python bench/bench_scale.py [--samples 17000 --features 50000 --modules 20
--memory-budget 2G] [--smoke]``; results are merged into ``bench/results/scale_cpu.json``
(one entry per size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from bench_cache import _same_tables  # noqa: E402
from bench_explain import REPO, describe_inputs, ours_cmd  # noqa: E402

RESULTS = BENCH_DIR / "results" / "scale_cpu.json"
RUNS = ("no_cache", "first_run", "rerun")
#: manifest stages whose time follows the number of features (the rest: samples, module
#: genes, start-up)
FEATURE_STAGES = ("feature statistics", "write feature cache", "hash feature table",
                  "verify feature cache", "tables", "transcript polarity")


def _inputs(work: Path, n: int, f: int, k: int, genes_per_module: int) -> tuple[dict, float]:
    """The inputs under ``work`` (generated in a child process, reused while the stamp
    matches), and the generation's record (wall, peak RSS; 0 when reused)."""
    params = {"n_samples": n, "n_genes": f // 4, "n_modules": k,
              "genes_per_module": genes_per_module, "transcripts_per_gene": [4, 4],
              "nan_fraction": 0.02, "seed": 0}
    root = work / f"inputs_{n}_{f}_{k}"
    stamp = root / "params.json"
    paths = {"artifact_dir": root / "artifact", "feature_table": root / "feature_table.parquet",
             "feature_meta": root / "feature_meta.parquet"}
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return paths, {"reused": True}
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    code = ("import json, sys; from isograph_gpu.synthetic import write_synthetic_dataset; "
            "p = json.loads(sys.argv[1]); p['transcripts_per_gene'] = tuple(p['transcripts_per_gene']); "
            "write_synthetic_dataset(sys.argv[2], **p)")
    run = sampled_run([sys.executable, "-c", code, json.dumps(params), str(root)],
                      work / f"generate_{n}_{f}_{k}.log")
    stamp.write_text(json.dumps(params))
    print(f"[scale] generated {n} x {f} in {run['wall_s']:.1f} s, peak "
          f"{run['peak_rss_gib']:.2f} GiB (anon {run['peak_anon_gib_sampled']:.2f})",
          flush=True)
    return paths, {"reused": False, **run}


def _status_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile (KiB) of ``pid`` from /proc (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = (line.split(":") for line in lines)
    return {k: int(v.split()[0]) for k, v in fields if k in ("VmRSS", "RssAnon", "RssFile")}


def sampled_run(cmd: list[str], log: Path, every_s: float = 0.1) -> dict[str, float]:
    """Run ``cmd``: wall clock, CPU seconds, peak RSS (``wait4``) and the peaks of its
    anonymous and file-backed resident memory sampled from /proc every ``every_s``: a
    mapped file's pages (the cache, a hashed input) count in RSS but are page cache the
    kernel reclaims, the anonymous pages are what the run holds."""
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for key, value in _status_kib(proc.pid).items():
                    peaks[key] = max(peaks[key], value)
                done.wait(every_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed; see {log}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_gib": usage.ru_maxrss / 2**20,
            "peak_anon_gib_sampled": peaks["RssAnon"] / 2**20,
            "peak_file_backed_gib_sampled": peaks["RssFile"] / 2**20}


def _cli_run(paths: dict, out: Path, budget: str, cache: Path | None, log: Path) -> dict:
    cmd = [*ours_cmd(paths, out), "--stream-features", "--memory-budget", budget,
           "--no-report", "--quiet"]
    if cache is not None:
        cmd += ["--feature-cache", str(cache)]
    load_before = os.getloadavg()[0]
    run = sampled_run(cmd, log)
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    stages = manifest["timings_seconds"]
    return {**run, "stage_timings_s": stages,
            "outside_stages_s": run["wall_s"] - sum(stages.values()),
            "feature_table_streamed": manifest.get("feature_table_streamed"),
            "load_average_1min": [load_before, os.getloadavg()[0]]}


def _projection(row: dict, target: int, smaller: dict | None = None) -> dict:
    """Each run's wall clock and peak anonymous memory at ``target`` features (same samples
    and modules). With ``smaller`` (the same run at fewer features): every stage, the time
    outside the stages and the memory fitted as a + b x features through the two sizes
    (what does not follow the features, the eigengenes, start-up, keeps its time). Without
    it: the feature stages scaled by target / features, the rest kept."""
    f = row["inputs"]["n_table_features"]
    out: dict = {"n_features": target, "factor": target / f}
    if smaller is not None:
        f0 = smaller["inputs"]["n_table_features"]
        out["method"] = (f"a + b x features through {f0:,} and {f:,} features (same samples "
                         "and modules), per stage")
        out["from"] = [f"{row['inputs']['n_samples']}x{f0}", f"{row['inputs']['n_samples']}x{f}"]
    else:
        out["method"] = f"stages {list(FEATURE_STAGES)} x target / features, the rest kept"
    for name in RUNS:
        run = row["runs"][name]
        parts = {**run["stage_timings_s"], "outside stages": run["outside_stages_s"],
                 "peak anon GiB": run["peak_anon_gib_sampled"]}
        if smaller is not None:
            low = smaller["runs"][name]
            low_parts = {**low["stage_timings_s"], "outside stages": low["outside_stages_s"],
                         "peak anon GiB": low["peak_anon_gib_sampled"]}
            slope = {s: (t - low_parts.get(s, 0.0)) / (f - f0) for s, t in parts.items()}
        else:
            slope = {s: (t / f if s in FEATURE_STAGES else 0.0) for s, t in parts.items()}
        projected = {s: max(0.0, t + slope[s] * (target - f)) for s, t in parts.items()}
        memory = projected.pop("peak anon GiB")
        out[name] = {"per_feature_us": {s: 1e6 * b for s, b in slope.items()
                                        if s != "peak anon GiB"},
                     "stages_s": projected, "wall_s": sum(projected.values()),
                     "peak_anon_gib": memory}
    n = row["inputs"]["n_samples"]
    out["cache_gb"] = 8 * n * target / 1e9
    out["feature_table_gb"] = row["inputs"]["feature_table_mb"] * 2**20 * target / f / 1e9
    return out


def _smaller(results: dict, row: dict) -> dict | None:
    """The entry of ``results`` at the same samples and modules and the most features
    below ``row``'s, if any."""
    n, f = row["inputs"]["n_samples"], row["inputs"]["n_table_features"]
    k = row["inputs"]["n_modules"]
    same = [r for r in results.values() if r["inputs"]["n_samples"] == n
            and r["inputs"]["n_modules"] == k and r["inputs"]["n_table_features"] < f
            and "peak_anon_gib_sampled" in r["runs"]["rerun"]]
    return max(same, key=lambda r: r["inputs"]["n_table_features"], default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=17_000)
    parser.add_argument("--features", type=int, default=50_000)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--genes-per-module", type=int, default=50)
    parser.add_argument("--memory-budget", default="2G")
    parser.add_argument("--project-features", type=int, default=250_000)
    parser.add_argument("--work", type=Path, default=BENCH_DIR / ".work" / "scale")
    parser.add_argument("--remove-inputs", action="store_true",
                        help="delete the generated inputs at the end")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run (300 x 2,000 x 4), recorded under its own key")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.features, args.modules, args.genes_per_module = 300, 2000, 4, 20
    n, f, k = args.samples, args.features, args.modules
    paths, generated = _inputs(args.work, n, f, k, args.genes_per_module)
    inputs = describe_inputs(paths)
    runs_dir = args.work / f"runs_{n}_{f}_{k}"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True)
    cache = runs_dir / "features.igcache"
    try:
        runs = {}
        for name in RUNS:
            runs[name] = _cli_run(paths, runs_dir / name, args.memory_budget,
                                  None if name == "no_cache" else cache,
                                  runs_dir / f"{name}.log")
            print(f"[scale] {name:9} wall {runs[name]['wall_s']:7.1f} s  cpu "
                  f"{runs[name]['cpu_s']:7.1f} s  peak {runs[name]['peak_rss_gib']:5.2f} GiB (anon "
                  f"{runs[name]['peak_anon_gib_sampled']:5.2f})  "
                  f"load {runs[name]['load_average_1min']}", flush=True)
        _same_tables(runs_dir / "no_cache", runs_dir / "first_run")
        _same_tables(runs_dir / "no_cache", runs_dir / "rerun")
        cache_gb = cache.stat().st_size / 1e9
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
        if args.remove_inputs:
            shutil.rmtree(paths["feature_table"].parent, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()
    row = {"inputs": inputs,
           "feature_table_layout": "samples x features parquet (float32), streamed",
           "memory_budget": args.memory_budget, "generate": generated,
           "cache_gb": cache_gb, "identical_tables": True, "runs": runs,
           "commit": commit, "cpu_count": os.cpu_count(),
           "host": "shared 2-core host, loaded by other work during the run"}
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    row["projection"] = _projection(row, args.project_features, _smaller(results, row))
    for name in RUNS:
        print(f"[scale] projected to {args.project_features} features: {name:9} "
              f"{row['projection'][name]['wall_s']:7.1f} s, "
              f"{row['projection'][name]['peak_anon_gib']:5.2f} GiB", flush=True)
    key = f"{n}x{f}x{k}"
    if key in results and results[key].get("commit") != commit:  # kept beside, by commit
        old = results.pop(key)
        results[f"{key}@{old.get('commit')}"] = old
    results[key] = row
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
