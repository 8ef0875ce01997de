"""What restoration training, `restore apply` and `restore evaluate` share: the data splits, G's input and
restoring observations with a trained generator, loaded from a run folder alone."""

from __future__ import annotations

from pathlib import Path

import torch

from ganimate.checkpoint import load_checkpoint, resolve_checkpoint
from ganimate.errors import GanimateError
from ganimate.restore.config import RestoreTrainConfig, read_run_config
from ganimate.restore.degrade import to_full
from ganimate.restore.model import build_restore_models
from ganimate.runtime import autocast

VAL_SEED = 777  # degradations of the fixed validation images (grids, validation PSNR, baseline tuning)


def load_split(cfg: RestoreTrainConfig, split: str, log=print) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images (N, C, H, W) and labels of a split; for "train" / "val" the held-out cut is applied."""
    from ganimate.data import load_dataset

    ds = load_dataset(cfg.dataset, "test" if split == "test" else "train", data_dir=cfg.data_dir,
                      image_size=cfg.image_size or None, channels=cfg.channels or None, log=log)
    images, labels = ds.images, ds.labels
    if split != "test":
        if len(images) <= cfg.val_size:
            raise GanimateError(f"--val-size {cfg.val_size} leaves no training images "
                                f"({cfg.dataset} has {len(images)})")
        cut = slice(None, -cfg.val_size) if split == "train" else slice(-cfg.val_size, None)
        images, labels = images[cut], None if labels is None else labels[cut]
    return images, labels


def model_input(obs: torch.Tensor, image_size: int) -> torch.Tensor:
    """Observations in [0, 1] -> G's input: full size, in [-1, 1]."""
    return to_full(obs, image_size) * 2 - 1


@torch.no_grad()
def restore(G, obs: torch.Tensor, image_size: int, batch_size: int = 500, precision: str = "fp32") -> torch.Tensor:
    """Observations (N, C, h, w) in [0, 1] -> restored float (N, C, H, W) in [0, 1] by G in eval mode."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    out = []
    for i in range(0, len(obs), batch_size):
        with autocast(device, precision):
            y = G(model_input(obs[i : i + batch_size].to(device), image_size))
        out.append((y.float().cpu() + 1) / 2)
    G.train(was_training)
    return torch.cat(out).clamp_(0, 1)


def load_restorer(run_dir: str | Path, checkpoint: str | None = None, device: str = "cpu"):
    """A restoration run's EMA generator in eval mode and its config, rebuilt from the checkpoint alone;
    plus the checkpoint's step and training seconds: (G, cfg, step, elapsed_s)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanimateError(f"run folder {run_dir} does not exist")
    run_cfg = read_run_config(run_dir)  # a run of `ganimate train` is refused here with a clear message
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    cfg = RestoreTrainConfig.from_dict(state["config"])
    if run_cfg.degradation.describe() != cfg.degradation.describe():
        raise GanimateError(f"{path} was trained for {cfg.degradation.describe()}, but {run_dir} is a run for "
                            f"{run_cfg.degradation.describe()}: use a checkpoint of this run")
    G, _ = build_restore_models(cfg)
    try:
        G.load_state_dict(state["G_ema"])
    except (RuntimeError, TypeError, KeyError) as e:
        reason = str(e).splitlines()[0][:100]
        raise GanimateError(f"checkpoint of {run_dir} does not fit its config ({reason})") from None
    return G.to(device).eval(), cfg, state["step"], state.get("elapsed_s", 0.0)
