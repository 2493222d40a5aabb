"""Figures: what each plot draws, checked against the fixture tables with independent
numpy/pandas oracles, plus edge cases (one gene, no transcripts, all-NaN features)."""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _helpers.reference_run import API_RUN, FIXTURE, TABLES, load_fixture_results
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from isograph_gpu.errors import InputError
from isograph_gpu.plots import (
    default_jobs,
    plot_driver_bar,
    plot_driver_heatmap,
    plot_eigengene_heatmap,
    plot_high_vs_low,
    plot_isoform_gradient,
    plot_summary_panel,
    plot_switch_pair,
    plot_transcript_polarity,
    render_explain_figures,
    summarize_module,
)
from isograph_gpu.plots._data import moving_average_trend, top_drivers, transcript_ranks
from isograph_gpu.plots.style import NEGATIVE_COLOR, NEUTRAL_COLOR, POSITIVE_COLOR
from isograph_gpu.plots.transcripts import trend_lines
from isograph_gpu.result import ExplainResult


@pytest.fixture(scope="module")
def results() -> dict[str, ExplainResult]:
    return load_fixture_results()


@pytest.fixture(scope="module")
def usage() -> pd.DataFrame:
    return pd.read_parquet(FIXTURE / "inputs" / "feature_table.parquet").set_index("sample_id")


@pytest.fixture(scope="module")
def meta() -> pd.DataFrame:
    return pd.read_parquet(FIXTURE / "inputs" / "feature_meta.parquet")


@pytest.fixture(scope="module")
def names(meta: pd.DataFrame) -> dict[str, str]:
    return dict(zip(meta["gene_id"], meta["gene_name"], strict=True))


def bar_patches(ax) -> list:
    from matplotlib.container import BarContainer

    return [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]


def test_top_drivers_and_transcript_ranks_break_ties_by_id():
    drivers = pd.DataFrame({"gene_id": ["C", "B", "A", "D", "E"],
                            "r": [0.5, -0.5, np.nan, 0.9, 0.5], "n_samples": [9] * 5})
    assert top_drivers(drivers, 10)["gene_id"].tolist() == ["D", "B", "C", "E"]
    assert top_drivers(drivers, 2)["gene_id"].tolist() == ["D", "B"]
    assert list(top_drivers(drivers, 2).columns) == list(drivers.columns)
    genes = np.array(["G", "G", "H", "G", "G"], dtype=object)
    features = np.array(["t4", "t2", "h1", "t1", "t3"], dtype=object)
    ranks = transcript_ranks(genes, features, np.array([0.1, 0.3, 0.0, np.nan, 0.3]))
    assert list(ranks) == ["G", "H"]
    assert [features[i] for i in ranks["G"]] == ["t2", "t3", "t4", "t1"]  # NaN last


# --------------------------------------------------------------------------- driver bar


@pytest.mark.parametrize("top_n", [1, 3, 10])
def test_driver_bar_draws_top_genes_by_abs_r_with_fisher_ci(results, names, top_n):
    drivers = results["M000"].gene_driver_table
    ax = plot_driver_bar(drivers, top_n=top_n, gene_names=names)
    bars = bar_patches(ax)
    oracle = drivers.assign(a=drivers["r"].abs()).sort_values("a", ascending=False).head(top_n)
    assert len(bars) == top_n
    np.testing.assert_allclose([b.get_width() for b in bars], oracle["a"], atol=1e-12)
    for bar, r in zip(bars, oracle["r"], strict=True):
        expected = POSITIVE_COLOR if r > 0 else NEGATIVE_COLOR
        assert bar.get_facecolor() == pytest.approx(to_rgba(expected))
    assert [t.get_text() for t in ax.get_yticklabels()] == [names[g] for g in oracle["gene_id"]]
    lo, hi = ax.get_xlim()
    assert 0.0 <= lo and hi <= 1.0
    # whiskers: the Fisher-z 95 % interval of r mapped to |r|
    r = np.clip(oracle["r"].to_numpy(), -0.9999, 0.9999)
    se = 1.0 / np.sqrt(np.maximum(oracle["n_samples"].to_numpy() - 3, 1))
    z = np.arctanh(r)
    ci = np.sort(np.abs(np.vstack([np.tanh(z - 1.959963984540054 * se),
                                   np.tanh(z + 1.959963984540054 * se)])), axis=0)
    from matplotlib.container import ErrorbarContainer

    errorbar = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    segments = errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose([s[0][0] for s in segments], ci[0], atol=1e-12)
    np.testing.assert_allclose([s[1][0] for s in segments], ci[1], atol=1e-12)


@pytest.mark.parametrize("r", [1 - 1e-16, -(1 - 1e-16), 1.0, -1.0, 0.99995, np.nan])
@pytest.mark.parametrize("n", [3, 4, np.nan])
def test_fisher_ci_contains_r_beyond_the_clip(r, n):
    """Issue 12.13: |r| > 0.9999 (a single-gene module) drew the bar outside its CI and
    matplotlib refused the negative xerr."""
    from isograph_gpu.plots._data import abs_r_interval, fisher_z_ci

    lo, hi = fisher_z_ci(np.array([r]), np.array([n], dtype=float))
    if np.isnan(r) or np.isnan(n):
        assert np.isnan(lo[0]) and np.isnan(hi[0])
        return
    assert lo[0] <= r <= hi[0]
    # far end: the reference's clipped Fisher interval, written plainly
    se = 1.0 / np.sqrt(max(n - 3.0, 1.0))
    far = np.tanh(np.arctanh(np.sign(r) * 0.9999) - np.sign(r) * 1.959963984540054 * se)
    assert (lo[0] if r > 0 else hi[0]) == pytest.approx(far, abs=1e-12)
    abs_lo, abs_hi = abs_r_interval(np.array([r]), lo, hi)
    assert abs_lo[0] <= abs(r) <= abs_hi[0]
    drivers = pd.DataFrame({"gene_id": ["G1", "G2"], "r": [r, 0.5], "n_samples": [n, 10]})
    ax = plot_driver_bar(drivers)  # raised "'xerr' must not contain negative values"
    assert len(bar_patches(ax)) == 1 + (not np.isnan(r))


def test_driver_bar_uses_given_axes_and_rejects_empty(results):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_driver_bar(results["M001"].gene_driver_table, ax=ax) is ax
    empty = results["M001"].gene_driver_table.iloc[:0]
    with pytest.raises(InputError, match="empty"):
        plot_driver_bar(empty)
    all_nan = results["M001"].gene_driver_table.assign(r=np.nan)
    with pytest.raises(InputError, match="empty"):
        plot_driver_bar(all_nan)


# ------------------------------------------------------------------ eigengene heatmap


def test_eigengene_heatmap_groups_samples_by_their_highest_module():
    """Issue 13.4: ordering by the mean over independent modules looked like noise."""
    eig = pd.read_parquet(API_RUN / "eigengenes.parquet").set_index("sample_id")
    ax = plot_eigengene_heatmap(eig)
    image = np.asarray(ax.get_images()[0].get_array())
    assert image.shape == (5, 198)
    # oracle, written plainly: z-score each module (population SD), take each sample's
    # highest module, group by it in column order, within a group by that z descending
    values = eig.to_numpy()
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    top = z.argmax(axis=1)
    keys = sorted(range(len(z)), key=lambda i: (top[i], -z[i, top[i]], i))
    np.testing.assert_array_equal(image, values[keys].T)
    # so each module's block sits on the diagonal: its own row is highest in its block
    blocks = top[keys]
    for k in range(5):
        block = image[:, blocks == k]
        if block.size:
            assert (block[k] >= block.mean(axis=0) - 1e-12).all()
    assert "grouped by the module" in ax.get_xlabel()
    limit = np.abs(values).max()
    norm = ax.get_images()[0].norm
    assert (norm.vmin, norm.vmax) == pytest.approx((-limit, limit))
    assert [t.get_text() for t in ax.get_yticklabels()] == list(eig.columns)


def test_eigengene_heatmap_order_with_nan_and_constant_modules():
    eig = pd.DataFrame({"A": [-1.0, np.nan, 3.0, 0.0, np.nan],
                        "B": [1.0, 1.0, 1.0, 1.0, np.nan]}, index=list("abcde"))
    image = np.asarray(plot_eigengene_heatmap(eig).get_images()[0].get_array())
    # by hand: z of A over a, c, d = -0.98, 1.37, -0.39 and b (NaN) counts as 0; B is
    # constant, z 0. Highest module (first on ties): a -> B, b -> A, c -> A, d -> B.
    # Group A by z descending: c, b; group B (ties in table order): a, d; e (all NaN) last.
    np.testing.assert_array_equal(image[0], [3.0, np.nan, -1.0, 0.0, np.nan])
    np.testing.assert_array_equal(image[1], [1.0, 1.0, 1.0, 1.0, np.nan])


def test_eigengene_heatmap_single_module_keeps_its_order():
    eig = pd.DataFrame({"M9": [0.3, -1.0, np.nan, 2.0]}, index=list("abcd"))
    image = np.asarray(plot_eigengene_heatmap(eig).get_images()[0].get_array())
    np.testing.assert_array_equal(image[0, :3], [-1.0, 0.3, 2.0])
    assert np.isnan(image[0, 3])  # all-NaN samples go last


# ------------------------------------------------------------------ high vs low dumbbell


def test_high_vs_low_default_top_ten_by_abs_t(results, names):
    table = results["M002"].high_vs_low_table
    ax = plot_high_vs_low(table, gene_names=names)
    oracle = table.assign(a=table["tstat"].abs()).dropna(subset=["a"])
    oracle = oracle.sort_values("a", ascending=False).head(10)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{names[g]} · {f}" for f, g in zip(oracle["feature_id"],
                                                            oracle["gene_id"], strict=True)]
    lines = ax.get_lines()
    assert len(lines) == 10
    np.testing.assert_allclose([ln.get_xdata() for ln in lines],
                               oracle[["mean_low", "mean_high"]].to_numpy(), atol=1e-12)


def test_high_vs_low_feature_ids_and_gray_when_not_separated():
    table = pd.DataFrame({
        "feature_id": ["a", "b", "c"], "gene_id": ["g", "g", "h"],
        "mean_high": [0.9, 0.5, 0.1], "mean_low": [0.1, 0.45, 0.6],
        "delta": [0.8, 0.05, -0.5], "se": [0.1, 0.1, 0.1], "tstat": [8.0, 0.5, -5.0],
    })
    ax = plot_high_vs_low(table, feature_ids=["c", "b", "zz"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b"]
    colors = [ln.get_color() for ln in ax.get_lines()]
    assert colors == [NEGATIVE_COLOR, NEUTRAL_COLOR]  # |0.05| <= se -> gray
    assert [t.get_text() for t in plot_high_vs_low(table, top_n=1).get_yticklabels()] == ["a"]


# ------------------------------------------------------------------ transcript polarity


def test_polarity_heatmap_rows_are_top_drivers_with_ranked_r(results, names):
    res = results["M000"]
    ax = plot_transcript_polarity(res.transcript_polarity_table, res.gene_driver_table,
                                  top_n=4, gene_names=names)
    image = np.asarray(ax.get_images()[0].get_array())
    pol = res.transcript_polarity_table
    genes = [g for g in res.gene_driver_table["gene_id"] if g in set(pol["gene_id"])][:4]
    width = pol[pol["gene_id"].isin(genes)].groupby("gene_id").size().max()
    assert image.shape == (4, width)
    for i, g in enumerate(genes):
        r = np.sort(pol.loc[pol["gene_id"] == g, "r"].to_numpy())[::-1]
        np.testing.assert_allclose(image[i, : len(r)], r, atol=1e-12)
        assert np.isnan(image[i, len(r):]).all()
    assert [t.get_text() for t in ax.get_yticklabels()] == [names[g] for g in genes]


def test_polarity_heatmap_rows_at_most_top_n_and_empty_raises(results):
    res = results["M003"]
    ax = plot_transcript_polarity(res.transcript_polarity_table, res.gene_driver_table)
    assert np.asarray(ax.get_images()[0].get_array()).shape[0] <= 15
    with pytest.raises(InputError, match="empty"):
        plot_transcript_polarity(res.transcript_polarity_table.iloc[:0])


# ------------------------------------------------------------------ switch pairs


@pytest.mark.parametrize("top_n", [1, 5])
def test_switch_pair_bars_are_min_and_max_r_of_strongest_genes(results, top_n):
    pol = results["M004"].transcript_polarity_table
    ax = plot_switch_pair(pol, top_n=top_n)
    per_gene = pol.groupby("gene_id").agg(s=("switch_strength", "first"), lo=("r", "min"),
                                          hi=("r", "max"), n=("r", "count"))
    per_gene = per_gene[per_gene["n"] >= 2].reset_index()
    oracle = per_gene.sort_values(["s", "gene_id"], ascending=[False, True]).head(top_n)
    low, high = bar_patches(ax)[:top_n], bar_patches(ax)[top_n:]
    assert len(low) == len(high) == top_n
    np.testing.assert_allclose([b.get_width() for b in low], oracle["lo"], atol=1e-12)
    np.testing.assert_allclose([b.get_width() for b in high], oracle["hi"], atol=1e-12)
    for bar in [*low, *high]:
        expected = POSITIVE_COLOR if bar.get_width() > 0 else NEGATIVE_COLOR
        assert bar.get_facecolor() == pytest.approx(to_rgba(expected))
    assert ax.get_xlim() == (-1.5, 1.5)


def test_switch_pair_raises_without_pairs(results):
    pol = results["M004"].transcript_polarity_table
    with pytest.raises(InputError, match="empty"):
        plot_switch_pair(pol.iloc[:0])
    with pytest.raises(InputError, match="switch pair"):
        plot_switch_pair(pol.assign(r=np.nan))


# ------------------------------------------------------------------ isoform gradient


def test_moving_average_trend_matches_edge_padded_window_mean():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=50), rng.normal(size=50)
    x[4] = np.nan
    xs, trend = moving_average_trend(x, y)
    ok = np.isfinite(x)
    order = np.argsort(x[ok])
    ys = y[ok][order]
    w = max(3, ys.size // 8)  # 6: even window, centred like scipy (left = w // 2)
    padded = np.concatenate([np.repeat(ys[0], w // 2), ys, np.repeat(ys[-1], w)])
    oracle = np.array([padded[i: i + w].mean() for i in range(ys.size)])
    np.testing.assert_allclose(xs, x[ok][order])
    np.testing.assert_allclose(trend, oracle, atol=1e-12)


@pytest.mark.parametrize("top_n", [2, 5])
def test_isoform_gradient_one_panel_per_top_gene(results, usage, names, top_n):
    res = results["M001"]
    fig = plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table,
                                res.eigengene, res.sample_ids, usage, top_n=top_n,
                                gene_names=names)
    assert isinstance(fig, Figure)
    pol = res.transcript_polarity_table
    genes = [g for g in res.gene_driver_table["gene_id"] if g in set(pol["gene_id"])][:top_n]
    assert len(fig.axes) == top_n
    assert [ax.get_title(loc="left") for ax in fig.axes] == [names[g] for g in genes]
    first = fig.axes[0]
    tx = pol[pol["gene_id"] == genes[0]].sort_values("r", ascending=False)
    assert len(trend_lines(first)) == len(tx)
    # the highest-r transcript's trend is the moving average of its usage vs the eigengene
    values = usage.reindex(res.sample_ids)[tx["feature_id"].iloc[0]].to_numpy()
    xs, trend = moving_average_trend(res.eigengene, values)
    lines = trend_lines(first)
    np.testing.assert_allclose(lines[0].get_xdata(), xs)
    np.testing.assert_allclose(lines[0].get_ydata(), trend)
    assert lines[0].get_color() == POSITIVE_COLOR and lines[-1].get_color() == NEGATIVE_COLOR
    # every sample with finite usage and eigengene is drawn as a marker
    markers = [ln for ln in first.get_lines() if ln not in lines]
    ok = np.isfinite(values) & np.isfinite(res.eigengene)
    assert len(markers[0].get_xdata()) == ok.sum()


def test_isoform_gradient_panels_have_common_limits_without_sharing(results, usage):
    res = results["M001"]
    fig = plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table,
                                res.eigengene, res.sample_ids, usage, top_n=5)
    axes = fig.axes
    assert len(axes) == 5
    data = np.vstack([line.get_xydata() for ax in axes for line in ax.get_lines()
                      if len(line.get_xdata())])
    for ax in axes:
        # independent axes (shared ones cost a sibling scan per panel at every draw) ...
        assert ax.get_shared_x_axes().get_siblings(ax) == [ax]
        assert ax.get_shared_y_axes().get_siblings(ax) == [ax]
        # ... with the limits sharing would give: every panel's data plus 5 % margins
        assert ax.get_xlim() == axes[0].get_xlim() and ax.get_ylim() == axes[0].get_ylim()
    (x0, x1), (y0, y1) = axes[0].get_xlim(), axes[0].get_ylim()
    span = data.max(axis=0) - data.min(axis=0)
    np.testing.assert_allclose([x0, y0], data.min(axis=0) - 0.05 * span)
    np.testing.assert_allclose([x1, y1], data.max(axis=0) + 0.05 * span)


def test_isoform_gradient_raises_when_nothing_to_draw(results, usage):
    res = results["M001"]
    with pytest.raises(InputError, match="empty"):
        plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table.iloc[:0],
                              res.eigengene, res.sample_ids, usage)
    with pytest.raises(InputError, match="empty"):
        plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table,
                              res.eigengene, res.sample_ids, usage * np.nan)


# ------------------------------------------------------------------ driver heatmap


def test_driver_heatmap_rows_and_zscored_usage_in_eigengene_order(results, usage, names):
    res = results["M002"]
    fig = plot_driver_heatmap(res.gene_driver_table, res.transcript_polarity_table,
                              res.eigengene, res.sample_ids, usage, top_n=4, gene_names=names)
    strip, heat = fig.axes[0], fig.axes[1]
    image = np.asarray(heat.get_images()[0].get_array())
    drivers = res.gene_driver_table.assign(a=res.gene_driver_table["r"].abs())
    drivers = drivers.sort_values("a", ascending=False)
    pol = res.transcript_polarity_table
    pos = [g for g in drivers.loc[drivers["r"] > 0, "gene_id"] if g in set(pol["gene_id"])][:2]
    neg = [g for g in drivers.loc[drivers["r"] < 0, "gene_id"] if g in set(pol["gene_id"])][:2]
    features = [f for g in pos + neg
                for f in pol[pol["gene_id"] == g].sort_values("r", ascending=False)["feature_id"]]
    eig = res.eigengene
    order = np.argsort(eig, kind="stable")[: np.isfinite(eig).sum()]
    assert image.shape == (len(features), order.size)
    values = usage.reindex([res.sample_ids[i] for i in order])[features].to_numpy().T
    z = (values - np.nanmean(values, axis=1, keepdims=True)) / np.nanstd(values, axis=1,
                                                                         keepdims=True)
    np.testing.assert_allclose(image, np.clip(z, -2.5, 2.5), atol=1e-12)
    np.testing.assert_allclose(np.asarray(strip.get_images()[0].get_array())[0], eig[order])
    labels = [t.get_text() for t in heat.get_yticklabels()]
    assert labels[0].startswith(names[pos[0]] + " · ")
    assert labels[-1].startswith(names[neg[-1]] + " · ")


# ------------------------------------------------------------------ module summary


def summary_oracle(res: ExplainResult) -> dict:
    pol, drv = res.transcript_polarity_table, res.gene_driver_table
    strength = pol.groupby("gene_id")["switch_strength"].first()
    top = strength.idxmax()
    tx = pol[pol["gene_id"] == top]
    return {
        "module_id": res.module_id, "n_module_genes": res.n_module_genes,
        "top_driver_genes": list(drv["gene_id"][:5]),
        "n_positive_transcripts": int((pol["r"] > 0).sum()),
        "n_negative_transcripts": int((pol["r"] < 0).sum()),
        "n_switch_genes": int((strength > strength.median()).sum()),
        "top_switch_gene": top,
        "top_switch_pair": [tx.loc[tx["r"].idxmin(), "feature_id"],
                            tx.loc[tx["r"].idxmax(), "feature_id"]],
        "top_switch_strength": float(strength.max()),
        "mean_abs_driver_r": float(drv["r"].abs().mean()),
    }


@pytest.mark.parametrize("module_id", ["M000", "M003"])
def test_summarize_module_matches_pandas_oracle(results, module_id):
    got = summarize_module(results[module_id])
    want = summary_oracle(results[module_id])
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_summarize_module_defaults_without_transcripts(results):
    res = copy.copy(results["M000"])
    res.transcript_polarity_table = res.transcript_polarity_table.iloc[:0]
    got = summarize_module(res)
    assert (got["n_positive_transcripts"], got["n_negative_transcripts"],
            got["n_switch_genes"]) == (0, 0, 0)
    assert got["top_switch_gene"] is None and got["top_switch_strength"] is None
    assert got["top_switch_pair"] == []
    assert got["top_driver_genes"] == list(res.gene_driver_table["gene_id"][:5])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(-1, 1) | st.just(float("nan"))),
                min_size=1, max_size=12))
def test_summarize_module_counts_on_random_polarity(rows):
    pol = pd.DataFrame({"feature_id": [f"t{i}" for i in range(len(rows))],
                        "gene_id": [f"g{g}" for g, _ in rows], "r": [r for _, r in rows]})
    rng = pol.groupby("gene_id")["r"].agg(lambda v: v.max() - v.min() if v.count() >= 2 else 0.0)
    pol["switch_strength"] = pol["gene_id"].map(rng)
    res = ExplainResult("M", pd.DataFrame({"gene_id": ["g0"], "r": [np.nan]}), pol,
                        pd.DataFrame(), np.zeros(3), ["a", "b", "c"], 1)
    got = summarize_module(res)
    r = pol["r"].to_numpy()
    assert got["n_positive_transcripts"] == int(np.sum(r > 0))
    assert got["n_negative_transcripts"] == int(np.sum(r < 0))
    per_gene = [rng[g] for g in sorted(rng.index)]
    assert got["n_switch_genes"] == int(np.sum(np.array(per_gene) > np.median(per_gene)))
    assert got["top_switch_strength"] == pytest.approx(max(per_gene))
    assert got["top_switch_gene"] == sorted(rng.index)[int(np.argmax(per_gene))]
    assert got["mean_abs_driver_r"] is None


# ------------------------------------------------------------------ summary panel


@pytest.mark.parametrize("with_usage", [True, False])
def test_summary_panel_has_five_lettered_panels(results, usage, names, with_usage):
    fig = plot_summary_panel(results["M000"], usage if with_usage else None, gene_names=names)
    letters = [t.get_text() for sub in fig.subfigs for s in [sub, *sub.subfigs]
               for t in s.texts if t.get_text() in "ABCDE"]
    assert sorted(letters) == list("ABCDE")
    assert fig.get_suptitle() == "Module M000"


def test_summary_panel_without_transcripts_shows_dumbbell(results, usage):
    res = copy.copy(results["M000"])
    res.transcript_polarity_table = res.transcript_polarity_table.iloc[:0]
    fig = plot_summary_panel(res, usage)
    panel_e = fig.subfigs[2].subfigs[1].axes[0]
    assert panel_e.get_title(loc="left") == "High vs low module samples"


# ------------------------------------------------------------------ render everything


def test_render_writes_every_figure_without_mutating_or_leaking(results, usage, meta,
                                                                tmp_path):
    import matplotlib.pyplot as plt

    chosen = {m: results[m] for m in ("M000", "M001")}
    before = copy.deepcopy(chosen)
    files = render_explain_figures(chosen, tmp_path, ("png",), usage, meta, top_n=3, dpi=40)
    expected = ["eigengene_heatmap.png"] + [
        f"{m}/{name}.png" for m in chosen for name in (
            "driver_bar", "isoform_gradient", "driver_heatmap", "high_vs_low",
            "transcript_polarity", "switch_pair", "summary_panel")]
    assert sorted(files) == sorted([*expected, "M000/module_summary.json",
                                    "M001/module_summary.json"])
    for rel in files:
        assert (tmp_path / rel).is_file()
    for rel in expected:
        assert (tmp_path / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "M001" / "module_summary.json").read_text())
    assert summary == json.loads(json.dumps(summary_oracle(chosen["M001"])))
    for m in chosen:
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(chosen[m], name), getattr(before[m], name))
        np.testing.assert_array_equal(chosen[m].eigengene, before[m].eigengene)
    assert plt.get_fignums() == []  # figures never go through pyplot's registry


def edge_results() -> dict[str, ExplainResult]:
    """One gene with two transcripts; a module without transcripts; all-NaN features."""
    samples = [f"S{i}" for i in range(30)]
    eig = np.linspace(-2, 2, 30)
    hvl = pd.DataFrame({"feature_id": ["A.1", "A.2"], "gene_id": ["A", "A"],
                        "mean_high": [0.8, 0.2], "mean_low": [0.2, 0.8], "delta": [0.6, -0.6],
                        "se": [0.05, 0.05], "tstat": [12.0, -12.0]})
    one_gene = ExplainResult(
        "ONE", pd.DataFrame({"gene_id": ["A"], "feature_id": ["A::switch"], "r": [0.9],
                             "n_samples": [30]}),
        pd.DataFrame({"feature_id": ["A.1", "A.2"], "gene_id": ["A", "A"], "r": [0.9, -0.9],
                      "switch_strength": [1.8, 1.8]}), hvl, eig, samples, 1)
    no_tx = ExplainResult(
        "NOTX", one_gene.gene_driver_table.assign(r=-0.5),
        pd.DataFrame(columns=["feature_id", "gene_id", "r", "switch_strength"]), hvl, -eig,
        samples, 3)
    all_nan = ExplainResult(
        "NAN", pd.DataFrame({"gene_id": ["B"], "feature_id": ["B::switch"], "r": [np.nan],
                             "n_samples": [0]}),
        pd.DataFrame({"feature_id": ["B.1", "B.2"], "gene_id": ["B", "B"], "r": [np.nan] * 2,
                      "switch_strength": [0.0, 0.0]}), hvl.assign(tstat=np.nan), eig, samples, 1)
    return {"ONE": one_gene, "NOTX": no_tx, "NAN": all_nan}


def edge_usage() -> pd.DataFrame:
    t = np.linspace(0, 1, 30)
    return pd.DataFrame({"A.1": t, "A.2": 1 - t, "B.1": np.nan, "B.2": np.nan},
                        index=[f"S{i}" for i in range(30)])


def test_render_edge_cases_skip_what_cannot_be_drawn(tmp_path):
    res = edge_results()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = set(render_explain_figures(res, tmp_path, ("png",), edge_usage(), dpi=40))
    for name in ("driver_bar", "isoform_gradient", "driver_heatmap", "high_vs_low",
                 "transcript_polarity", "switch_pair", "summary_panel"):
        assert f"ONE/{name}.png" in files
    assert {f for f in files if f.startswith("NOTX/")} == {
        "NOTX/driver_bar.png", "NOTX/high_vs_low.png", "NOTX/summary_panel.png",
        "NOTX/module_summary.json"}
    assert {f for f in files if f.startswith("NAN/")} == {
        "NAN/transcript_polarity.png", "NAN/summary_panel.png", "NAN/module_summary.json"}
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("module NOTX: skipped") and "transcript_polarity" in m
               for m in messages)
    assert any(m.startswith("module NAN: skipped") and "driver_bar" in m for m in messages)
    one = json.loads((tmp_path / "ONE" / "module_summary.json").read_text())
    assert one["top_switch_pair"] == ["A.2", "A.1"] and one["n_switch_genes"] == 0
    notx = json.loads((tmp_path / "NOTX" / "module_summary.json").read_text())
    assert notx["top_switch_gene"] is None and notx["n_module_genes"] == 3
    assert notx["mean_abs_driver_r"] == pytest.approx(0.5)


def test_one_gene_figures_have_one_bar_and_one_panel():
    res = edge_results()["ONE"]
    assert len(bar_patches(plot_driver_bar(res.gene_driver_table))) == 1
    fig = plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table,
                                res.eigengene, res.sample_ids, edge_usage(), top_n=10)
    assert len(fig.axes) == 1 and len(trend_lines(fig.axes[0])) == 2


def test_render_without_usage_warns_and_skips_usage_figures(tmp_path):
    res = {"ONE": edge_results()["ONE"]}
    with pytest.warns(UserWarning, match="no feature usage table"):
        files = render_explain_figures(res, tmp_path, ("png",), None, dpi=40)
    assert "ONE/isoform_gradient.png" not in files and "ONE/driver_bar.png" in files


def test_render_rejects_unknown_format(results, tmp_path):
    with pytest.raises(InputError, match="tiff"):
        render_explain_figures({"M000": results["M000"]}, tmp_path, ("tiff",))


def test_render_in_worker_processes_writes_the_same_bytes(tmp_path):
    res = edge_results()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = render_explain_figures(res, tmp_path / "a", ("svg",), edge_usage(), dpi=40)
        parallel = render_explain_figures(res, tmp_path / "b", ("svg",), edge_usage(), dpi=40,
                                          jobs=2)
    assert serial == parallel
    for rel in serial:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_default_jobs_is_one_per_core_at_most_one_per_module(monkeypatch):
    import isograph_gpu.plots.render as render

    monkeypatch.setattr(render.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    monkeypatch.setattr(render.sys, "platform", "linux")
    assert [default_jobs(n) for n in (0, 1, 3, 20)] == [1, 1, 3, 4]
    monkeypatch.setattr(render.sys, "platform", "darwin")  # spawn: no pool unless asked
    assert default_jobs(20) == 1


def test_default_render_uses_workers_and_writes_what_one_process_writes(tmp_path, monkeypatch):
    import isograph_gpu.plots.render as render

    pools = []
    real_pool = render.FigureWorkers
    monkeypatch.setattr(render, "default_jobs", lambda n: 2)
    monkeypatch.setattr(render, "FigureWorkers",
                        lambda jobs, tasks: pools.append(jobs) or real_pool(jobs, tasks))
    res = edge_results()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = render_explain_figures(res, tmp_path / "a", ("png",), edge_usage(), dpi=40)
        serial = render_explain_figures(res, tmp_path / "b", ("png",), edge_usage(), dpi=40,
                                        jobs=1)
    assert pools == [2]  # the default drew in worker processes, jobs=1 in this one
    assert default == serial and default[0] == "eigengene_heatmap.png"
    for rel in serial:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


# ------------------------------------------- what a reviewer reads (issue 13.4)


def test_polarity_cells_name_their_transcripts_and_gray_cells_have_a_legend(results, names):
    res = results["M000"]
    ax = plot_transcript_polarity(res.transcript_polarity_table, res.gene_driver_table,
                                  top_n=4, gene_names=names)
    pol = res.transcript_polarity_table
    genes = [g for g in res.gene_driver_table["gene_id"] if g in set(pol["gene_id"])][:4]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    for i, g in enumerate(genes):
        tx = pol[pol["gene_id"] == g].sort_values(["r", "feature_id"],
                                                 ascending=[False, True])
        for j, (tid, r) in enumerate(zip(tx["transcript_id"], tx["r"], strict=True)):
            assert cells[(i, j)] == f"{tid}\n{r:.2f}"
    assert ax.get_xticks().size == 0  # no rank numbers: the cells say which transcript
    image = np.asarray(ax.get_images()[0].get_array())
    assert np.isnan(image).any()
    assert ax.get_xlabel().endswith("\ngray: no transcript or r NaN")
    red, green, blue, _ = to_rgba(ax.get_images()[0].cmap.get_bad())
    assert red == green == blue  # the NaN cells are gray, as the label says


def test_polarity_without_gray_cells_has_no_legend():
    pol = pd.DataFrame({"feature_id": ["a1", "a2", "b1", "b2"], "gene_id": list("aabb"),
                        "r": [0.5, -0.5, 0.2, -0.1], "switch_strength": [1.0, 1.0, 0.3, 0.3]})
    ax = plot_transcript_polarity(pol)
    assert "gray" not in ax.get_xlabel()
    assert sorted(t.get_text() for t in ax.texts) == ["a1\n0.50", "a2\n-0.50", "b1\n0.20",
                                                       "b2\n-0.10"]


@pytest.mark.parametrize("top_n", [3, 20])
def test_standalone_figures_name_the_module_and_polarity_honours_top_n(results, usage, meta,
                                                                         names, top_n):
    from isograph_gpu.plots._data import feature_type_map
    from isograph_gpu.plots.render import _module_builders

    res = results["M002"]
    builders = _module_builders(res, usage, names, top_n, feature_type_map(meta))
    for name, build in builders.items():
        figure = build()
        fig = figure if isinstance(figure, Figure) else figure.figure
        title = fig.get_suptitle()
        assert title.startswith("M002: ") or title == "Module M002", (name, title)
    polarity = builders["transcript_polarity"]()
    pol = res.transcript_polarity_table
    n_genes = len([g for g in res.gene_driver_table["gene_id"] if g in set(pol["gene_id"])])
    rows = np.asarray(polarity.get_images()[0].get_array()).shape[0]
    assert rows == min(top_n, n_genes)  # was at least 15 whatever --top-n


def test_high_vs_low_axis_names_the_feature_type():
    table = pd.DataFrame({
        "feature_id": ["t1", "e1", "t2"], "gene_id": ["g", "g", "h"],
        "mean_high": [0.9, 0.5, 0.1], "mean_low": [0.1, 0.2, 0.6],
        "delta": [0.8, 0.3, -0.5], "se": [0.1, 0.1, 0.1], "tstat": [8.0, 3.0, -5.0]})
    types = {"t1": "transcript_usage", "t2": "transcript_usage", "e1": "psi"}
    ax = plot_high_vs_low(table, feature_types=types)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t1", "t2", "e1 [PSI]"]
    assert ax.get_xlabel() == "mean transcript usage\n[PSI]: mean PSI"
    only_psi = plot_high_vs_low(table, feature_ids=["e1"], feature_types=types)
    assert only_psi.get_xlabel() == "mean PSI"
    assert [t.get_text() for t in only_psi.get_yticklabels()] == ["e1"]
    assert plot_high_vs_low(table).get_xlabel() == "group mean of the feature"  # no "usage"


def test_isoform_gradient_legends_sit_above_the_data(results, usage, names):
    """Issue 13.4: the legend covered the top right of each panel, where the switch
    completes; it now sits between the gene name and the plot area."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    res = results["M001"]
    fig = plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table,
                                res.eigengene, res.sample_ids, usage, top_n=5,
                                gene_names=names)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        plot_area = ax.get_window_extent(renderer)
        legend = ax.get_legend().get_window_extent(renderer)
        title = ax.title.get_window_extent(renderer) if ax.get_title() else \
            ax._left_title.get_window_extent(renderer)
        assert legend.y0 >= plot_area.y1 - 0.5, ax.get_title(loc="left")
        assert title.y0 >= legend.y1 - 1.0, ax.get_title(loc="left")  # name above, no overlap
        assert len(ax.get_legend().get_texts()) == len(trend_lines(ax))


@pytest.mark.parametrize("types", [None, {"t1": "transcript_usage", "e1": "psi"}])
def test_high_vs_low_legend_stays_below_a_two_line_axis_label(types):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    table = pd.DataFrame({
        "feature_id": ["t1", "e1"], "gene_id": ["g", "g"], "mean_high": [0.9, 0.5],
        "mean_low": [0.1, 0.2], "delta": [0.8, 0.3], "se": [0.1, 0.1], "tstat": [8.0, 3.0]})
    ax = plot_high_vs_low(table, feature_types=types)
    FigureCanvasAgg(ax.figure).draw()
    renderer = ax.figure.canvas.get_renderer()
    label = ax.xaxis.label.get_window_extent(renderer)
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y1 <= label.y0 + 0.5  # was drawn over the label's second line


def test_switch_pair_labels_of_long_bars_sit_inside_them():
    """Labels of |r| near 1 were drawn past x = -1.5, over the gene names."""
    pol = pd.DataFrame({"feature_id": ["a1", "a2", "b1", "b2"], "gene_id": list("aabb"),
                        "transcript_id": ["TA1", "TA2", "TB1", "TB2"],
                        "r": [0.9, -0.95, 0.2, -0.1], "switch_strength": [1.85, 1.85, 0.3, 0.3]})
    ax = plot_switch_pair(pol)
    placed = {t.get_text(): (t.get_position()[0], t.get_ha(), t.get_color()) for t in ax.texts}
    assert placed["TA1"] == (pytest.approx(0.87), "right", "white")
    assert placed["TA2"] == (pytest.approx(-0.92), "left", "white")
    assert placed["TB1"] == (pytest.approx(0.23), "left", "black")
    assert placed["TB2"] == (pytest.approx(-0.13), "right", "black")


def test_driver_bar_names_the_channel_that_made_each_gene_a_driver(results):
    """Issue 23.6: which channel (switch or abundance) made a gene a driver is written in
    its bar, in the driver table's feature_type, for the genes the bars show."""
    from isograph_gpu.plots._data import top_drivers

    drivers = results["M000"].gene_driver_table
    ax = plot_driver_bar(drivers, top_n=6)
    shown = top_drivers(drivers, 6)
    channels = {round(t.get_position()[1]): t.get_text() for t in ax.texts}
    assert [channels[i] for i in range(len(shown))] == shown["feature_type"].tolist()


def test_gradient_legends_are_at_least_six_points(results, usage):
    """Issue 23.6: the gradient panels' legends were 4.5 pt."""
    res = results["M000"]
    fig = plot_isoform_gradient(res.gene_driver_table, res.transcript_polarity_table,
                                res.eigengene, res.sample_ids, usage, top_n=2)
    sizes = [t.get_fontsize() for ax in fig.axes if ax.get_legend() is not None
             for t in ax.get_legend().get_texts()]
    assert sizes and min(sizes) >= 6.0
