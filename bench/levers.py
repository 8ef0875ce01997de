"""Which speed levers pay on this machine: training images/s of one architecture under each variant.

    python bench/levers.py                       # fast preset, 2 threads
    python bench/levers.py --arch paper --steps 20

Variants, each measured after warm-up on the same random batch: the default (eager, bf16 where
native, Adam with foreach), fp32, channels_last memory format, fused Adam, torch.compile of G and D,
batch sizes 64 / 256, and 1 thread. Prints one row per variant; nothing is written.
"""

from __future__ import annotations

import argparse
import time

import torch

from ganimate.config import TrainConfig
from ganimate.gan import GanState
from ganimate.models import build_models
from ganimate.runtime import keep_freed_memory, native_bf16
from ganimate.train import train_step


def rate(arch: str, *, batch_size: int, bf16: bool, steps: int, warmup: int, channels_last: bool = False,
         fused: bool = False, compile_: bool = False) -> float:
    cfg = TrainConfig(dataset="mnist", arch=arch, image_size=28, channels=1, num_classes=10, conditional=True,
                      batch_size=batch_size)
    torch.manual_seed(0)
    G, D = build_models(cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    adam = {"fused": True} if fused else {"foreach": True}
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2), **adam)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2), **adam)
    if compile_:
        G, D = torch.compile(G), torch.compile(D)
    gan = GanState(G, D, None, opt_G, opt_D, torch.Generator(), precision="bf16" if bf16 else "fp32")
    x = (torch.rand(batch_size, 1, 28, 28) * 2 - 1).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,))
    z = torch.randn(batch_size, cfg.z_dim)
    for _ in range(warmup):
        train_step(gan, x, y, z)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(gan, x, y, z)
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="fast")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the ganimate command does
    bf16 = native_bf16(torch.device("cpu"))
    base = dict(batch_size=args.batch_size, bf16=bf16, steps=args.steps, warmup=args.warmup)

    variants = [
        (f"default ({'bf16' if bf16 else 'fp32'}, eager, foreach Adam)", {}),
        ("fp32", {"bf16": False}),
        ("channels_last", {"channels_last": True}),
        ("fused Adam", {"fused": True}),
        ("batch 64", {"batch_size": 64}),
        ("batch 256", {"batch_size": 256}),
    ]
    if not args.no_compile:
        variants.append(("torch.compile", {"compile_": True, "warmup": max(args.warmup, 5)}))
    print(f"torch {torch.__version__}, arch {args.arch}, batch {args.batch_size}, {args.threads} threads")
    print(f"{'variant':42} {'train img/s':>11} {'vs default':>10}")
    reference = None
    for name, change in variants:
        r = rate(args.arch, **{**base, **change})
        reference = reference or r
        print(f"{name:42} {r:11,.0f} {r / reference:9.2f}x")
    torch.set_num_threads(1)
    r = rate(args.arch, **base)
    print(f"{'1 thread':42} {r:11,.0f} {r / reference:9.2f}x")


if __name__ == "__main__":
    main()
