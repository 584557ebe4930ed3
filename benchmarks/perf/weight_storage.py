"""Storage and error of every weight method on one 4096x4096 FP16-sized linear layer (CPU).

Prints, per spec: stored bytes over FP16 bytes (packed codes, scales/zeros and any sparse outlier
part, as ``quant.nbytes`` reports them), the relative weight error ||W_q - W|| / ||W||, and the
relative output error on held-out activations. The activations have a few salient input channels
and correlated features, the case activation-aware methods (AWQ, GPTQ) are built for; they calibrate
on 2,048 rows and are scored on 2,048 others.

    python benchmarks/perf/weight_storage.py [--size 4096]
"""

from __future__ import annotations

import argparse

import torch
from tabulate import tabulate

from quant import QuantizedLinear, WeightQuantSpec, nbytes

SPECS = ("w8-rtn", "w8-group-g128", "w4-rtn", "w4-group-g128", "w4-awq-g128", "w4-gptq-g128", "w4-gptq-g128-actorder",
         "w3-group-g128", "w3-outlier-s1-g128", "w3-gptq-g128", "w2-group-g128")


def activation_source(size: int, generator: torch.Generator):
    """Rows of correlated features (a fixed low-rank mix plus noise) whose 1% salient channels are
    20x larger: one distribution, sampled for calibration and again for the held-out rows."""
    mix = torch.randn(size // 16, size, generator=generator) / (size // 16) ** 0.5
    salient = torch.randperm(size, generator=generator)[: size // 100]

    def sample(rows: int) -> torch.Tensor:
        x = torch.randn(rows, size // 16, generator=generator) @ mix + 0.1 * torch.randn(rows, size,
                                                                                         generator=generator)
        x[:, salient] *= 20
        return x
    return sample


def measure(size: int, seed: int = 0) -> list[list[str]]:
    generator = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(size, size, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(size, size, generator=generator) / size ** 0.5)
    sample = activation_source(size, generator)
    calibration, held_out = sample(2048), sample(2048)
    reference = held_out @ linear.weight.T
    rows = []
    for spec_id in SPECS:
        spec = WeightQuantSpec.from_id(spec_id)
        quantized = QuantizedLinear.from_linear(linear, spec, calibration if spec.needs_calibration else None)
        with torch.no_grad():   # the layer's own forward: AWQ's input scaling included
            weight = quantized(torch.eye(size)).T
            output = quantized(held_out)
        rows.append([spec_id, f"{nbytes(quantized) / (size * size * 2):.4f}",
                     f"{((weight - linear.weight).norm() / linear.weight.norm()).item():.4f}",
                     f"{((output - reference).norm() / reference.norm()).item():.4f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(tabulate(measure(args.size), headers=["spec", "bytes vs FP16", "relative weight error",
                                                "relative held-out output error"], tablefmt="github"))


if __name__ == "__main__":
    main()
