"""Training and sampling throughput of each architecture on this machine, against its conv peak.

    python bench/throughput.py                      # fast, paper, tutorial; fp32 and bf16; 2 threads
    python bench/throughput.py --archs paper --precisions fp32 --steps 30

Prints images/s after warm-up, FLOPs per training image (torch.utils.flop_counter), the achieved
GFLOP/s, and that as a fraction of the measured convolution peak (a large 3x3 conv, same dtype).
`--ceiling` adds what the step would reach if only its convolutions and matrix products took time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ganimate.config import TrainConfig
from ganimate.gan import GanState
from ganimate.runtime import keep_freed_memory
from ganimate.sample import inference_copy
from ganimate.train import train_step, training_models


def conv_peak(dtype: torch.dtype, windows: int = 5, seconds: float = 1.0) -> float:
    """GFLOP/s of a large 3x3 convolution forward pass (oneDNN's best case on this CPU): the best of `windows`
    windows of `seconds` each. A shared machine only ever slows a window down, so the best one is the peak (one
    3-second average here read anywhere from 520 to 960 GFLOP/s in bf16 within minutes)."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(64, 128, 28, 28).to(memory_format=torch.channels_last)
    flops = 2 * 64 * 128 * 128 * 9 * 28 * 28
    best = 0.0
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        for _ in range(3):
            conv(x)
        for _ in range(windows):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                conv(x)
                n += 1
            best = max(best, flops * n / (time.perf_counter() - t0) / 1e9)
    return best


HEAVY_OPS = {torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default,
             torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


def heavy_ops_alone(step: Callable[[], object], repeats: int = 5) -> float:
    """Seconds that the convolutions and matrix products of one call of `step` take when each runs on its own
    (recorded with their inputs, then replayed in a loop, the best of `repeats` rounds each): the step's time if
    everything else (batch norm, activations, casts, the optimiser, Python) were free. Its FLOPs over this time
    is the highest share of the peak this step can reach with these kernels."""
    calls = []

    def kept(a):
        if isinstance(a, torch.Tensor):
            return a.detach().clone(memory_format=torch.preserve_format)
        return type(a)(kept(b) for b in a) if isinstance(a, (list, tuple)) else a

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in HEAVY_OPS:
                calls.append((func, kept(args), kept(kwargs or {})))
            return func(*args, **(kwargs or {}))

    with Record():
        step()
    total = 0.0
    with torch.no_grad():
        for func, args, kwargs in calls:
            func(*args, **kwargs)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                func(*args, **kwargs)
                best = min(best, time.perf_counter() - t0)
            total += best
    return total


def measure(arch: str, precision: str, batch_size: int, steps: int, warmup: int, memory_format: str = "auto",
            ceiling: bool = False) -> dict:
    cfg = TrainConfig(dataset="mnist", arch=arch, image_size=28, channels=1, num_classes=10, conditional=True,
                      batch_size=batch_size, precision=precision, memory_format=memory_format)
    torch.manual_seed(0)
    G, D, memory_format = training_models(cfg, torch.device("cpu"))  # as `ganimate train` lays them out
    gan = GanState.create(G, D, lr_g=cfg.lr_g, lr_d=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), seed=0, ema=False,
                          precision=cfg.precision)
    x = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (batch_size,))
    z = torch.randn(batch_size, cfg.z_dim)
    amp = cfg.precision == "bf16"

    with FlopCounterMode(display=False) as counter:
        train_step(gan, x, y, z)
    flops_per_image = counter.get_total_flops() / batch_size

    for _ in range(warmup):
        train_step(gan, x, y, z)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(gan, x, y, z)
    train_rate = steps * batch_size / (time.perf_counter() - t0)
    alone = heavy_ops_alone(lambda: train_step(gan, x, y, z)) if ceiling else None

    G = inference_copy(G)  # as `ganimate sample` and `evaluate` draw: eval mode, batch norm folded
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        zs, ys = torch.randn(500, cfg.z_dim), torch.arange(500) % 10
        G(zs, ys)
        t0 = time.perf_counter()
        for _ in range(4):
            G(zs, ys)
        sample_rate = 4 * 500 / (time.perf_counter() - t0)
    return {"train": train_rate, "flops": flops_per_image, "sample": sample_rate, "memory_format": memory_format,
            "ceiling": batch_size * flops_per_image / alone / 1e9 if ceiling else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="fast,paper,tutorial")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-format", default="auto", choices=("auto", "contiguous", "channels_last"),
                        help="of the training step (auto: as `ganimate train` resolves it here)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also time the step's convolutions and matrix products each on its own: the GFLOP/s "
                             "(and share of the peak) of the step if nothing else took any time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the ganimate command does

    precisions = args.precisions.split(",")
    peaks = {p: conv_peak(torch.bfloat16 if p == "bf16" else torch.float32) for p in precisions}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    for p, g in peaks.items():
        print(f"conv peak {p}: {g:,.0f} GFLOP/s (3x3 conv 128->128 at 28x28, batch 64)")
    ceiling = f" {'ceiling':>13}" if args.ceiling else ""
    print(f"{'arch':10} {'prec':5} {'layout':13} {'train img/s':>11} {'GFLOP/img':>9} {'GFLOP/s':>8} {'% peak':>7} "
          f"{'sample img/s':>12}{ceiling}")
    for arch in args.archs.split(","):
        for p in precisions:
            r = measure(arch, p, args.batch_size, args.steps, args.warmup, args.memory_format, args.ceiling)
            achieved = r["train"] * r["flops"] / 1e9
            top = f" {r['ceiling']:7,.0f} ({100 * r['ceiling'] / peaks[p]:.0f}%)" if args.ceiling else ""
            print(f"{arch:10} {p:5} {r['memory_format']:13} {r['train']:11,.0f} {r['flops'] / 1e9:9.3f} "
                  f"{achieved:8,.0f} {100 * achieved / peaks[p]:6.0f}% {r['sample']:12,.0f}{top}")
    if args.ceiling:
        print("ceiling: GFLOP/s of the step if only its convolutions and matrix products took time, each as fast "
              "as it runs on its own (and that share of the peak)")


if __name__ == "__main__":
    main()
