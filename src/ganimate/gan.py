"""The state every GAN trainer shares: G, D, G's exponential moving average, both Adam optimizers and
the noise generator; EMA updates and batch-norm re-estimation for the EMA copy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ganimate import losses
from ganimate.errors import GanimateError


def d_update(D, opt_D, real: tuple, fake: tuple, amp,
             on_real_logits: Callable[[torch.Tensor], None] | None = None) -> dict[str, torch.Tensor | float]:
    """One step of D with the non-saturating BCE on logits: `real` and `fake` are D's arguments (the fake
    already detached from G; augmented, where the trainer augments, by the caller), `amp` the autocast
    context, `on_real_logits` a callable that receives D's logits on the reals (ADA's overfitting signal).
    Returns detached loss_d, D(x) and D(G(z)), and `skipped` 1.0 when the loss was not finite and the step
    was left out (the divergence guard)."""
    with amp():
        real_logits, fake_logits = D(*real).float(), D(*fake).float()
    if on_real_logits is not None:
        on_real_logits(real_logits.detach())
    loss_d = losses.d_loss(real_logits, fake_logits)
    skipped = not g_update(opt_D, loss_d)
    return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(), "skipped": float(skipped)}


def g_update(opt, loss: torch.Tensor) -> bool:
    """One optimiser step on `loss`, unless it is not finite (NaN or inf): then no step, and False."""
    opt.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return False
    loss.backward()
    opt.step()
    return True


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (BN stats) copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA decay after `step` optimiser steps: ramps up as (1 + step) / (10 + step) towards `decay`."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def recompute_bn_stats(model: torch.nn.Module, batches) -> None:
    """Re-estimate the running mean and variance of model's batch-norm layers as the plain average over
    `batches` (tuples of forward arguments). For an EMA copy: its averaged weights do not match the
    statistics copied from the trained model."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for args in batches:
        model(*args)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


@dataclass
class GanState:
    """What a GAN run checkpoints and resumes from: G, D, G's moving average, both Adam optimizers and
    the noise generator. Every trainer holds one."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    noise: torch.Generator

    @classmethod
    def create(cls, G, D, *, lr_g: float, lr_d: float, betas: tuple[float, float], seed: int,
               ema: bool = True) -> GanState:
        G_ema = copy.deepcopy(G).eval().requires_grad_(False) if ema else None
        return cls(G, D, G_ema, torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas),
                   torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas), torch.Generator().manual_seed(seed + 1))

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator samples, grids and evaluations use: the EMA copy where there is one."""
        return self.G_ema if self.G_ema is not None else self.G

    def finite(self) -> bool:
        """Whether every weight and buffer of G, D and G_ema is finite (a checkpoint must never hold NaN)."""
        modules = [m for m in (self.G, self.D, self.G_ema) if m is not None]
        return all(bool(torch.isfinite(t).all()) for m in modules for t in [*m.parameters(), *m.buffers()]
                   if t.is_floating_point())

    def update_ema(self, step: int, decay: float) -> None:
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay_at(step, decay))

    def to(self, device: torch.device) -> None:
        """Move the networks, and the optimizer state with its parameters."""
        for module in (self.G, self.D, self.G_ema):
            if module is not None:
                module.to(device)
        for opt in (self.opt_G, self.opt_D):
            for s in opt.state.values():
                for k, v in s.items():
                    if torch.is_tensor(v) and k != "step":
                        s[k] = v.to(device)

    def state_dict(self, device: torch.device) -> dict:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "noise": self.noise.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None},
        }

    def load_state_dict(self, state: dict, source: Path, device: torch.device) -> tuple[int, float]:
        """Restore a checkpoint's training state; returns (step, elapsed seconds)."""
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["G_ema"])
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
            self.noise.set_state(state["rng"]["noise"])
            torch.set_rng_state(state["rng"]["torch"])
            step, elapsed = state["step"], state.get("elapsed_s", 0.0)
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
            reason = str(e).splitlines()[0][:100]
            raise GanimateError(f"{source} does not fit the run's config.json ({reason})") from None
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return step, elapsed

    def resume(self, state: dict | None, source: Path | None, device: torch.device, total: int,
               more: str) -> tuple[int, float]:
        """(step, elapsed seconds) to start from: (0, 0) for a new run, else the checkpoint's, refusing a run
        that already reached `total` steps (`more`: the options that raise it)."""
        if state is None:
            return 0, 0.0
        step, elapsed = self.load_state_dict(state, source, device)
        if step >= total:
            raise GanimateError(f"{source.parent.parent} is already at step {step:,} of {total:,}: "
                                f"raise {more} to train on")
        return step, elapsed
