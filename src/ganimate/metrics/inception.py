"""`ganimate evaluate --fid inception`: the standard Inception FID (Heusel et al. 2017) and KID (Bińkowski et
al. 2018) through torch-fidelity (Obukhov et al.), so numbers compare with papers: the n generated images
against the whole training set (a folder: all of it), both at the run's image format, grey repeated to RGB.

torch-fidelity is an optional extra (``pip install 'ganimate[inception]'``) and its Inception weights
(TensorFlow's 2015-12-05 Inception graph, converted by torch-fidelity) come from the internet on first use, into torch
hub's checkpoint folder. Where either is missing, `problem` says so in one line and evaluate goes on without
these numbers (exit 0): the run's other metrics still stand. The weights file is checked to hold only tensors
(torch.load with weights_only=True) before torch-fidelity reads it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch

from ganimate.metrics.registry import Row

WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
DOWNLOAD_TIMEOUT_S = 30.0


def weights_path() -> Path:
    """Where torch-fidelity keeps (and looks for) its Inception weights: torch hub's checkpoints folder."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def problem() -> str | None:
    """Why the Inception FID / KID cannot be computed here (one line), or None; fetches the weights if missing."""
    try:
        import torch_fidelity  # noqa: F401
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    except ImportError as e:
        return f"torch-fidelity is not installed (pip install 'ganimate[inception]'): {_one_line(e)}"
    path = weights_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        before = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(path), progress=False)
        except Exception as e:
            return (f"the Inception weights are not available without internet (download failed: {_one_line(e)}); "
                    f"put {WEIGHTS} into {path.parent}")
        finally:
            socket.setdefaulttimeout(before)
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        return f"{path} is not a plain weights file ({_one_line(e)}): delete it to download it again"
    return None


class _Images(torch.utils.data.Dataset):
    """uint8 (N, C, H, W) images as torch-fidelity's input: uint8 (3, H, W) each."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i]  # (C, H, W)
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def inception_scores(generated: torch.Tensor, reals: torch.Tensor, device: str = "cpu", seed: int = 0) -> dict:
    """{"fid_inception", "kid_inception", "kid_inception_std", "inception_real_n"} of uint8 images (N, C, H, W);
    call only when `problem()` is None."""
    import torch_fidelity

    subset = min(1000, len(generated), len(reals))
    out = torch_fidelity.calculate_metrics(
        input1=_Images(generated.cpu()), input2=_Images(reals.cpu()), cuda=str(device).startswith("cuda"),
        fid=True, kid=True, kid_subset_size=subset, feature_extractor_weights_path=str(weights_path()),
        cache=False, verbose=False, rng_seed=seed,
    )
    return {"fid_inception": float(out["frechet_inception_distance"]),
            "kid_inception": float(out["kernel_inception_distance_mean"]),
            "kid_inception_std": float(out["kernel_inception_distance_std"]), "inception_real_n": len(reals)}


def rows(r: dict) -> list[Row]:
    """Table rows of the Inception numbers of an evaluation record ([] without them)."""
    if "fid_inception" not in r:
        return []
    return [Row("fid inception", f"{r['fid_inception']:.3f}", f"torch-fidelity, {r['n']} samples vs "
                f"{r['inception_real_n']} training images"),
            Row("kid inception", f"{r['kid_inception']:.5f}", f"± {r['kid_inception_std']:.5f}")]
