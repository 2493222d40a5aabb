"""Reference parity over device x p-value backend: the core tables of isograph 0.1.5's
stored run (tests/data/isograph-0.1.5) at the default precision on every device, and the
tails contrast table against numpy/scipy. CUDA cases are marked ``cuda`` and skip cleanly
without a device.

Devices: cpu, cuda. P-value backends (:func:`isograph_gpu.ops.pvalues.betainc_route`):
``default`` (scipy on the CPU; CuPy's betainc on CUDA when installed, else torch) and
``torch`` (the float64 torch betainc, forced on either device).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from _helpers import oracles
from _helpers.explain import explain_api
from _helpers.testers import Tolerance, assert_matches
from conftest import EXPECTED, assert_table_matches

from isograph_gpu import ExplainConfig
from isograph_gpu.device import resolve_dtype
from isograph_gpu.ops import pvalues

CORE = ["gene_driver_table", "transcript_polarity_table", "high_vs_low_table"]
_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, _cuda])]
ROUTES = ["default", "torch"]


def test_auto_precision_is_float64_on_every_device() -> None:
    """One rule for every device (resolve_dtype takes no device)."""
    assert resolve_dtype("auto") == torch.float64
    assert resolve_dtype("float64") == torch.float64
    assert resolve_dtype("float32") == torch.float32


@pytest.fixture
def pvalue_route(request, monkeypatch):
    route = request.param
    if route != "default":
        monkeypatch.setattr(pvalues, "betainc_route",
                            lambda device, needs_grad=False: route)
    return route


@pytest.mark.parametrize("pvalue_route", ROUTES, indirect=True)
@pytest.mark.parametrize("device", DEVICES)
def test_reference_parity_and_tails(ref_inputs, device: str, pvalue_route: str) -> None:
    results = explain_api(ref_inputs,
                          config=ExplainConfig(device=device, contrast_tails=20.0))
    assert list(results) == ["M000", "M001", "M002", "M003", "M004"]
    for module_id, res in results.items():
        for name in CORE:
            expected = pd.read_parquet(EXPECTED / "api_run" / module_id / f"{name}.parquet")
            assert_table_matches(expected, getattr(res, name))

    # tails table (overlaps the median split) against numpy + scipy, every row of M001
    res = results["M001"]
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    values = table.loc[res.sample_ids]
    e = res.eigengene
    hi, lo = oracles.tail_split(e, 20.0)
    tails = res.tails_contrast_table.set_index("feature_id")
    assert len(tails) > 0 and set(tails.index) <= set(values.columns)
    v = values[list(tails.index)].to_numpy(dtype=float)
    want = {name: column[:, 0] for name, column in vars(oracles.welch(v, hi, lo)).items()}
    got = {name: tails[name].to_numpy() for name in want}
    assert_matches(got, want, Tolerance(atol=1e-9, rtol=1e-9, log10=4e-8),
                   ("n_high", "n_low", "delta", "tstat", "pvalue"))
