"""`ganimate train` that also keeps moving averages of G at other decays, to score EMA lengths on one training.

    EXTRA_EMA=0.998,0.9995,0.9998 python bench/extra_ema.py train --preset quality --dataset fashion-mnist \\
        --seed 1 --out runs/ema-s1
    ganimate evaluate runs/ema-s1-ema0.9995 --metrics fd --fd-draws 3

The run trains exactly as a plain `ganimate train` with the same options would (the extra averages never feed back
into training, and its own `--ema-decay` average is the run's as usual). Each extra average follows the same warm-up
ramp (`gan.ema_decay_at`) as the run's. At the end, for each decay D in EXTRA_EMA, RUN-emaD/ gets the run's
config.json and its final checkpoint with G's moving average replaced by that one, ready for `ganimate evaluate`.
Results: bench/RESULTS.md, "The rates decaying over the whole run".
"""

import copy
import os
import sys
from pathlib import Path

import torch

from ganimate import gan
from ganimate.checkpoint import list_checkpoints

DECAYS = [float(d) for d in os.environ.get("EXTRA_EMA", "0.998,0.9995,0.9998").split(",")]
EXTRA: dict[float, torch.nn.Module] = {}
_update_ema = gan.GanState.update_ema


def update_ema_too(self, step, decay):
    _update_ema(self, step, decay)
    if not EXTRA:
        EXTRA.update({d: copy.deepcopy(self.G_ema) for d in DECAYS})
    for d, average in EXTRA.items():
        gan.update_ema(average, self.G, gan.ema_decay_at(step, d))


def write_runs(run: Path) -> None:
    """RUN-emaD/ for each extra decay D: RUN's config and final checkpoint with that moving average as G_ema."""
    last = list_checkpoints(run)[-1]
    state = torch.load(last, weights_only=True, map_location="cpu")
    for d, average in EXTRA.items():
        out = Path(f"{run}-ema{d}")
        dest = out / last.relative_to(run)
        dest.parent.mkdir(parents=True, exist_ok=False)
        (out / "config.json").write_bytes((run / "config.json").read_bytes())
        torch.save({**state, "G_ema": {k: v.cpu() for k, v in average.state_dict().items()}}, dest)
        print("wrote", dest)


if __name__ == "__main__":
    gan.GanState.update_ema = update_ema_too
    from ganimate.cli import main

    rc = main()
    if rc == 0 and EXTRA:
        write_runs(Path(sys.argv[sys.argv.index("--out") + 1]))
    sys.exit(rc)
