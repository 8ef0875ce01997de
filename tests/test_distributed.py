"""Training on several processes (distributed.py, the engine under torchrun) and fp16 with loss scaling.

Two-process jobs run on the CPU with gloo: `torch.multiprocessing` for the tests that look inside the
processes, real `torchrun` for the launcher's behaviour (a rank killed, Ctrl-C).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import tiny_config

from ganimate.checkpoint import list_checkpoints, load_checkpoint
from ganimate.config import TrainConfig
from ganimate.distributed import World
from ganimate.engine import run
from ganimate.errors import GanimateError
from ganimate.gan import g_update
from ganimate.models import build_models
from ganimate.runtime import resolve_precision
from ganimate.train import ImageTask, fit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_world(rank: int, size: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


class DumpTask(ImageTask):
    """The image task, saving this process's G, D and G_ema whenever the engine prepares outputs (so the
    last file holds the weights at the final step)."""

    dump: Path

    def prepare_outputs(self) -> None:
        super().prepare_outputs()
        gan = self.gan
        torch.save({k: {n: t.detach().clone() for n, t in m.state_dict().items()}
                    for k, m in (("G", gan.G), ("D", gan.D), ("G_ema", gan.G_ema))},
                   self.dump / f"rank{self.world.rank if self.world.active else 'single'}.pt")


def train_and_dump(cfg, dump: Path):
    task_cls = type("Task", (DumpTask,), {"dump": dump})
    return run(cfg, task_cls)


def _train_worker(rank: int, size: int, port: int, tmp: str, overrides: dict) -> None:
    join_world(rank, size, port)
    train_and_dump(tiny_config(Path(tmp), **overrides), Path(tmp))


def _bn_worker(rank: int, size: int, port: int, tmp: str) -> None:
    join_world(rank, size, port)
    import torch.distributed as dist

    from ganimate.distributed import sync_batchnorm

    dist.init_process_group("gloo", rank=rank, world_size=size)
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 3 + 1
    bn = sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))
    with torch.no_grad():
        bn[0].weight.copy_(torch.tensor([0.5, 1.5, 2.0]))
    part = x[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
    out = bn(part)
    (out * torch.arange(out.numel()).view_as(out).float().sin()).sum().backward()
    torch.save({"out": out.detach(), "grad": part.grad, "w": bn[0].weight.grad, "b": bn[0].bias.grad,
                "mean": bn[0].running_mean, "var": bn[0].running_var}, Path(tmp) / f"bn{rank}.pt")
    dist.destroy_process_group()


def _silent_peer_worker(rank: int, size: int, port: int, tmp: str) -> None:
    """Rank 0 trains with a 3-second --dist-timeout; rank 1 joins the group and then never answers."""
    join_world(rank, size, port)
    if rank == 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=size)
        time.sleep(20)
        return
    t0 = time.monotonic()
    try:
        run(tiny_config(Path(tmp), dist_timeout=0.05), ImageTask)
        message = "no error"
    except GanimateError as e:
        message = str(e)
    (Path(tmp) / "error.txt").write_text(f"{time.monotonic() - t0:.1f}\n{message}")
    os._exit(0)  # rank 1 is still asleep: leave without the process group's goodbyes


def _close_worker(rank: int, size: int, port: int, tmp: str) -> None:
    """Rank 0 is still busy (writing its last checkpoint) for a second when rank 1 finishes cleanly."""
    join_world(rank, size, port)
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=size)
    world = World(rank, size, rank, "gloo")
    if rank == 0:
        time.sleep(1.0)
    (Path(tmp) / f"close{rank}.txt").write_text(f"{time.time()}")
    world.close(together=True)
    (Path(tmp) / f"closed{rank}.txt").write_text(f"{time.time()}")
    assert not dist.is_initialized()


def spawn(fn, *args, size: int = 2) -> None:
    mp.start_processes(fn, args=(size, free_port(), *args), nprocs=size, start_method="spawn", join=True)


def test_a_clean_finish_leaves_the_process_group_together(tmp_path):
    spawn(_close_worker, str(tmp_path))
    rank0_done = float((tmp_path / "close0.txt").read_text())
    assert float((tmp_path / "closed1.txt").read_text()) >= rank0_done  # rank 1 waited for the busy rank 0


def test_sync_batchnorm_is_one_batch_norm_over_the_global_batch(tmp_path):
    spawn(_bn_worker, str(tmp_path))
    torch.manual_seed(0)
    x = (torch.randn(8, 3, 5, 5) * 3 + 1).requires_grad_(True)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.5, 2.0]))
    out = bn(x)
    weights = torch.cat([torch.arange(4 * 75).view(4, 3, 5, 5).float().sin()] * 2)
    (out * weights).sum().backward()
    parts = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in range(2)]
    torch.testing.assert_close(torch.cat([p["out"] for p in parts]), out.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([p["grad"] for p in parts]), x.grad, atol=1e-5, rtol=1e-5)
    # each process's parameter gradients are its share of the global batch's (DDP adds them up, over 2)
    torch.testing.assert_close(parts[0]["w"] + parts[1]["w"], bn.weight.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(parts[0]["b"] + parts[1]["b"], bn.bias.grad, atol=1e-4, rtol=1e-5)
    for p in parts:  # the running statistics are the global batch's on every process
        torch.testing.assert_close(p["mean"], bn.running_mean, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(p["var"], bn.running_var, atol=1e-5, rtol=1e-5)


def test_two_processes_train_like_one_on_the_same_global_batch(tmp_path):
    # ADA with target 0 raises p from the 4th step on: the augmentation's draws and p must follow one process's too,
    # and so must bCR's shifts (--consistency); fp32, since bf16 (auto on a CPU with AVX-512 BF16) rounds each sum
    # far above the tolerances below
    overrides = dict(max_steps=6, log_every=3, batch_size=20, augment="ada", ada_target=0.0, consistency=1.0,
                     precision="fp32")
    spawn(_train_worker, str(tmp_path / "ddp"), overrides)
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for net in ("G", "D", "G_ema"):  # every process holds exactly the same networks
        for name, t in ranks[0][net].items():
            assert torch.equal(t, ranks[1][net][name]), f"{net}.{name} differs between the processes"

    (tmp_path / "one").mkdir()
    train_and_dump(tiny_config(tmp_path / "one", **overrides), tmp_path / "one")
    single = torch.load(tmp_path / "one" / "ranksingle.pt", weights_only=True)
    # synchronised batch norm makes the computation one process's on the same global batch, up to the order of
    # floating-point sums. Where a weight's exact gradient is zero or nearly so (the bias of a convolution that
    # batch norm follows, the mean direction of the label embedding), Adam turns that rounding noise into steps of
    # up to +-lr, which batch norm then removes again: so nearly every weight agrees to 1e-5, and both networks'
    # training-mode outputs agree to 1e-4.
    diffs = torch.cat([(t - single[net][name]).abs().flatten() for net in ("G", "D", "G_ema")
                       for name, t in ranks[0][net].items() if name.endswith("weight")])
    assert float((diffs <= 1e-5).double().mean()) >= 0.995, diffs.max()
    cfg = TrainConfig.from_dict(json.loads((tmp_path / "one" / "run" / "config.json").read_text()))
    nets = [build_models(cfg) for _ in range(2)]
    for (G, D), weights in zip(nets, (ranks[0], single), strict=True):
        G.load_state_dict(weights["G"]), D.load_state_dict(weights["D"])
    z, y = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(5)), torch.arange(64) % 10
    with torch.no_grad():
        fakes = [G(z, y) for G, _ in nets]
        torch.testing.assert_close(fakes[0], fakes[1], atol=1e-4, rtol=0)
        torch.testing.assert_close(nets[0][1](fakes[1], y), nets[1][1](fakes[1], y), atol=1e-4, rtol=0)

    run_dir = tmp_path / "ddp" / "run"
    log = (run_dir / "log.txt").read_text()
    assert log.count("training to step 6") == 1 and "distributed: 2 processes (gloo), 10 of the global batch" in log
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [3, 6]
    state = load_checkpoint(list_checkpoints(run_dir)[-1])
    assert state["step"] == 6 and "module." not in "".join(state["G"])  # the one-process checkpoint format
    assert state["task"]["augment"]["p"] > 0
    assert all(s["consistency"] > 0 for s in stats)  # bCR charged D on every logged step


def test_a_process_that_stops_answering_ends_the_others_with_one_line_after_the_timeout(tmp_path):
    job = mp.start_processes(_silent_peer_worker, args=(2, free_port(), str(tmp_path)), nprocs=2,
                             start_method="spawn", join=False)
    wait_for(lambda: (tmp_path / "error.txt").exists(), 60, "rank 0's error")
    seconds, message = (tmp_path / "error.txt").read_text().split("\n", 1)
    for p in job.processes:
        p.kill()
    assert "did not answer within --dist-timeout 0.05 min" in message and "\n" not in message
    assert float(seconds) < 30


def torchrun(tmp_path, *args, nproc: int = 2) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--master-port={free_port()}",
           "-m", "ganimate", "train", *map(str, args)]
    return subprocess.Popen(cmd, env=env, stdout=open(tmp_path / "out.txt", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


TRAIN = ("--dataset", "synthetic", "--z-dim", "16", "--g-width", "32", "--d-width", "8", "--batch-size", "20",
         "--log-every", "1", "--checkpoint-every", "4", "--device", "cpu", "--no-progress", "--no-report",
         "--keep-checkpoints", "10", "--epochs", "1000")


def output(tmp_path) -> str:
    """What the launcher and its processes printed, less the config dumps: enough to see which rank failed and why."""
    lines = (tmp_path / "out.txt").read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if not line.startswith('  "'))[-6000:]


def wait_for(predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.2)


def workers(launcher: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    return [int(c) for c in children]


def test_a_killed_rank_stops_the_job_and_the_run_resumes_on_one_process(tmp_path, cli):
    out = tmp_path / "run"
    job = torchrun(tmp_path, *TRAIN, "--out", out, "--max-steps", "100000")
    try:
        wait_for(lambda: len(list_checkpoints(out)) >= 2 or job.poll() is not None, 120, "two checkpoints")
        assert job.poll() is None, output(tmp_path)
        os.kill(workers(job)[1], signal.SIGKILL)
        t0 = time.monotonic()
        code = job.wait(timeout=60)  # the launcher notices and stops the other process
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert code != 0 and time.monotonic() - t0 < 60
    last = load_checkpoint(list_checkpoints(out)[-1])  # whole, loadable
    r = cli("train", "--out", out, "--resume", "--max-steps", last["step"] + 4, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"resuming {out}" in r.stdout and load_checkpoint(list_checkpoints(out)[-1])["step"] == last["step"] + 4


def test_ctrl_c_on_torchrun_checkpoints_and_two_processes_resume_where_one_stopped(tmp_path):
    out = tmp_path / "run"
    job = torchrun(tmp_path, *TRAIN, "--out", out, "--max-steps", "100000")
    try:
        wait_for(lambda: len(list_checkpoints(out)) >= 1 or job.poll() is not None, 120, "a checkpoint")
        os.killpg(job.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the launcher and its workers
        code = job.wait(timeout=60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert code != 0
    stopped = load_checkpoint(list_checkpoints(out)[-1])["step"]
    assert f"interrupted at step {stopped:,}" in (out / "log.txt").read_text()

    job = torchrun(tmp_path, "--out", out, "--resume", "--max-steps", stopped + 3)
    assert job.wait(timeout=120) == 0, output(tmp_path)
    stats = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert stats == list(range(1, stopped + 4))  # the records continue, none lost or repeated


def test_fp16_scales_the_loss_checkpoints_the_scaler_and_resumes(tiny):
    run_dir = fit(tiny(precision="fp16", max_steps=2, g_width=16))
    state = load_checkpoint(list_checkpoints(run_dir)[-1])
    assert state["config"]["precision"] == "fp16"
    assert state["scaler_G"]["scale"] > 0 and state["scaler_D"]["scale"] > 0
    assert all(torch.isfinite(t).all() for t in state["G"].values() if t.is_floating_point())
    fit(tiny(precision="fp16", max_steps=3, g_width=16), resume=True)
    assert "resuming" in (run_dir / "log.txt").read_text()
    assert load_checkpoint(list_checkpoints(run_dir)[-1])["scaler_G"]["scale"] > 0


def test_fp16_overflowing_gradients_skip_the_step_and_lower_the_scale():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    assert not g_update(opt, (w * 1e35).sum(), scaler)  # 1e35 * 65536 overflows float32: no step
    assert torch.equal(w.detach(), torch.ones(3)) and scaler.get_scale() == 2.0**15
    assert g_update(opt, (w * 2).sum(), scaler)
    torch.testing.assert_close(w.detach(), torch.full((3,), 0.8))


def test_auto_precision_and_the_global_batch(monkeypatch):
    import ganimate.runtime as runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"  # a T4 or V100
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu"), cpu_bf16=False) == "fp32"  # clips: NaN 3-D conv gradients
    assert resolve_precision("auto", torch.device("cuda"), cpu_bf16=False) == "bf16"
    assert World(1, 4).local_batch(64) == 16
    assert World(1, 4).rows(torch.arange(8)).tolist() == [2, 3]
    with pytest.raises(GanimateError, match="--batch-size 50 is the global batch and must divide evenly among 4"):
        World(0, 4).local_batch(50)
