"""GTF parse benchmark at GENCODE scale: isograph-gpu parse, cached load, reference-style parse.

Generates (once) a synthetic GTF with the line count (~3.4 million) and attribute layout of
GENCODE v47 under bench/.work/ (git-ignored), then times, on that same file:

* ``read_gtf``: the polars parser (isograph_gpu.structure.gtf);
* ``load_transcript_models`` with a fresh parquet cache (fingerprint check + load);
* the reference's method (isograph 0.1.5 ``parse_gtf``, re-implemented here as it is
  written there: pandas ``read_csv(comment="#")``, per-row regex ``str.extract`` for
  transcript_id / gene_id / biotype, then a per-row Python loop building transcript records).

Medians of the repeats go to bench/results/gtf_parse.json.

    python bench/bench_gtf.py [--repeats 3] [--reference-repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
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


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        print(f"  {times[-1]:.2f} s", file=sys.stderr, flush=True)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-repeats", type=int, default=2)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    from isograph_gpu.structure.cache import load_transcript_models
    from isograph_gpu.structure.gtf import read_gtf

    gtf = WORK / "gencode_v47_scale.gtf"
    if not gtf.exists():
        print(f"generating {gtf} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        generate_gtf(gtf)
        print(f"  generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    with open(gtf, "rb") as fh:
        n_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))

    print("isograph-gpu read_gtf:", file=sys.stderr)
    parse_times, models = timed(lambda: read_gtf(gtf), args.repeats)
    cache = WORK / "gencode_v47_scale.cache.parquet"
    cache.unlink(missing_ok=True)
    load_transcript_models(gtf, cache)  # builds the cache
    print("cached load:", file=sys.stderr)
    cached_times, cached = timed(lambda: load_transcript_models(gtf, cache), args.repeats + 2)
    assert len(cached) == len(models)

    result = {
        "gtf_lines": n_lines,
        "gtf_bytes": gtf.stat().st_size,
        "n_transcripts": len(models),
        "n_exons": int(models.exon_offsets[-1]),
        "n_cds": int(models.cds_offsets[-1]),
        "isograph_gpu_parse_s": statistics.median(parse_times),
        "isograph_gpu_parse_runs_s": parse_times,
        "cached_load_s": statistics.median(cached_times),
        "cached_load_runs_s": cached_times,
        "cache_bytes": cache.stat().st_size,
        "load_average_1min_at_end": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other "
                   "jobs while measuring), Python " + platform.python_version(),
    }
    if not args.skip_reference:
        print("reference-style parse (isograph 0.1.5 method):", file=sys.stderr)
        ref_times, records = timed(lambda: reference_style_parse(gtf), args.reference_repeats)
        assert len(records) == len(models)
        result["reference_style_parse_s"] = statistics.median(ref_times)
        result["reference_style_parse_runs_s"] = ref_times
        result["speedup_parse"] = result["reference_style_parse_s"] / result[
            "isograph_gpu_parse_s"]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
