"""Training on several processes: `torchrun --nproc-per-node N -m ganimate train ...` runs one process per GPU
(or several on a CPU) with PyTorch's DistributedDataParallel (Li et al. 2020, "PyTorch Distributed").

A `World` is this process's place in the job: its rank, the number of processes, its device, and the few
collectives the engine needs (agreeing on a flag, broadcasting rank 0's answer, summing a tensor). Outside
torchrun it is the one-process world, whose collectives do nothing, so the engine has one code path.

The engine keeps every rank identical and rank 0 the only writer:
- every rank builds the global batch's indices and noise from the same seeded generators and keeps its
  own rows (`World.rows`), so N processes see exactly the data and noise one process would, the order of a
  resumed run continues whatever the number of processes, and the checkpoint of rank 0 is every rank's;
- gradients are averaged by DDP; batch norm takes its statistics over the global batch (`SyncBatchNorm`
  below, on any device, gloo or NCCL), so a synchronised run computes what one process computes on the
  same global batch, up to the order of floating-point sums;
- rank 0 alone opens the run folder, logs, samples, evaluates and checkpoints; a refusal there (a run
  folder in the way, a checkpoint that does not fit) reaches every rank as the same one-line error.
"""

from __future__ import annotations

import datetime
import faulthandler
import inspect
import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ganimate.errors import GanimateError

T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one of several started by torchrun (or another launcher that sets its
    variables). A job of one process trains as a plain one: no process group, no wrappers."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


class World:
    """This process's rank among `size` processes (the one-process world: rank 0 of 1, no process group)."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0, backend: str | None = None):
        self.rank, self.size, self.local_rank, self.backend = rank, size, local_rank, backend

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run folder."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.backend is not None

    def describe(self) -> str:
        return f"process {self.rank} of {self.size} ({self.backend})" if self.active else "one process"

    def rows(self, batch: T) -> T:
        """This rank's share of a global batch (a tensor, or a tuple of tensors and Nones, batch first)."""
        if self.size == 1:
            return batch
        if isinstance(batch, tuple):
            return tuple(self.rows(b) if b is not None else None for b in batch)
        n = len(batch) // self.size
        return batch[self.rank * n : (self.rank + 1) * n]

    def local_batch(self, global_batch: int) -> int:
        """The batch of each process: the global batch split evenly, or a one-line error."""
        if global_batch % self.size:
            raise GanimateError(f"--batch-size {global_batch} is the global batch and must divide evenly among "
                                f"{self.size} processes")
        return global_batch // self.size

    def any(self, flags: list[bool], device: torch.device) -> list[bool]:
        """Each flag true on any rank (so every rank stops, skips or saves at the same step)."""
        if not self.active:
            return flags
        t = torch.tensor([float(f) for f in flags], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of `t` over ranks (in place, returned)."""
        if self.active:
            dist.all_reduce(t)
        return t

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 and give every rank its result; a `GanimateError` there is raised on every rank."""
        if not self.active:
            return fn()
        box: list[Any] = [None]
        error = None
        if self.main:
            try:
                box = [("ok", fn())]
            except GanimateError as e:
                error, box = e, [("error", str(e))]
        dist.broadcast_object_list(box, src=0)
        if error is not None:
            raise error
        kind, value = box[0]
        if kind == "error":
            raise GanimateError(value)
        return value

    def same_everywhere(self, value: Any, what: str) -> None:
        """Refuse a run whose ranks disagree on `value` (e.g. the training data's fingerprint): `what` names it."""
        if not self.active:
            return
        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise GanimateError(f"{what} differs between process 0 and process {differ[0]}: every process must "
                                f"train on the same data and settings")

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self, together: bool = False) -> None:
        """Leave the process group. With `together` (a clean finish) every rank first waits for the others, so
        that no rank tears its connections down while rank 0 still writes its last checkpoint and report; after a
        failure a rank leaves at once (the others may be gone)."""
        if not (self.active and dist.is_initialized()):
            return
        if together:
            try:
                self.barrier()
            except (RuntimeError, dist.DistError):
                pass  # another rank failed on its own: its error is the one to report
        dist.destroy_process_group()


def init_world(device_name: str, timeout_minutes: float) -> tuple[World, torch.device | None]:
    """The world of this process and, under torchrun, its device: NCCL with the GPU of its LOCAL_RANK when
    `device_name` is auto or cuda and a GPU is there, else gloo on the CPU. Outside torchrun: (World(), None),
    and the caller resolves the device as usual."""
    if not launched():
        return World(), None
    faulthandler.enable()  # a process killed by a signal (an abort in a collective) prints where it was
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device_name not in ("auto", "cpu", "cuda"):
        raise GanimateError(f"--device {device_name}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                            f"use --device cuda, cpu or auto")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise GanimateError("--device cuda: CUDA is not available on this machine")
    gpu = device_name != "cpu" and torch.cuda.is_available()
    if gpu:
        if local_rank >= torch.cuda.device_count():
            raise GanimateError(f"process {rank} has LOCAL_RANK {local_rank} but this machine has "
                                f"{torch.cuda.device_count()} GPU(s): start at most that many per node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = "nccl" if gpu else "gloo"
    timeout = datetime.timedelta(minutes=timeout_minutes)
    kwargs = {"device_id": device} if gpu else {}
    try:
        dist.init_process_group(backend, rank=rank, world_size=size, timeout=timeout, **kwargs)
    except (RuntimeError, ValueError) as e:
        raise GanimateError(f"process {rank} of {size} could not join the others ({first_line(e)})") from None
    return World(rank, size, local_rank, backend), device


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def is_collective_failure(e: BaseException) -> bool:
    """Whether `e` is a collective that timed out or lost a peer (a rank died or hung)."""
    if isinstance(e, dist.DistError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(k in text for k in ("Gloo", "gloo", "NCCL", "Connection closed",
                                                                   "Timed out", "timed out"))


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over ranks, differentiable: the gradient of each rank's input is the sum of the
    gradients of the output over ranks."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch across all processes (one
    differentiable all-reduce of the sums and the sums of squares, in float64), on any device and backend. Eval mode,
    and a process outside a process group, behave as `nn.BatchNorm`. Its parameters and buffers are the
    batch norm's own, so checkpoints are the same with or without it."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = (1, c) + (1,) * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([x.numel() // c], device=x.device, dtype=torch.float64)
        # one all-reduce of the sums and sums of squares, in float64 so that E[x^2] - E[x]^2 keeps its digits
        sums = _SumOverRanks.apply(torch.cat([xf.sum(dims).double(), xf.square().sum(dims).double(), count]))
        n = sums[2 * c]
        mean = sums[:c] / n  # (C,)
        var = (sums[c : 2 * c] / n - mean.square()).clamp(min=0)  # (C,) biased, as batch norm normalises
        centred = xf - mean.float().view(shape)
        mean, var = mean.float(), var.float()
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * (n / (n - 1).clamp(min=1)).float(), m)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with each batch-norm layer replaced by `SyncBatchNorm` sharing its parameters and buffers."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, sync_batchnorm(child))
    return module


def data_parallel(module: nn.Module, world: World, device: torch.device, sync_bn: bool) -> nn.Module:
    """`module` wrapped for training in `world`: DDP (gradients averaged over ranks), batch norm synchronised
    with sync_bn; the module itself in the one-process world."""
    if not world.active:
        return module
    if sync_bn:
        module = sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    # without synchronised batch norm, rank 0's running statistics are copied to the others at each forward pass
    ddp = nn.parallel.DistributedDataParallel
    newer = "forward_sync_buffers" in inspect.signature(ddp).parameters  # broadcast_buffers's new name
    return ddp(module, device_ids=ids, **{"forward_sync_buffers" if newer else "broadcast_buffers": not sync_bn})


def no_sync(module: nn.Module):
    """A context in which `module`'s gradients are not averaged over ranks (DDP's no_sync; else nothing)."""
    return module.no_sync() if isinstance(module, nn.parallel.DistributedDataParallel) else nullcontext()
