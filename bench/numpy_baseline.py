"""The strongest plain-CPU alternative to isograph-gpu a user could write today: the three core
``explain-module`` tables of isograph 0.1.5 in vectorised numpy + scipy.

Written from reference-semantics.md §3-7 only (it does not import isograph_gpu), so the benchmark
compares against an independent, correct implementation:

* eigengene (§3): sign bootstrap against the first channel row, <= 5 refinement rounds against
  the signed nan-mean, all rows of a module at once with masked sums;
* pairwise-complete Pearson (§4) with masked sums, p = I_{1-r^2}((n-2)/2, 1/2) (the exact null
  of r, identical to the two-sided Student t test), q = scipy.stats.false_discovery_control;
* gene_driver_table (§5): BH over all channel rows of the module, best |r| channel per gene;
* transcript_polarity_table (§6): module transcripts in feature_meta order, switch_strength;
* high_vs_low_table (§7): every annotated table feature against every module at once: group
  counts / sums / sums of squares as matrix products with one-hot group matrices, Welch t with
  Welch-Satterthwaite df, p from scipy.stats.t.

Usage (same inputs and outputs as ``isograph explain-module``)::

    python bench/numpy_baseline.py --artifact-dir A --feature-table T.parquet \
        --feature-meta M.parquet --output-dir OUT [--module-ids M000 M001]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import special, stats

SCORE_METADATA = ("feature_id", "gene_id", "feature_type", "n_transcripts")
TABLES = ("gene_driver_table.parquet", "transcript_polarity_table.parquet", "high_vs_low_table.parquet")
MIN_OVERLAP = 10


# ----------------------------------------------------------------------------- loading


def load_inputs(artifact_dir: Path, feature_table: Path, feature_meta: Path) -> dict:
    """Read and align the inputs; returns the arrays every table is computed from."""
    modules = pd.read_parquet(artifact_dir / "modules.parquet")
    scores = pd.read_parquet(artifact_dir / "feature_scores.parquet")
    meta = pd.read_parquet(feature_meta)
    table = pd.read_parquet(feature_table)
    missing = [c for c in ("feature_id", "gene_id", "feature_type") if c not in meta.columns]
    if missing:
        raise ValueError(f"feature_meta is missing required columns: {missing}")
    if meta["feature_id"].duplicated().any():
        raise ValueError("feature_meta has duplicate feature_id values")
    if "feature_id" not in scores.columns:
        scores.insert(0, "feature_id", scores["gene_id"].astype(str) + "::switch")
    if "feature_type" not in scores.columns:
        scores.insert(2 if "gene_id" in scores.columns else 1, "feature_type", "switch")
    if "sample_id" in table.columns:
        table = table.set_index("sample_id")
    table.index = table.index.astype(str)
    if table.index.duplicated().any():
        raise ValueError("feature_table has duplicate sample IDs")

    score_samples = [c for c in scores.columns if c not in SCORE_METADATA]
    samples = sorted(set(score_samples) & set(table.index))
    if len(samples) < MIN_OVERLAP:
        raise ValueError(f"Only {len(samples)} samples overlap between feature_scores and feature_table")

    meta_ids = set(meta["feature_id"].astype(str))
    annotated = [c for c in table.columns if c in meta_ids]  # feature_table column order
    values = table.loc[samples, annotated].to_numpy(dtype=np.float64)  # (S, F)
    annotated_index = {f: i for i, f in enumerate(annotated)}
    meta_ids = meta["feature_id"].astype(str).to_numpy()
    score_gene = scores["gene_id"].astype(str).to_numpy()
    meta_gene = meta["gene_id"].astype(str).to_numpy()
    # one integer code per gene id, shared by feature_scores rows and feature_meta rows
    gene_codes, uniques = pd.factorize(np.concatenate([score_gene, meta_gene]))
    return {
        "modules": modules,
        "samples": samples,
        "score_gene": score_gene,
        "score_code": gene_codes[: score_gene.size],
        "meta_code": gene_codes[score_gene.size :],
        "code_of": {g: i for i, g in enumerate(uniques)},
        "meta_column": np.array([annotated_index.get(f, -1) for f in meta_ids], dtype=np.int64),
        "meta_is_usage": (meta["feature_type"] == "transcript_usage").to_numpy(dtype=bool),
        "score_feature": scores["feature_id"].astype(str).to_numpy(),
        "score_type": scores["feature_type"].astype(str).to_numpy(),
        "score_values": scores[samples].to_numpy(dtype=np.float64),  # (R, S)
        "meta": meta,
        "annotated": annotated,
        "values": values,
    }


# ----------------------------------------------------------------------------- statistics


def masked_pearson(x: np.ndarray, y: np.ndarray, min_pairs: int) -> tuple[np.ndarray, ...]:
    """Pearson r of every row of x (R, S) with y (S,) on pairwise-finite samples.

    Returns r, p (two-sided, exact), n (int64), all (R,). Rows with n < min_pairs or a constant
    masked input get r = p = NaN.
    """
    mask = np.isfinite(x) & np.isfinite(y)[None, :]
    n = mask.sum(axis=1)
    w = mask.astype(np.float64)
    x0 = np.where(mask, x, 0.0)
    y0 = np.where(mask, y[None, :], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = x0.sum(axis=1) / n
        my = y0.sum(axis=1) / n
        dx = (x0 - mx[:, None]) * w
        dy = (y0 - my[:, None]) * w
        sxy = (dx * dy).sum(axis=1)
        sxx = (dx * dx).sum(axis=1)
        syy = (dy * dy).sum(axis=1)
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
        big = np.where(mask, x, -np.inf).max(axis=1)
        small = np.where(mask, x, np.inf).min(axis=1)
        ybig = np.where(mask, y[None, :], -np.inf).max(axis=1)
        ysmall = np.where(mask, y[None, :], np.inf).min(axis=1)
    constant = (big == small) | (ybig == ysmall)
    r[(n < min_pairs) | constant] = np.nan
    return r, pearson_pvalue(r, n), n.astype(np.int64)


def pearson_pvalue(r: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided p of Pearson r with n pairs: I_{1-r^2}((n-2)/2, 1/2); n = 2 -> 1."""
    df = n.astype(np.float64) - 2.0
    a = np.abs(r)
    with np.errstate(invalid="ignore"):
        p = special.betainc(df / 2.0, 0.5, (1.0 - a) * (1.0 + a))
    p = np.where(df == 0, 1.0, p)
    return np.where(np.isfinite(r), p, np.nan)


def fdr(p: np.ndarray, method: str) -> np.ndarray:
    """BH/BY over the finite p-values; NaN p -> NaN q."""
    q = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(p[finite], method=method)
    return q


def eigengene(rows: np.ndarray) -> np.ndarray:
    """Sign-aligned module eigengene of channel rows (R, S) (§3)."""
    if rows.shape[0] == 0:
        return np.full(rows.shape[1], np.nan)
    if rows.shape[0] == 1:
        return rows[0].copy()
    signs = np.ones(rows.shape[0])
    r0, _, n0 = masked_pearson(rows[1:], rows[0], min_pairs=3)
    signs[1:][(n0 >= 3) & (r0 < 0)] = -1.0
    for _ in range(5):
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            e = np.nanmean(rows * signs[:, None], axis=0)
        r, _, n = masked_pearson(rows, e, min_pairs=3)
        new = np.where(n >= 3, np.where(r >= 0, 1.0, -1.0), signs)
        if np.array_equal(new, signs):
            break
        signs = new
    with _quiet_nanmean():
        return np.nanmean(rows * signs[:, None], axis=0)


@contextmanager
def _quiet_nanmean() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' (an all-NaN sample gives NaN, as in the reference)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def welch_all(values: np.ndarray, eigengenes: np.ndarray, percentile: float) -> dict[str, np.ndarray]:
    """Welch high-vs-low statistics of every feature (S, F) for every eigengene (S, K) (§7).

    Group sums are matrix products with the one-hot group matrices; values are centred by
    their column mean first so the sums of squares do not cancel. Returns (F, K) arrays.
    """
    finite = np.isfinite(values)
    with _quiet_nanmean():
        centre = np.nanmean(values, axis=0)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    c = np.where(finite, values - centre, 0.0)
    w = finite.astype(np.float64)
    threshold = np.nanpercentile(eigengenes, percentile, axis=0)
    with np.errstate(invalid="ignore"):
        high = (eigengenes >= threshold).astype(np.float64)  # NaN eigengene -> low group
    n_fin = w.sum(axis=0)[:, None]
    n_high = w.T @ high
    n_low = n_fin - n_high
    s_all = c.sum(axis=0)[:, None]
    q_all = (c * c).sum(axis=0)[:, None]
    s_high = c.T @ high
    q_high = (c * c).T @ high
    s_low = s_all - s_high
    q_low = q_all - q_high
    with np.errstate(invalid="ignore", divide="ignore"):
        m_high = s_high / n_high
        m_low = s_low / n_low
        v_high = np.maximum(q_high - s_high * m_high, 0.0) / (n_high - 1.0)
        v_low = np.maximum(q_low - s_low * m_low, 0.0) / (n_low - 1.0)
        a_high = v_high / n_high
        a_low = v_low / n_low
        se = np.sqrt(a_high + a_low)
        delta = m_high - m_low
        t = delta / se
        df = (a_high + a_low) ** 2 / (a_high**2 / (n_high - 1.0) + a_low**2 / (n_low - 1.0))
        p = 2.0 * stats.t.sf(np.abs(t), df)
    p = np.where(np.isinf(t), 0.0, p)
    ok = (n_high >= 2) & (n_low >= 2)
    out = {
        "mean_high": m_high + centre[:, None],
        "mean_low": m_low + centre[:, None],
        "delta": delta,
        "se": se,
        "tstat": t,
        "pvalue": p,
    }
    for key in out:
        out[key] = np.where(ok, out[key], np.nan)
    out["n_high"] = n_high.round().astype(np.int64)
    out["n_low"] = n_low.round().astype(np.int64)
    out["n_finite"] = n_fin[:, 0].round().astype(np.int64)
    return out


# ----------------------------------------------------------------------------- tables


def _member(inputs: dict, genes: set[str]) -> np.ndarray:
    """Boolean lookup over gene codes: True for the module's genes."""
    lookup = np.zeros(len(inputs["code_of"]), dtype=bool)
    lookup[[inputs["code_of"][g] for g in genes if g in inputs["code_of"]]] = True
    return lookup


def driver_table(inputs: dict, genes: set[str], e: np.ndarray, min_pairs: int, fdr_method: str) -> pd.DataFrame:
    """gene_driver_table (§5)."""
    rows = np.flatnonzero(_member(inputs, genes)[inputs["score_code"]])
    n_total = len(inputs["samples"])
    r, p, n = masked_pearson(inputs["score_values"][rows], e, min_pairs)
    q = fdr(p, fdr_method)
    key = np.where(np.isfinite(r), np.abs(r), 0.0)
    gene = inputs["score_gene"][rows]
    # best channel per gene: sort by gene, then |r| descending, then file order; keep first
    order = np.lexsort((np.arange(rows.size), -key, gene))
    first = np.ones(order.size, dtype=bool)
    first[1:] = gene[order][1:] != gene[order][:-1]
    best = order[first]
    best = best[np.lexsort((gene[best], -key[best]))]  # |r| descending, ties by gene_id
    return pd.DataFrame(
        {
            "gene_id": gene[best],
            "feature_id": inputs["score_feature"][rows][best],
            "feature_type": inputs["score_type"][rows][best],
            "r": r[best],
            "pvalue": p[best],
            "qvalue": q[best],
            "n_samples": n[best],
            "missing_fraction": 1.0 - n[best] / n_total,
        }
    )


def polarity_table(inputs: dict, genes: set[str], e: np.ndarray, min_pairs: int, fdr_method: str) -> pd.DataFrame:
    """transcript_polarity_table (§6)."""
    meta = inputs["meta"]
    keep = _member(inputs, genes)[inputs["meta_code"]] & inputs["meta_is_usage"] & (inputs["meta_column"] >= 0)
    rel = meta.loc[keep]
    base = ["feature_id", "gene_id"] + (["transcript_id"] if "transcript_id" in meta.columns else [])
    cols = inputs["meta_column"][keep]
    x = inputs["values"][:, cols].T
    r, p, n = masked_pearson(x, e, min_pairs)
    q = fdr(p, fdr_method)
    gene_codes, gene_index = np.unique(rel["gene_id"].astype(str).to_numpy(), return_inverse=True)
    finite = np.isfinite(r)
    hi = np.full(gene_codes.size, -np.inf)
    lo = np.full(gene_codes.size, np.inf)
    np.maximum.at(hi, gene_index[finite], r[finite])
    np.minimum.at(lo, gene_index[finite], r[finite])
    count = np.bincount(gene_index[finite], minlength=gene_codes.size)
    strength = np.where(count >= 2, hi - lo, 0.0)[gene_index]
    out = rel[base].reset_index(drop=True)
    out["r"] = r
    out["pvalue"] = p
    out["qvalue"] = q
    out["n_samples"] = n
    out["missing_fraction"] = 1.0 - n / len(inputs["samples"])
    out["switch_strength"] = strength
    return out


def explain(
    artifact_dir: str | Path,
    feature_table: str | Path,
    feature_meta: str | Path,
    module_ids: list[str] | None = None,
    split_percentile: float = 50.0,
    min_complete_pairs: int = 3,
    fdr_method: str = "bh",
    timings: dict[str, float] | None = None,
) -> dict[str, dict[str, pd.DataFrame]]:
    """All three tables for every requested module: {module_id: {table_name: frame}}."""
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    inputs = load_inputs(Path(artifact_dir), Path(feature_table), Path(feature_meta))
    timings["load"] = time.perf_counter() - t0

    modules = inputs["modules"]
    available = sorted(modules["module_id"].astype(str).unique())
    if not module_ids:
        module_ids = available
    unknown = [m for m in module_ids if m not in available]
    if unknown:
        raise ValueError(f"Unknown module ID(s): {unknown}. Available modules: {available}")
    genes_of = {
        m: set(modules.loc[modules["module_id"].astype(str) == m, "gene_id"].astype(str)) for m in module_ids
    }

    t0 = time.perf_counter()
    eigengenes = np.column_stack(
        [eigengene(inputs["score_values"][_member(inputs, genes_of[m])[inputs["score_code"]]]) for m in module_ids]
    )
    timings["eigengene"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results: dict[str, dict[str, pd.DataFrame]] = {}
    for k, m in enumerate(module_ids):
        results[m] = {
            "gene_driver_table": driver_table(inputs, genes_of[m], eigengenes[:, k], min_complete_pairs, fdr_method),
            "transcript_polarity_table": polarity_table(
                inputs, genes_of[m], eigengenes[:, k], min_complete_pairs, fdr_method
            ),
        }
    timings["driver_and_polarity"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    welch = welch_all(inputs["values"], eigengenes, split_percentile)
    meta_gene = dict(zip(inputs["meta"]["feature_id"].astype(str), inputs["meta"]["gene_id"], strict=True))
    feature_ids = pd.array(inputs["annotated"], dtype="str")  # converted once, shared by modules
    gene_ids = pd.array([meta_gene[f] for f in inputs["annotated"]], dtype="str")
    missing = 1.0 - welch["n_finite"] / len(inputs["samples"])
    for k, m in enumerate(module_ids):
        frame = {"feature_id": feature_ids, "gene_id": gene_ids}
        for key in ("mean_high", "mean_low", "delta", "se", "tstat", "pvalue", "n_high", "n_low"):
            frame[key] = welch[key][:, k]
        frame["missing_fraction"] = missing
        results[m]["high_vs_low_table"] = pd.DataFrame(frame)
    timings["high_vs_low"] = time.perf_counter() - t0
    results["__eigengenes__"] = {"eigengenes": pd.DataFrame(eigengenes, index=inputs["samples"], columns=module_ids)}
    return results


def write_outputs(results: dict[str, dict[str, pd.DataFrame]], output_dir: Path) -> None:
    """Parquet tables per module plus a reference-style manifest."""
    module_ids = [m for m in results if m != "__eigengenes__"]
    for m in module_ids:
        (output_dir / m).mkdir(parents=True, exist_ok=True)
        for name, frame in results[m].items():
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), output_dir / m / f"{name}.parquet")
    manifest = {
        "annotation_columns": [],
        "annotation_provided": False,
        "ig_attribution_available": False,
        "isograph_version": "numpy-baseline",
        "module_ids": module_ids,
        "n_modules": len(module_ids),
        "plot_files": [],
        "tables_per_module": list(TABLES),
        "vae_attribution_available": False,
    }
    (output_dir / "module_explanation_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", type=Path, required=True)
    parser.add_argument("--feature-table", type=Path, required=True)
    parser.add_argument("--feature-meta", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, default=Path("artifacts/explain"))
    parser.add_argument("--module-ids", nargs="*", default=None)
    parser.add_argument("--split-percentile", type=float, default=50.0)
    parser.add_argument("--min-complete-pairs", type=int, default=3)
    parser.add_argument("--fdr-method", default="bh")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    results = explain(
        args.artifact_dir, args.feature_table, args.feature_meta, args.module_ids,
        args.split_percentile, args.min_complete_pairs, args.fdr_method, timings,
    )
    t0 = time.perf_counter()
    write_outputs(results, args.output_dir)
    timings["write"] = time.perf_counter() - t0
    print(json.dumps({"timings": timings}), file=sys.stderr)
    print(args.output_dir / "module_explanation_manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
