"""Sizes declared by a file or a flag are checked before anything is allocated: a hostile
checkpoint or ``--ig-n-steps`` is one clear error naming it, at once, not a hang or an
exabyte allocation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _helpers import paths
from _helpers.explain import invoke_explain

from isograph_gpu.attribution.checkpoint import VaeDecoder, VaeEncoder, load_checkpoint
from isograph_gpu.config import ExplainConfig, ig_quadrature_bytes
from isograph_gpu.errors import InputError

REPO = paths.REPO


def save_checkpoint(path: Path, **declared: int) -> Path:
    """A real 2-layer checkpoint (d=6, latent 3, hidden 8) whose declared sizes are then
    overwritten by ``declared``."""
    torch.manual_seed(0)
    payload = {"encoder": VaeEncoder(6, 3, 8, 2).state_dict(),
               "decoder": VaeDecoder(6, 3, 8, 2).state_dict(),
               "n_genes": 6, "latent_dim": 3, "hidden_dim": 8, "n_hidden_layers": 2}
    payload.update(declared)
    torch.save(payload, path)
    return path


def load_in_subprocess(path: Path, timeout: float = 60.0) -> str:
    """The one line ``load_checkpoint(path)`` raises, from a child process (a hang on the
    old code must fail the test, not the suite)."""
    code = textwrap.dedent(f"""
        from isograph_gpu.attribution.checkpoint import load_checkpoint
        from isograph_gpu.errors import InputError
        try:
            load_checkpoint({str(path)!r})
        except InputError as exc:
            print("InputError:", exc)
        else:
            print("loaded")
    """)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, env={"PYTHONPATH": str(REPO),
                                                              "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_checkpoint did not return within {timeout:.0f} s")
    return (done.stdout + done.stderr).strip()


def test_astronomical_layer_count_is_refused_at_once(tmp_path):
    path = save_checkpoint(tmp_path / "vae_checkpoint.pt", n_hidden_layers=10**12)
    started = time.monotonic()
    out = load_in_subprocess(path)
    assert time.monotonic() - started < 60
    assert out.startswith("InputError:"), out
    assert "n_hidden_layers" in out and str(10**12) in out and str(path) in out


@pytest.mark.parametrize("declared", [
    {"n_hidden_layers": 3},          # one more than the weights hold (8 // 4 = 2 >= 1)
    {"n_hidden_layers": 60},         # 8 // 2**59 == 0: invalid widths
    {"hidden_dim": 10**30},          # a width no tensor can have
    {"n_genes": 10**18},
    {"latent_dim": 2**70},
])
def test_declared_sizes_must_match_the_weights(tmp_path, declared):
    path = save_checkpoint(tmp_path / "vae_checkpoint.pt", **declared)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    message = str(info.value)
    name = next(iter(declared))
    assert str(path) in message and name in message


def test_a_true_checkpoint_still_loads(tmp_path):
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "vae_checkpoint.pt"))
    assert (ckpt.n_inputs, ckpt.latent_dim) == (6, 3)


def test_quadrature_bytes_are_the_nodes_eigenproblem():
    """Two float64 n x n matrices: numpy's leggauss companion matrix and its copy."""
    assert ig_quadrature_bytes(50) == 2 * 8 * 50 * 50
    assert ig_quadrature_bytes(10**9) == 16 * 10**18


@pytest.mark.parametrize("steps", [20_000, 10**9])
def test_ig_steps_beyond_the_memory_budget_are_refused(steps):
    with pytest.raises(InputError) as info:
        ExplainConfig(integrated_gradients=True, ig_n_steps=steps)
    message = str(info.value)
    assert "--ig-n-steps" in message and "--memory-budget" in message
    assert str(steps) in message


def test_ig_step_bound_follows_the_budget():
    """The bound is the budget's, not a fixed cap: a larger budget admits the same steps,
    and steps are only checked when Integrated Gradients runs."""
    steps = 20_000
    ExplainConfig(integrated_gradients=True, ig_n_steps=steps,
                  memory_budget_bytes=ig_quadrature_bytes(steps))
    with pytest.raises(InputError):
        ExplainConfig(integrated_gradients=True, ig_n_steps=steps,
                      memory_budget_bytes=ig_quadrature_bytes(steps) - 1)
    ExplainConfig(ig_n_steps=steps)  # IG off: the value is not used


def test_encoder_integrated_gradients_checks_the_steps_too():
    pytest.importorskip("captum.attr", reason="captum is not installed")
    from isograph_gpu.attribution.integrated_gradients import encoder_integrated_gradients

    encoder = VaeEncoder(4, 2, 8, 2).double().eval()
    x = torch.zeros(3, 4, dtype=torch.float64)
    started = time.monotonic()
    with pytest.raises(InputError, match="n_steps"):
        encoder_integrated_gradients(encoder, x, [0], n_steps=10**9,
                                     memory_budget_bytes=2 * 1024**3)
    assert time.monotonic() - started < 5


def test_cli_refuses_huge_ig_steps_before_any_work(ref_inputs, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    result = invoke_explain(ref_inputs, out, "--integrated-gradients", "--ig-n-steps",
                            str(10**9))
    assert time.monotonic() - started < 30
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--ig-n-steps" in lines[0], result.output
    assert not out.exists()
