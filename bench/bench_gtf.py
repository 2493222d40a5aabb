"""GTF parse benchmark at GENCODE scale: isograph-gpu parse, cached load, reference parse.

Generates (once) a synthetic GTF with the line count (~3.4 million) and attribute layout of
GENCODE v47 under bench/.work/ (git-ignored), then times, on that same file:

* ``read_gtf``: the polars parser (isograph_gpu.structure.gtf), ``--repeats`` runs;
* ``load_transcript_models`` with a fresh parquet cache (fingerprint check + load);
* the reference's parse: isograph 0.1.5's own ``isograph.explain.structure.parse_gtf``,
  run in bench/.venv-reference (bench/reference_env.py builds it) and timed inside that
  process (the call only, not interpreter start-up or imports). Without that venv (or with
  ``--reference-reimplementation``) the same method re-implemented here (pandas
  ``read_csv(comment="#")``, per-row regex ``str.extract``, a per-row Python loop building
  transcript records) runs instead; ``reference_source`` says which one ran.

Every run records wall and process CPU seconds, and the 1-minute load average is recorded
before and after each part: the figures are only comparable on a quiet host (load average
well below the core count). Medians go to bench/results/gtf_parse.json.

    python bench/bench_gtf.py [--repeats 5] [--reference-repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reference_env import reference_python  # noqa: E402

WORK = HERE / ".work"
RESULTS = HERE / "results" / "gtf_parse.json"

# GENCODE v47 (comprehensive): ~254k transcripts, ~1.65M exons, ~3.4M lines
N_GENES = 65_000
TRANSCRIPT_TYPES = ("protein_coding", "nonsense_mediated_decay", "retained_intron",
                    "processed_transcript", "protein_coding_CDS_not_defined")
CODING_MIX = (0.65, 0.1, 0.1, 0.1, 0.05)


def generate_gtf(path: Path, seed: int = 47) -> int:
    """Write a GENCODE-v47-like GTF; returns its line count."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n_lines = 0
    chroms = [f"chr{c}" for c in [*range(1, 23), "X", "Y"]]
    with open(tmp, "w", buffering=1 << 22) as fh:
        fh.write("##description: synthetic GENCODE-v47-scale annotation for benchmarks\n"
                 "##provider: GENCODE\n##format: gtf\n##date: 2024-08-27\n")
        n_lines += 4
        position = 10_000
        for g in range(N_GENES):
            chrom = chroms[g * len(chroms) // N_GENES]
            strand = "+" if rng.random() < 0.5 else "-"
            gene_id = f"ENSG{g:011d}.{1 + g % 7}"
            gene_type = "protein_coding" if rng.random() < 0.6 else "lncRNA"
            gene_name = f"GENE{g}"
            n_tx = int(rng.integers(1, 8))  # ~4 per gene, as GENCODE
            n_exon_max = int(rng.integers(2, 18))
            exon_starts = np.sort(rng.choice(np.arange(0, 200_000, 500), n_exon_max,
                                             replace=False)) + position
            exon_lengths = rng.integers(60, 400, n_exon_max)
            gene_end = int(exon_starts[-1] + exon_lengths[-1])
            common = (f'gene_id "{gene_id}"; ')
            gene_attrs = (f'gene_type "{gene_type}"; gene_name "{gene_name}"; level 2; '
                          f'hgnc_id "HGNC:{g}"; havana_gene "OTTHUMG{g:011d}.1";')
            fh.write(f"{chrom}\tHAVANA\tgene\t{position}\t{gene_end}\t.\t{strand}\t.\t"
                     f"{common}{gene_attrs}\n")
            n_lines += 1
            for t in range(n_tx):
                tid = f"ENST{g * 8 + t:011d}.{1 + t % 3}"
                ttype = gene_type if gene_type == "lncRNA" else str(rng.choice(
                    TRANSCRIPT_TYPES, p=CODING_MIX))
                keep = np.sort(rng.choice(n_exon_max, int(rng.integers(n_exon_max // 2, n_exon_max + 1)),
                                          replace=False))
                starts = exon_starts[keep]
                ends = starts + exon_lengths[keep] - 1
                tx_attrs = (f'{common}transcript_id "{tid}"; gene_type "{gene_type}"; '
                            f'gene_name "{gene_name}"; transcript_type "{ttype}"; '
                            f'transcript_name "{gene_name}-{201 + t}"; level 2; '
                            f'transcript_support_level "1"; hgnc_id "HGNC:{g}"; '
                            f'tag "basic"; tag "Ensembl_canonical"; '
                            f'havana_gene "OTTHUMG{g:011d}.1"; '
                            f'havana_transcript "OTTHUMT{g * 8 + t:011d}.1";')
                fh.write(f"{chrom}\tHAVANA\ttranscript\t{starts[0]}\t{ends[-1]}\t.\t{strand}"
                         f"\t.\t{tx_attrs}\n")
                n_lines += 1
                order = range(len(starts)) if strand == "+" else range(len(starts) - 1, -1, -1)
                coding = ttype in ("protein_coding", "nonsense_mediated_decay") and len(
                    starts) >= 2
                for number, k in enumerate(order, start=1):
                    exon_attrs = tx_attrs.replace(
                        "level 2;", f'exon_number {number}; exon_id '
                        f'"ENSE{g * 128 + t * 16 + k:011d}.1"; level 2;', 1)
                    fh.write(f"{chrom}\tHAVANA\texon\t{starts[k]}\t{ends[k]}\t.\t{strand}\t.\t"
                             f"{exon_attrs}\n")
                    n_lines += 1
                    if coding:
                        cds_start = starts[k] + (30 if k == 0 else 0)
                        cds_end = ends[k] - (40 if k == len(starts) - 1 else 0)
                        cds_attrs = exon_attrs.replace(
                            "level 2;", f'level 2; protein_id "ENSP{g * 8 + t:011d}.1";', 1)
                        fh.write(f"{chrom}\tHAVANA\tCDS\t{cds_start}\t{cds_end}\t.\t{strand}\t0"
                                 f"\t{cds_attrs}\n")
                        n_lines += 1
                        if k in (0, len(starts) - 1):
                            fh.write(f"{chrom}\tHAVANA\tUTR\t{starts[k]}\t{starts[k] + 29}\t.\t"
                                     f"{strand}\t.\t{cds_attrs}\n")
                            n_lines += 1
                if coding:
                    for feature, at in (("start_codon", starts[0] + 30),
                                        ("stop_codon", ends[-1] - 42)):
                        fh.write(f"{chrom}\tHAVANA\t{feature}\t{at}\t{at + 2}\t.\t{strand}\t0\t"
                                 f"{tx_attrs}\n")
                        n_lines += 1
            position = gene_end + 5_000
    os.replace(tmp, path)
    return n_lines


def reference_style_parse(path: Path) -> dict:
    """isograph 0.1.5's parse_gtf method, as written there (pandas + regex + per-row loop)."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", comment="#", header=None, usecols=[0, 2, 3, 4, 6, 8],
                     names=["chrom", "feature", "start", "end", "strand", "attrs"],
                     dtype={"chrom": "category", "feature": "category",
                            "strand": "category", "attrs": str},
                     compression="gzip" if path.suffix == ".gz" else "infer",
                     low_memory=False)
    df = df[df["feature"].isin({"transcript", "exon", "CDS"})].copy()
    df["feature"] = df["feature"].astype(str)
    attrs = df["attrs"]
    df["transcript_id"] = attrs.str.extract(r'transcript_id "([^"]+)"', expand=False)
    df["gene_id"] = attrs.str.extract(r'gene_id "([^"]+)"', expand=False)
    df["biotype"] = attrs.str.extract(r'transcript_type "([^"]+)"', expand=False)
    missing = df["biotype"].isna()
    if missing.any():
        df.loc[missing, "biotype"] = attrs[missing].str.extract(
            r'transcript_biotype "([^"]+)"', expand=False)
    df["biotype"] = df["biotype"].fillna("")
    df = df.dropna(subset=["transcript_id"])
    records: dict[str, dict] = {}
    for feature, key in (("transcript", None), ("exon", "exons"), ("CDS", "cds")):
        for row in df[df["feature"] == feature].itertuples(index=False):
            if key is None:
                records[row.transcript_id] = {"gene": row.gene_id, "chrom": str(row.chrom),
                                              "strand": str(row.strand),
                                              "biotype": str(row.biotype),
                                              "exons": [], "cds": []}
                continue
            rec = records.get(row.transcript_id)
            if rec is None:
                rec = records[row.transcript_id] = {
                    "gene": row.gene_id, "chrom": str(row.chrom), "strand": str(row.strand),
                    "biotype": str(row.biotype), "exons": [], "cds": []}
            rec[key].append((row.start, row.end))
    for rec in records.values():
        rec["exons"].sort()
        rec["cds"].sort()
    return records


REFERENCE_SNIPPET = """
import json, sys, time
from isograph.explain.structure import parse_gtf
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    records = parse_gtf(sys.argv[1])
    times.append(time.perf_counter() - start)
    print(f"  {times[-1]:.2f} s", file=sys.stderr, flush=True)
print(json.dumps({"times": times, "n_transcripts": len(records),
                  "n_exons": sum(len(r.exons) for r in records.values()),
                  "n_cds": sum(len(r.cds) for r in records.values())}))
"""


def reference_parse(gtf: Path, repeats: int) -> dict:
    """isograph 0.1.5's parse_gtf in the reference venv: per-run seconds and counts."""
    proc = subprocess.run([str(reference_python()), "-c", REFERENCE_SNIPPET, str(gtf),
                           str(repeats)], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and process-CPU seconds of ``repeats`` calls, and the last result."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), _cpu_seconds()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds() - start_cpu)
        print(f"  {times[-1]:.2f} s (cpu {cpu[-1]:.2f} s)", file=sys.stderr, flush=True)
    return times, cpu, result


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=2)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--reference-reimplementation", action="store_true",
                        help="time the re-implemented reference method even when "
                             "bench/.venv-reference exists")
    parser.add_argument("--gtf", type=Path, default=WORK / "gencode_v47_scale.gtf",
                        help="GTF to time (generated at GENCODE v47 scale if it is the "
                             "default and missing)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    import polars as pl

    from isograph_gpu.structure.cache import gtf_fingerprint, load_transcript_models
    from isograph_gpu.structure.gtf import read_gtf

    gtf = args.gtf
    if not gtf.exists() and gtf == WORK / "gencode_v47_scale.gtf":
        print(f"generating {gtf} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        generate_gtf(gtf)
        print(f"  generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    with open(gtf, "rb") as fh:  # also brings the file into the page cache for every tool
        n_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))

    load = {"start": load_average()}
    print("isograph-gpu read_gtf:", file=sys.stderr)
    parse_times, parse_cpu, models = timed(lambda: read_gtf(gtf), args.repeats)
    load["after_parse"] = load_average()
    cache = WORK / f"{gtf.stem}.cache.parquet"
    cache.unlink(missing_ok=True)
    load_transcript_models(gtf, cache)  # builds the cache
    print("cached load:", file=sys.stderr)
    cached_times, cached_cpu, cached = timed(lambda: load_transcript_models(gtf, cache),
                                             args.repeats)
    assert len(cached) == len(models)
    print("cache fingerprint (part of every cached load):", file=sys.stderr)
    fingerprint_times, _, _ = timed(lambda: gtf_fingerprint(gtf), 3)
    load["after_cached_load"] = load_average()

    result = {
        "gtf_lines": n_lines,
        "gtf_bytes": gtf.stat().st_size,
        "n_transcripts": len(models),
        "n_exons": int(models.exon_offsets[-1]),
        "n_cds": int(models.cds_offsets[-1]),
        "isograph_gpu_parse_s": statistics.median(parse_times),
        "isograph_gpu_parse_runs_s": parse_times,
        "isograph_gpu_parse_cpu_runs_s": parse_cpu,
        "cached_load_s": statistics.median(cached_times),
        "cached_load_runs_s": cached_times,
        "cached_load_cpu_runs_s": cached_cpu,
        "cache_fingerprint_s": statistics.median(fingerprint_times),
        "cache_bytes": cache.stat().st_size,
        "load_average_1min": load,
        "polars": f"{pl.__version__}, {pl.thread_pool_size()} threads",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python "
                   + platform.python_version(),
    }
    if not args.skip_reference:
        if reference_python().exists() and not args.reference_reimplementation:
            print("reference parse (isograph 0.1.5 parse_gtf):", file=sys.stderr)
            ref = reference_parse(gtf, args.reference_repeats)
            ref_times = ref["times"]
            assert (ref["n_transcripts"], ref["n_exons"], ref["n_cds"]) == (
                result["n_transcripts"], result["n_exons"], result["n_cds"]), ref
            result["reference_source"] = ("isograph 0.1.5 isograph.explain.structure."
                                          "parse_gtf (bench/.venv-reference), call only")
        else:
            print("reference-style parse (re-implemented isograph 0.1.5 method):",
                  file=sys.stderr)
            ref_times, _, records = timed(lambda: reference_style_parse(gtf),
                                          args.reference_repeats)
            assert len(records) == len(models)
            result["reference_source"] = "re-implementation in bench/bench_gtf.py"
        load["after_reference"] = load_average()
        result["reference_parse_s"] = statistics.median(ref_times)
        result["reference_parse_runs_s"] = ref_times
        result["speedup_parse"] = result["reference_parse_s"] / result["isograph_gpu_parse_s"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
