"""Training-loop API at a realistic size: ``ModuleStatistics`` forward + backward at
256 samples x 50,000 features x 16 latent dimensions, per call and as a fraction of one
VAE training step of that size.

What one "call" is: ``stats(features, latent)`` (r, switch strength, and p/q-values with
``--with-pvalues``, the median-split contrast with ``--with-contrast``) and the backward of
``-switch_strength.mean()`` into the latent scores, as in ``examples/train_vae_with_drivers.py``.
What one "VAE step" is: encoder 50,000 -> 512 -> 2 x 16, reparameterisation, decoder
16 -> 512 -> 50,000, MSE + KL, backward, Adam step, without the statistics term.
Medians of ``--repeats`` after warm-ups, synchronised on CUDA. On CUDA it also runs one call
under ``torch.cuda.set_sync_debug_mode("error")`` and records whether it synchronised with
the host (the goal is none, and <= 5 ms per call on an H200).

    python bench/bench_training.py [--device cuda] [--dtype float32]
                                   [--out bench/results/training_<device>.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch
from bench_scaling import median_time  # bench/ is on sys.path
from torch import nn

from isograph_gpu.training import ModuleStatistics


class VAE(nn.Module):
    """The VAE whose training step the statistics call is compared with."""

    def __init__(self, n_features: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                                     nn.Linear(hidden, n_features))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def make_inputs(n: int, f: int, k: int, transcripts_per_gene: int, device: torch.device,
                dtype: torch.dtype) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(gene ids [F], features [n, F] with 2 % NaN, latent scores [n, K] needing grad)."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(n, f, device=device, dtype=dtype, generator=g)
    x[torch.rand(x.shape, device=device, generator=g) < 0.02] = float("nan")
    latent = torch.randn(n, k, device=device, dtype=dtype, generator=g).requires_grad_(True)
    genes = [f"G{i // transcripts_per_gene:06d}" for i in range(f)]
    return genes, x, latent


def statistics_call(stats: ModuleStatistics, x: torch.Tensor, latent: torch.Tensor) -> None:
    """One forward + backward of the statistics term into ``latent``."""
    out = stats(x, latent)
    (-out.switch_strength.nanmean()).backward()
    latent.grad = None


def host_sync_free(stats: ModuleStatistics, x: torch.Tensor, latent: torch.Tensor) -> bool:
    """True when one call runs under ``set_sync_debug_mode("error")`` without raising."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        statistics_call(stats, x, latent)
        return True
    except RuntimeError as err:
        print(f"bench_training: the call synchronised with the host: {err}", file=sys.stderr)
        return False
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="of features, latent and VAE (the API follows its inputs)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--features", type=int, default=50_000)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--transcripts-per-gene", type=int, default=4)
    parser.add_argument("--with-pvalues", action="store_true")
    parser.add_argument("--with-contrast", action="store_true")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/training_<device>.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_training: no CUDA device available; nothing measured", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    dtype = getattr(torch, args.dtype)
    genes, x, latent = make_inputs(args.samples, args.features, args.latent,
                                   args.transcripts_per_gene, device, dtype)
    stats = ModuleStatistics(genes, with_pvalues=args.with_pvalues,
                             with_contrast=args.with_contrast).to(device)
    call_s = median_time(lambda: statistics_call(stats, x, latent), device, args.repeats)

    vae = VAE(args.features, args.latent, args.hidden).to(device=device, dtype=dtype)
    optimiser = torch.optim.Adam(vae.parameters(), lr=1e-3)
    x_filled = torch.nan_to_num(x)

    def vae_step() -> None:
        optimiser.zero_grad(set_to_none=True)
        recon, mu, logvar = vae(x_filled)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        (nn.functional.mse_loss(recon, x_filled) + kl).backward()
        optimiser.step()

    step_s = median_time(vae_step, device, args.repeats)
    result = {
        "benchmark": "ModuleStatistics forward + backward vs one VAE training step",
        "n_samples": args.samples, "n_features": args.features, "n_latent": args.latent,
        "n_genes": stats.n_genes, "vae_hidden": args.hidden, "dtype": args.dtype,
        "with_pvalues": args.with_pvalues, "with_contrast": args.with_contrast,
        "device": args.device, "repeats": args.repeats, "statistic": "median",
        "statistics_call_s": call_s,
        "vae_step_s": step_s,
        "statistics_call_fraction_of_vae_step": call_s / step_s,
        "host_sync_free": host_sync_free(stats, x, latent) if device.type == "cuda" else None,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "card": torch.cuda.get_device_name(device) if device.type == "cuda"
                    else None},
    }
    print(json.dumps(result, indent=2))
    out = args.out or Path("bench/results") / f"training_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
