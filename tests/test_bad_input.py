"""Nothing lost (issue 14, the commands' side): a full disk, read-only paths, a file where a folder is expected,
decompression bombs, sizes that cannot fit in memory, outputs inside data folders, a --format that contradicts
the file name, and garbage bytes in every kind of input file all end in one line on stderr and exit code 2,
with nothing half-written."""

import gzip
import json
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from ganimate.cli import main
from ganimate.train import fit


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    """A tiny trained image run with two checkpoints."""
    root = tmp_path_factory.mktemp("bad-input")
    return fit(tiny_config(root, max_steps=4, checkpoint_every=2))


@pytest.fixture
def cli(capsys):
    """Run `ganimate ARGS` in this process: (exit code, stderr)."""

    def call(*args) -> tuple[int, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        return rc, capsys.readouterr().err

    return call


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("ganimate: error: "), err
    return err


def png_bomb(path, side=100_000):
    """A valid PNG header claiming side x side grey pixels, in a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, cli):
    frames = tmp_path / "frames"
    frames.mkdir()
    png_bomb(frames / "0.png")
    rc, err = cli("video", "--frames", frames, "--out", tmp_path / "v.mp4")
    assert rc == 2 and "too large to decode safely" in one_line(err)
    from ganimate.clips.apply import read_image as clip_image
    from ganimate.errors import GanimateError
    from ganimate.restore.apply import read_image as restore_image

    for read in (clip_image, lambda p: restore_image(p, 1, 7)):  # animate / inbetween, restore apply
        with pytest.raises(GanimateError, match="too large to decode safely"):
            read(frames / "0.png")
    assert not (tmp_path / "v.mp4").exists()


def test_sizes_that_cannot_fit_are_refused_with_an_estimate(run, tmp_path, cli):
    rc, err = cli("sample", run, "--n", 10**12, "--out", tmp_path / "g.png")
    assert rc == 2 and "sampling 1,000,000,000,000 images" in one_line(err) and "needs about" in err
    rc, err = cli("train", "--dataset", "synthetic", "--g-width", 100_000, "--out", tmp_path / "big", "--dry-run")
    assert rc == 2 and "needs about" in one_line(err) and "--g-width" in err
    rc, err = cli("video", run, "--scale", 1_000_000, "--out", tmp_path / "v.mp4")
    assert rc == 2 and "use a smaller --scale" in one_line(err)
    rc, err = cli("interpolate", run, "--grid", "100000x100000", "--out", tmp_path / "w.mp4")
    assert rc == 2 and "use a smaller --grid" in one_line(err)
    assert not list(tmp_path.iterdir())


def test_paths_that_cannot_be_written_are_one_line(run, tmp_path, cli):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep")
    rc, err = cli("train", "--dataset", "synthetic", "--max-steps", 1, "--out", blocker / "run")
    assert rc == 2 and "file.txt" in one_line(err)
    rc, err = cli("sample", run, "--out", blocker / "g.png")
    assert rc == 2 and "is a file, not a folder" in one_line(err)
    rc, err = cli("sample", run, "--out", tmp_path)
    assert rc == 2 and "it is a folder" in one_line(err)
    rc, err = cli("video", run, "--out", blocker / "v.mp4")
    assert rc == 2 and "is a file, not a folder" in one_line(err)
    assert blocker.read_text() == "keep"


def test_no_output_inside_a_data_folder(run, tmp_path, cli, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("GANIMATE_DATA", str(data))
    for args in (("sample", run, "--out", data / "g.png"), ("sample", run, "--npz", data / "x.npz"),
                 ("video", run, "--out", data / "v.gif")):
        rc, err = cli(*args)
        assert rc == 2 and "inside the data folder" in one_line(err), args
    assert not list(data.iterdir())


def test_a_format_that_contradicts_the_file_name_is_refused(run, tmp_path, cli):
    rc, err = cli("video", run, "--format", "gif", "--out", tmp_path / "v.mp4")
    assert rc == 2 and "--format gif contradicts" in one_line(err)
    rc, err = cli("interpolate", run, "--format", "mp4", "--out", tmp_path / "w.gif")
    assert rc == 2 and "--format mp4 contradicts" in one_line(err)
    assert not list(tmp_path.iterdir())
    rc, _ = cli("video", run, "--out", tmp_path / "v.gif")  # the extension alone decides
    assert rc == 0 and (tmp_path / "v.gif").is_file()


# --------------------------------------------------------------------------- a full disk, a read-only disk

def _in_own_mount_namespace(script: str, tmp_path) -> subprocess.CompletedProcess:
    """Run a shell script with a private mount namespace (tmpfs mounts vanish with it)."""
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-e", "-c", script],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


@pytest.fixture
def mounts(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        ok = shutil.which("unshare") and _in_own_mount_namespace(
            f"mount -t tmpfs -o size=64k tmpfs {probe}", tmp_path).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok:
        pytest.skip("this machine does not let an unprivileged process mount a tmpfs (unshare --mount)")
    return lambda script: _in_own_mount_namespace(script, tmp_path)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(run, tmp_path, mounts):
    small = tmp_path / "small"
    small.mkdir()
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    py = sys.executable
    script = (f"mount -t tmpfs -o size={size * 11 // 10 + 200 * 1024} tmpfs {small}\n"
              f"cp -r {run} {small}/run\n"
              f"set +e\n"
              f"{py} -m ganimate.cli train --out {small}/run --resume --max-steps 12 --epochs 100 --checkpoint-every 2 "
              f"--keep-checkpoints 100 2> {tmp_path}/train.err; echo $? > {tmp_path}/train.rc\n"
              f"{py} -m ganimate.cli sample {small}/run --n 10000 --out {small}/big.png "
              f"2> {tmp_path}/sample.err; echo $? > {tmp_path}/sample.rc\n"
              f"{py} -c 'import torch, sys; [torch.load(p, weights_only=True) for p in sys.argv[1:]]' "
              f"{small}/run/checkpoints/*.pt; echo $? > {tmp_path}/load.rc\n"
              f"ls -a {small}/run/checkpoints > {tmp_path}/ls.txt\n")
    done = mounts(script)
    assert done.returncode == 0, done.stderr
    for name in ("train", "sample"):
        assert (tmp_path / f"{name}.rc").read_text().strip() == "2", (tmp_path / f"{name}.err").read_text()
        assert "no space left" in one_line((tmp_path / f"{name}.err").read_text())
    assert (tmp_path / "load.rc").read_text().strip() == "0"  # every checkpoint left is whole
    assert ".tmp." not in (tmp_path / "ls.txt").read_text()  # no half-written file


def test_a_read_only_disk_is_one_line(run, tmp_path, mounts):
    ro = tmp_path / "ro"
    ro.mkdir()
    py = sys.executable
    script = (f"mount -t tmpfs -o ro,size=64k tmpfs {ro}\nset +e\n"
              f"{py} -m ganimate.cli sample {run} --out {ro}/g.png 2> {tmp_path}/sample.err; "
              f"echo $? > {tmp_path}/sample.rc\n"
              f"{py} -m ganimate.cli train --dataset synthetic --max-steps 1 --out {ro}/run 2> {tmp_path}/train.err; "
              f"echo $? > {tmp_path}/train.rc\n")
    done = mounts(script)
    assert done.returncode == 0, done.stderr
    for name in ("sample", "train"):
        err = (tmp_path / f"{name}.err").read_text()
        assert (tmp_path / f"{name}.rc").read_text().strip() == "2", err
        assert "read-only" in one_line(err) or "not writable" in err


# --------------------------------------------------------------------------- garbage bytes in every input file

def garbage(rng, prefix: bytes = b"") -> bytes:
    """Random bytes, sometimes behind a real file signature so the parser gets past its first check."""
    n = int(rng.choice([0, 1, 7, 100, 5000]))
    return prefix + rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def damaged_lines(rng) -> bytes:
    """At least two lines of garbage (one torn last line alone is forgiven, see test_safety)."""
    return b"\n".join(garbage(rng).replace(b"\n", b" ") + b"x" for _ in range(3)) + b"\n"


SIGNATURES = (b"", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"\x1f\x8b\x08", b'{"step": ', b"\x00\x00\x08\x03")


@pytest.mark.parametrize("seed", range(4))
def test_garbage_in_any_input_file_is_one_line_and_exit_2(run, tmp_path, cli, seed):
    rng = np.random.default_rng(seed)
    prefix = SIGNATURES[seed % len(SIGNATURES)] if seed else b""
    work = tmp_path / "run"
    shutil.copytree(run, work)

    ckpt = sorted((work / "checkpoints").glob("*.pt"))[-1]
    ckpt.write_bytes(garbage(rng, SIGNATURES[2] if seed % 2 else prefix))
    rc, err = cli("sample", work, "--n", 4, "--out", tmp_path / "s.png")
    assert rc == 2 and "checkpoint" in one_line(err)
    shutil.copy(sorted((run / "checkpoints").glob("*.pt"))[-1], ckpt)

    (work / "stats.jsonl").write_bytes(damaged_lines(rng))
    rc, err = cli("train", "--out", work, "--resume", "--max-steps", 6)
    assert rc == 2 and "stats.jsonl" in one_line(err)
    shutil.copy(run / "stats.jsonl", work / "stats.jsonl")

    (work / "config.json").write_bytes(garbage(rng, prefix))
    rc, err = cli("train", "--out", work, "--resume", "--max-steps", 6)
    assert rc == 2 and "config" in one_line(err)

    index = work / "samples" / "index.jsonl"
    index.write_bytes(damaged_lines(rng))
    rc, err = cli("video", work, "--out", tmp_path / "t.gif")
    assert rc == 2 and "index.jsonl" in one_line(err)
    index.write_text('{"file": "../../config.json", "step": 2, "kind": "step"}\n')
    rc, err = cli("video", work, "--out", tmp_path / "t.gif")
    assert rc == 2 and "outside" in one_line(err)

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "0.png").write_bytes(garbage(rng, SIGNATURES[1] if seed % 2 else prefix))
    rc, err = cli("video", "--frames", frames, "--out", tmp_path / "v.mp4")
    assert rc == 2 and "0.png" in one_line(err)

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(garbage(rng, SIGNATURES[1]))
    rc, err = cli("train", "--dataset", f"folder:{folder}", "--out", tmp_path / "f", "--max-steps", 1)
    assert rc == 2 and "could be read" in one_line(err)

    idx = tmp_path / "idx"
    idx.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        body = garbage(rng, SIGNATURES[5]) if seed % 2 else garbage(rng, prefix)
        (idx / name).write_bytes(gzip.compress(body) if seed % 2 else body)
    rc, err = cli("train", "--dataset", "mnist", "--data-dir", idx, "--out", tmp_path / "m", "--max-steps", 1)
    assert rc == 2 and "idx" in one_line(err).lower()
    assert not (tmp_path / "m").exists() and not (tmp_path / "f").exists()


def test_a_png_made_by_pillow_still_reads(tmp_path, cli):
    """The guard against bombs does not refuse ordinary images."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(frames / f"{i}.png")
    rc, err = cli("video", "--frames", frames, "--out", tmp_path / "v.gif", "--hold", 0)
    assert rc == 0, err
    assert json.dumps(rc) == "0"
