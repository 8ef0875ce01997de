"""Shared test settings: CPU, two threads, tiny configs that train in seconds."""

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path, **overrides):
    from ganimate.config import TrainConfig

    settings = dict(
        dataset="synthetic", out=str(tmp_path / "run"), z_dim=16, g_width=32, d_width=8,
        batch_size=50, epochs=1, max_steps=6, log_every=2, device="cpu", progress=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture
def tiny(tmp_path):
    return lambda **kw: tiny_config(tmp_path, **kw)


def run_cli(*args, cwd=None, env=None, timeout=300):
    """Run the installed CLI in a subprocess (python -m ganimate.cli) and capture its output."""
    import subprocess

    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ganimate.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=timeout)
