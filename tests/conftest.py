"""Shared test settings: CPU, two threads, tiny configs that train in seconds."""

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parents[1]
REAL_DATA = os.environ.get("GANIMATE_DATA", "")  # read before any test fixture edits the environment


def tiny_config(tmp_path, **overrides):
    from ganimate.config import TrainConfig

    settings = dict(
        dataset="synthetic", out=str(tmp_path / "run"), z_dim=16, g_width=32, d_width=8,
        batch_size=50, epochs=1, max_steps=6, log_every=2, device="cpu", progress=False, report=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """A cache folder of this test session (decoded folders, real-data statistics, reference networks), so tests
    neither read a stale cache nor leave files in the user's ~/.cache; a test may point GANIMATE_CACHE elsewhere."""
    before = os.environ.get("GANIMATE_CACHE")
    os.environ["GANIMATE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("GANIMATE_CACHE", None)
    else:
        os.environ["GANIMATE_CACHE"] = before


@pytest.fixture
def tiny(tmp_path):
    return lambda **kw: tiny_config(tmp_path, **kw)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models, which run faster on one thread than on two that wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(*args, cwd=None, env=None, timeout=300):
    """Run the installed CLI in a subprocess (python -m ganimate.cli) and capture its output."""
    import subprocess

    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ganimate.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=timeout)


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `ganimate ARGS` in this process (main(), seconds faster than a subprocess that imports torch):
    a CompletedProcess with returncode, stdout and stderr. `env` sets variables for the call."""
    import subprocess

    from ganimate.cli import main

    def call(*args, env=None):
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            capsys.readouterr()
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # --help, --version
                code = e.code
            out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def real_data(monkeypatch) -> Path:
    """$GANIMATE_DATA holding the real MNIST and Fashion-MNIST: missing data fails in CI, skips elsewhere."""
    root = REAL_DATA
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    if not root:
        problem = "GANIMATE_DATA is not set"
    else:
        missing = [f"{d}/{n}" for d in ("mnist", "fashion-mnist") for n in names if not Path(root, d, n).is_file()]
        problem = f"missing in GANIMATE_DATA={root}: {', '.join(missing)}" if missing else None
    if problem:
        if in_ci():
            pytest.fail(f"the real datasets are required in CI: {problem}")
        pytest.skip(problem)
    monkeypatch.setenv("GANIMATE_DATA", str(Path(root).resolve()))
    return Path(root)
