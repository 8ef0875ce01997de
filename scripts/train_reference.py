"""Train the reference classifier of a dataset and write it as package data.

    python scripts/train_reference.py --dataset mnist --seed 0 --out src/ganimate/weights/

writes <dataset>_classifier.safetensors (fp32, or fp16 if fp32 would exceed 2 MB and fp16 keeps the
accuracy) and <dataset>_classifier.json (spec, seed, epochs, command, test accuracy, wall time, torch
version, sha256). See ganimate.metrics.classifier for the network and the training recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from ganimate.data import load_dataset
from ganimate.metrics.classifier import (
    REFERENCE_BUDGET,
    REFERENCE_DATASETS,
    NetSpec,
    SmallCNN,
    accuracy,
    sha256_file,
    spec_dict,
    train_classifier,
)

EPOCHS = {"mnist": 4, "fashion-mnist": 10}
TARGET = {"mnist": 0.993, "fashion-mnist": 0.92}
MAX_BYTES = 2_000_000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=REFERENCE_DATASETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "ganimate" / "weights"))
    p.add_argument("--epochs", type=float, default=None, help="default: 4 for mnist, 10 for fashion-mnist")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default: the usual lookup)")
    args = p.parse_args(argv)

    epochs = args.epochs if args.epochs is not None else EPOCHS[args.dataset]
    train = load_dataset(args.dataset, "train", data_dir=args.data_dir)
    test = load_dataset(args.dataset, "test", data_dir=args.data_dir)
    spec = NetSpec(channels=train.channels, image_size=train.image_size, num_classes=train.num_classes)
    budget = dataclasses.replace(REFERENCE_BUDGET, epochs=epochs)
    start = time.perf_counter()
    model = train_classifier(train.images, train.labels, spec, budget, seed=args.seed, log=print)
    seconds = time.perf_counter() - start
    acc = accuracy(model, test.images, test.labels)
    print(f"{args.dataset}: test accuracy {acc:.4f} after {epochs:g} epochs in {seconds:.0f}s")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{args.dataset}_classifier.safetensors"
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    dtype, stored_acc = "float32", acc
    if weights.stat().st_size > MAX_BYTES:
        save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(weights))
        reloaded = SmallCNN(spec)
        reloaded.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in state.items()})
        dtype, stored_acc = "float16", accuracy(reloaded.eval(), test.images, test.labels)
        print(f"stored as float16: test accuracy {stored_acc:.4f}")
        if stored_acc < acc - 0.001:
            print("float16 loses more than 0.1% accuracy", file=sys.stderr)
            return 1
    weights.chmod(0o644)  # safetensors writes 0600; package data must be readable by all
    info = {
        "dataset": args.dataset,
        "spec": spec_dict(spec),
        "input": "uint8 (N, C, H, W) in 0..255, scaled to [-1, 1] inside the model",
        "feature_layer": f"dense {spec.feature_dim} + ReLU (penultimate)",
        "seed": args.seed,
        "epochs": epochs,
        "budget": dataclasses.asdict(budget),
        "train_images": len(train),
        "command": "python scripts/train_reference.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "test_accuracy": round(stored_acc, 6),
        "target_accuracy": TARGET[args.dataset],
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": dtype,
        "bytes": weights.stat().st_size,
        "sha256": sha256_file(weights),
    }
    (out / f"{args.dataset}_classifier.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {weights} ({info['bytes']:,} bytes, sha256 {info['sha256'][:12]}...)")
    if stored_acc < TARGET[args.dataset]:
        print(f"below the target accuracy {TARGET[args.dataset]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
