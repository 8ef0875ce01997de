"""The state every GAN trainer shares: G, D, G's exponential moving average, both Adam optimizers, the noise
generator, the precision (and fp16's loss scalers) and, under torchrun, the DDP wrappers a step calls; EMA
updates and batch-norm re-estimation for the EMA copy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganimate import losses
from ganimate.distributed import World, data_parallel, no_sync
from ganimate.errors import GanimateError
from ganimate.runtime import autocast, grad_scaler

R1_EVERY = 16  # D steps between two R1 penalties (lazy regularisation, Karras et al. 2020)


def d_update(gan: GanState, real: tuple, fake: tuple,
             on_real_logits: Callable[[torch.Tensor], None] | None = None,
             consistency: tuple[float, Callable[[torch.Tensor], torch.Tensor]] | None = None,
             ) -> dict[str, torch.Tensor | float]:
    """One step of D with the GAN loss (gan.loss) on logits: `real` and `fake` are D's arguments (the fake
    already detached from G; augmented, where the trainer augments, by the caller), `on_real_logits` a callable
    that receives D's logits on the reals (ADA's overfitting signal). With gan.r1 > 0, every R1_EVERY-th step adds
    the R1 penalty (Mescheder et al. 2018) r1 / 2 * |grad_x D(x)|^2 on the reals, times R1_EVERY. `consistency`
    (weight, T) adds balanced consistency regularisation (bCR, Zhao et al. 2021): weight * the mean squared
    difference of D's logits on an image and on T(image), over the reals and the fakes. Returns
    detached loss_d, D(x) and D(G(z)), and `skipped` 1.0 when the loss was not finite (or fp16's gradients
    overflowed) and the step was left out."""
    penalise = gan.r1 > 0 and gan.d_steps % R1_EVERY == 0
    gan.d_steps += 1
    if penalise:
        real = (real[0].detach().requires_grad_(True), *real[1:])
    with gan.amp():
        real_logits, fake_logits = gan.D_step(*real).float(), gan.D_step(*fake).float()
        if consistency is not None:
            transform = consistency[1]
            moved = gan.D_step(transform(real[0]), *real[1:]).float(), gan.D_step(transform(fake[0]), *fake[1:]).float()
    if on_real_logits is not None:
        on_real_logits(real_logits.detach())
    loss_d = losses.d_loss(real_logits, fake_logits, gan.loss)
    stats = {}
    if penalise:
        (grad,) = torch.autograd.grad(real_logits.sum(), real[0], create_graph=True)  # (B, C, H, W)
        penalty = grad.float().square().flatten(1).sum(1).mean()
        loss_d = loss_d + gan.r1 / 2 * R1_EVERY * penalty
        stats["r1"] = penalty.detach()
    if consistency is not None:
        cr = (moved[0] - real_logits).square().mean() + (moved[1] - fake_logits).square().mean()
        loss_d = loss_d + consistency[0] * cr
        stats["consistency"] = cr.detach()
    skipped = not gan.step_D(loss_d)
    return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(), "skipped": float(skipped), **stats}


def g_update(opt, loss: torch.Tensor, scaler: torch.amp.GradScaler | None = None, world: World | None = None) -> bool:
    """One optimiser step on `loss`, unless it is not finite (NaN or inf; on any rank, so all ranks skip
    together): then no step, and False. With fp16's `scaler` the loss is scaled, and a step whose gradients
    overflowed is left out by the scaler (which lowers its scale): also False."""
    opt.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss))
    if world is not None and world.active:
        finite = not world.any([not finite], loss.device)[0]
    if not finite:
        return False
    # Only this optimiser's weights get gradients: G's loss flows back through D, and D's weight gradients,
    # which the next D step would drop unread, are then not computed at all.
    params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
    if scaler is None:
        loss.backward(inputs=params)
        opt.step()
        return True
    scale = scaler.get_scale()
    scaler.scale(loss).backward(inputs=params)
    scaler.step(opt)
    scaler.update()
    return scaler.get_scale() >= scale


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
    """What a GAN run checkpoints and resumes from (G, D, G's moving average, both Adam optimizers, the noise
    generator, fp16's loss scalers) and how its steps compute (precision, `G_step` / `D_step`: the networks a
    training step calls, G and D themselves or, under torchrun, their DDP wrappers). Every trainer holds one."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    noise: torch.Generator
    precision: str = "fp32"
    loss: str = "bce"  # losses.LOSSES
    r1: float = 0.0  # the R1 penalty's weight (0: none)
    d_steps: int = 0  # D's steps so far (the R1 schedule)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    scaler_G: torch.amp.GradScaler | None = None
    scaler_D: torch.amp.GradScaler | None = None
    world: World = field(default_factory=World)
    G_step: torch.nn.Module | None = None
    D_step: torch.nn.Module | None = None
    base_lr: tuple[float, float] = field(init=False)  # (G, D): the optimisers' rates as built; `scale_lr` scales them

    def __post_init__(self):
        self.G_step = self.G_step or self.G
        self.D_step = self.D_step or self.D
        self.base_lr = (self.opt_G.param_groups[0]["lr"], self.opt_D.param_groups[0]["lr"])

    def scale_lr(self, factor: float) -> None:
        """Set both optimisers' learning rates to `factor` times the run's own (a checkpoint's saved rates are
        not the run's: the schedule sets them before every step)."""
        for opt, lr in zip((self.opt_G, self.opt_D), self.base_lr, strict=True):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    @classmethod
    def create(cls, G, D, *, lr_g: float, lr_d: float, betas: tuple[float, float], seed: int,
               ema: bool = True, precision: str = "fp32", device: torch.device | None = None,
               loss: str = "bce", r1: float = 0.0) -> GanState:
        """Fresh state on `device` (CPU by default) computing in `precision` (fp32 | bf16 | fp16, resolved) with
        the GAN loss `loss` (bce | hinge) and the R1 penalty's weight `r1`."""
        device = device or torch.device("cpu")
        G_ema = copy.deepcopy(G).eval().requires_grad_(False) if ema else None
        gan = cls(G, D, G_ema, torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas),
                  torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas), torch.Generator().manual_seed(seed + 1),
                  precision=precision, loss=loss, r1=r1, device=device, scaler_G=grad_scaler(device, precision),
                  scaler_D=grad_scaler(device, precision))
        gan.to(device)
        return gan

    def amp(self):
        """The autocast context of a forward pass in this run's precision."""
        return autocast(self.device, self.precision)

    def step_G(self, loss: torch.Tensor) -> bool:
        """G's optimiser step on `loss` (see `g_update`); call it inside `g_pass()`."""
        return g_update(self.opt_G, loss, self.scaler_G, self.world)

    def step_D(self, loss: torch.Tensor) -> bool:
        return g_update(self.opt_D, loss, self.scaler_D, self.world)

    def g_pass(self):
        """The context of G's loss and update: the gradients G's loss leaves in D are dropped (D's next step
        zeroes them first), so under torchrun they are not averaged over the processes."""
        return no_sync(self.D_step)

    def distribute(self, world: World, sync_bn: bool) -> None:
        """Train in `world`: G and D wrapped in DDP (batch norm synchronised with sync_bn); G_ema stays a plain
        copy, the same on every rank since every rank averages the same G."""
        self.world = world
        self.G_step = data_parallel(self.G, world, self.device, sync_bn)
        self.D_step = data_parallel(self.D, world, self.device, sync_bn)

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
        self.device = device
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
            **{f"scaler_{k}": s.state_dict() for k, s in (("G", self.scaler_G), ("D", self.scaler_D)) if s is not None},
            "d_steps": self.d_steps,
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
            for key, scaler in (("scaler_G", self.scaler_G), ("scaler_D", self.scaler_D)):
                if scaler is not None and state.get(key):  # a run trained in another precision starts a fresh scale
                    scaler.load_state_dict(state[key])
            step, elapsed = state["step"], state.get("elapsed_s", 0.0)
            self.d_steps = int(state.get("d_steps", step))
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
            reason = str(e).splitlines()[0][:100]
            raise GanimateError(f"{source} does not fit the run's config.json ({reason})") from None
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return step, elapsed

    def load_weights(self, state: dict, source: Path) -> None:
        """Only the networks of a checkpoint (`--init-from`): the optimisers, noise and step start afresh. A
        checkpoint without a moving average gives G's weights to it."""
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state.get("G_ema") or state["G"])
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
            reason = str(e).strip().splitlines()[0][:160]
            raise GanimateError(f"--init-from {source}: its networks do not fit this run's ({reason})") from None

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
