"""Where and how tensors are computed: the device, the precision (fp32, or bf16 / fp16 autocast) and its context,
and the loss scaler fp16 needs (Micikevicius et al. 2018, "Mixed Precision Training")."""

from __future__ import annotations

from pathlib import Path

import torch

from ganimate.errors import GanimateError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; anything else must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GanimateError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanimateError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GanimateError(f"--device {name}: MPS is not available on this machine")
    return device


def resolve_precision(precision: str, device: torch.device, cpu_bf16: bool = True) -> str:
    """auto -> bf16 where `device` computes it natively (on a CPU only when `cpu_bf16`), else fp16 on a CUDA GPU (a T4
    or V100: tensor cores, with loss scaling), else fp32; fp32 / bf16 / fp16 stay."""
    if precision != "auto":
        return precision
    if native_bf16(device) and (cpu_bf16 or device.type != "cpu"):
        return "bf16"
    return "fp16" if device.type == "cuda" else "fp32"


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 runs natively here: a CUDA GPU that supports it, or an x86 CPU with
    AVX-512 BF16 or AMX (elsewhere oneDNN emulates bf16, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_memory_format(memory_format: str, device: torch.device, precision: str, arch: str = "") -> str:
    """auto -> channels_last where oneDNN's channels-last kernels were measured faster than contiguous tensors
    (bench/RESULTS.md, "Channels-last"): fp32 training on a CPU with AVX-512 (the tutorial pair 1.14x, the paper
    pair 1.56x, the fast preset 1.10x), and bf16 training of the paper pair on an AVX-512 BF16 CPU (1.43x; there the
    fast preset gains nothing and the tutorial pair runs 0.95x, so they stay contiguous). Contiguous elsewhere (AVX2
    CPUs and GPUs not measured). contiguous / channels_last stay."""
    if memory_format != "auto":
        return memory_format
    if device.type == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512":
        if precision == "fp32" or (precision == "bf16" and arch == "paper"):
            return "channels_last"
    return "contiguous"


def autocast(device: torch.device | str, precision: str):
    """Autocast to bfloat16 or float16 on `device` for precision "bf16" / "fp16"; "fp32" computes in float32.
    Losses, weights and optimizer state stay fp32 either way."""
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler for fp16 (float16's narrow range underflows small gradients), else None. Each
    optimizer needs its own: G's and D's gradients differ in scale."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to 32 MiB come from the heap, larger ones are mapped
TRIM_THRESHOLD = 1 << 30  # free memory the heap keeps at its top before giving it back


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next tensor instead of giving it back to the system.

    A training step frees and allocates the same large activations every step. By default glibc hands the top of
    its heap back to the kernel and takes it again, and every fresh page is a page fault the kernel zeroes: on a
    2-core machine about 30,000 faults and a sixth of the step for the tutorial pair at batch 256 in bf16
    (bench/RESULTS.md). Raising the mmap threshold to its maximum (32 MiB) and the trim threshold to 1 GiB keeps
    that memory in the process, at the price of a resident size that stays near its peak. Both are needed: either
    alone leaves the faults, or makes them worse. `ganimate` calls this once at start; the benches too, so they
    time what the CLI runs.

    Only on Linux with glibc, and not when the user set glibc's own MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
    or GANIMATE_MALLOC=system. Returns whether the setting was made."""
    import ctypes
    import os
    import platform

    if (os.environ.get("GANIMATE_MALLOC", "") == "system" or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or "MALLOC_TRIM_THRESHOLD_" in os.environ or platform.system() != "Linux"
            or platform.libc_ver()[0] != "glibc"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
