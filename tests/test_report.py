"""The run report (ganimate.report) and the TensorBoard export: written from tiny real runs of each kind, checked as
HTML, as PNG plots, as commands that parse back into the run's config, and in headless Chromium (marker `browser`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import in_ci, tiny_config
from PIL import Image

from ganimate.cli import build_parser, main
from ganimate.cliargs import training_config
from ganimate.config import TrainConfig
from ganimate.errors import GanimateError
from ganimate.report import commands, read_run, report_hook, write_report
from ganimate.tensorboard import export_tensorboard

HOSTILE = '<img src=x onerror="window.pwned=1"> & co'  # a legal folder name that is also markup

pytestmark = pytest.mark.usefixtures("one_thread")


def _train_command(run_dir) -> list[str]:
    return shlex.split(commands(read_run(run_dir))[0].replace("\\\n", " "))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, one_thread):
    """A tiny conditional image run with three grids, two training evaluations and a time-lapse video, in a
    folder whose name is markup."""
    from ganimate.train import fit

    root = tmp_path_factory.mktemp("report")
    run = fit(tiny_config(root, out=str(root / HOSTILE), sample_every=2, eval_every=3, eval_n=50))
    assert main(["video", str(run), "--fps", "8", "--hold", "2"]) == 0
    return run


@pytest.fixture(scope="module")
def report(image_run):
    return write_report(image_run)


def test_image_report_holds_plots_grids_video_and_commands(image_run, report):
    html = report.read_text()
    assert report == image_run / "report.html"
    for name in ("losses", "discriminator", "throughput"):
        with Image.open(image_run / "plots" / f"{name}.png") as im:
            assert im.format == "PNG" and im.size[0] > 300
        assert f"plots/{name}.png" in html
    assert html.count("data:image/png;base64,") >= 3 + 1 + 1 + 3  # plots, latest grid, reals, strip of 3 grids
    assert '<source src="videos/training.mp4" type="video/mp4">' in html
    assert "videos/training.gif" not in html  # the GIF twin of the MP4 is left out
    assert "synthetic" in html and "fast DCGAN" in html and "yes, 10 classes" in html
    assert "no reference classifier for synthetic" in html  # the training evaluation's n/a reasons
    assert "ganimate video" in html and "ganimate report" in html


def test_reproduce_command_parses_back_into_the_runs_config(image_run):
    argv = _train_command(image_run)
    assert argv[:2] == ["ganimate", "train"]
    cfg = training_config(build_parser().parse_args(argv[1:]), TrainConfig)
    saved = json.loads((image_run / "config.json").read_text())
    ignore = {"num_classes", "progress"}  # set from the data; the progress bar
    assert {k: v for k, v in cfg.to_dict().items() if k not in ignore} == \
        {k: v for k, v in saved.items() if k not in ignore}


def test_report_elsewhere_links_videos_relative_to_it_or_embeds_them(image_run, tmp_path):
    page = write_report(image_run, tmp_path / "pages" / "r.html")
    html = page.read_text()
    src = urllib.parse.unquote(re.search(r'<source src="([^"]+)"', html).group(1))
    assert (page.parent / src).resolve() == (image_run / "videos" / "training.mp4").resolve()
    assert (tmp_path / "pages" / "r_plots" / "losses.png").is_file()
    embedded = write_report(image_run, tmp_path / "e.html", embed_videos=True).read_text()
    assert '<source src="data:video/mp4;base64,' in embedded
    assert len(embedded) > len(html) + (image_run / "videos" / "training.mp4").stat().st_size


def test_every_string_from_the_run_folder_is_escaped(image_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(image_run, run, ignore=shutil.ignore_patterns("checkpoints", "report.html", "plots"))
    saved = json.loads((run / "config.json").read_text())
    saved["dataset"] = "</code><script>alert(1)</script>"
    (run / "config.json").write_text(json.dumps(saved))
    with open(run / "log.txt", "a") as f:
        f.write("<script>alert(2)</script>\n")
    with open(run / "metrics.jsonl", "a") as f:
        for step in (5, 6):
            f.write(json.dumps({"step": step, "kind": "train", "<b>fd</b>": 1.5, "n/a": {"<i>x</i>": "<u>why</u>"}})
                    + "\n")
    with open(run / "samples" / "index.jsonl", "a") as f:
        f.write(json.dumps({"file": "../config.json", "step": 7, "kind": "step"}) + "\n")
    html = write_report(run).read_text()
    for raw in ("<script>", "<b>fd</b>", "<i>x</i>", "<u>why</u>", "<img src=x"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;script&gt;alert(2)" in html
    assert "step 7" not in html  # an index entry outside samples/ is ignored
    assert (run / "plots" / "metric__b_fd__b_.png").is_file()  # a key from the file never becomes a path


def test_metric_plots_carry_their_floor(tmp_path):
    """An image run's training and `ganimate evaluate` records: one plot per metric, floors drawn in it."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "mnist", "seed": 0, "arch": "fast", "out": str(run)}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 100, "kind": "train", "n": 2000, "fd": 40.0, "fd_floor": 0.9, "fd_real_n": 2000, "class_acc": 0.5,
         "class_acc_reference": 0.99, "eval_s": 3.0},
        {"step": 200, "kind": "train", "n": 2000, "fd": 4.0, "fd_floor": 0.9, "fd_real_n": 2000, "class_acc": 0.9,
         "class_acc_reference": 0.99, "eval_s": 3.0},
        {"step": 200, "checkpoint": "step_000200.pt", "n": 10000, "seed": 0, "dataset": "mnist", "fd": 3.5,
         "fd_floor": 0.43, "fd_real_n": 10000, "nn1_error_10000": 0.1, "nn1_real_error_10000": 0.05, "n/a": {},
         "seconds": {"total": 9}}]))
    html = write_report(run).read_text()
    plots = sorted(p.name for p in (run / "plots").iterdir())
    assert plots == ["metric_class_acc.png", "metric_fd.png"]  # floors are no metric; nn1 has one point: no curve
    assert "real-vs-real floor 0.430 (N=10000)" in html  # the evaluate table, as `ganimate evaluate` prints it
    assert "ganimate evaluate" in html and "--n 10000 --seed 0 --nn1-sizes 10000" in html


@pytest.fixture(scope="module")
def restore_run(tmp_path_factory, one_thread):
    from ganimate.restore.config import RestoreTrainConfig
    from ganimate.restore.train import fit_restore

    return fit_restore(RestoreTrainConfig(
        dataset="synthetic", g_width=8, d_width=8, batch_size=50, val_size=1500, log_every=1, device="cpu",
        precision="fp32", progress=False, out=str(tmp_path_factory.mktemp("restore") / "run"), max_steps=2,
        eval_every=1, task="denoise"))


def test_restoration_report(restore_run):
    html = write_report(restore_run).read_text()
    names = {p.stem for p in (restore_run / "plots").iterdir()}
    assert {"losses", "reconstruction", "discriminator", "metric_val_psnr", "metric_val_ssim"} <= names
    assert "image restoration (denoise σ 0.2)" in html and "rows: degraded, restored, clean" in html
    assert "Validation during training, step 2" in html and "val_psnr" in html  # the latest of two
    assert _train_command(restore_run)[:3] == ["ganimate", "restore", "train"]


def test_clip_report_shows_its_sample_videos(tmp_path, one_thread):
    from ganimate.clips.config import ClipTrainConfig
    from ganimate.clips.train import fit_clips

    run = fit_clips(ClipTrainConfig(
        dataset="moving-synthetic", out=str(tmp_path / "clip"), size=32, frames=4, g_width=4, d_width=4, z_dim=8,
        batch_size=4, max_steps=2, log_every=1, eval_every=1, eval_clips=4, sample_every=1, device="cpu",
        progress=False, task="predict"))
    html = write_report(run).read_text()
    assert '<source src="samples/step_000002.mp4" type="video/mp4">' in html  # the latest
    assert '<source src="samples/step_000001.mp4" type="video/mp4">' in html  # an earlier one
    assert (run / "plots" / "metric_val_psnr.png").is_file()
    assert "video from images (predict: 4 frames of 32×32, 1 digit(s))" in html
    assert _train_command(run)[:3] == ["ganimate", "clip", "train"]


def test_missing_or_foreign_folder_is_one_line_exit_2(cli, tmp_path):
    r = cli("report", tmp_path / "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
    (tmp_path / "photos").mkdir()
    r = cli("report", tmp_path / "photos")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is not a run folder" in r.stderr
    assert not (tmp_path / "photos" / "report.html").exists()


def test_tensorboard_export_reads_back(image_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    shutil.copytree(image_run, run, ignore=shutil.ignore_patterns("checkpoints", "videos"))
    for _ in range(2):  # a second export replaces the first
        out = export_tensorboard(run)
    assert out == run / "tensorboard" and len(list(out.iterdir())) == 1
    events = EventAccumulator(str(out), size_guidance={"images": 0, "scalars": 0}).Reload()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [e.step for e in events.Scalars("train/loss_d")] == [r["step"] for r in stats]
    assert [e.step for e in events.Images("samples")] == [2, 4, 6]
    assert len(events.Images("reals")) == 1


def test_tensorboard_missing_is_one_line(cli, image_run, monkeypatch):
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else find(name, *a))
    r = cli("report", image_run, "--tensorboard")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "pip install 'ganimate[tensorboard]'" in r.stderr
    from ganimate.report import check_reporting

    with pytest.raises(GanimateError, match="tensorboard"):
        check_reporting(tiny_config(Path("unused"), tensorboard=True))


def test_engine_hook_writes_every_n_steps_and_at_the_end(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run, run, ignore=shutil.ignore_patterns("checkpoints", "report.html", "plots"))
    cfg = tiny_config(tmp_path, report=True, report_every=4)
    lines = []
    assert report_hook(run, cfg, 3, final=False, log=lines.append) is None and not (run / "report.html").exists()
    assert report_hook(run, cfg, 4, final=False, log=lines.append) == run / "report.html"
    (run / "report.html").unlink()
    assert report_hook(run, tiny_config(tmp_path, report=True), 5, final=True, log=lines.append) == run / "report.html"
    assert report_hook(run, tiny_config(tmp_path, report=False), 6, final=True, log=lines.append) is None  # --no-report
    assert lines and lines[-1].startswith(f"report: {run / 'report.html'}")
    shutil.rmtree(run / "samples")
    (run / "samples").write_text("a file where a folder was")  # cannot be read: a warning, training goes on
    (run / "config.json").write_text("{broken")
    assert report_hook(run, cfg, 8, final=False, log=lines.append) is None
    assert lines[-1].startswith("warning: the run report was not written")


# --------------------------------------------------------------------------- in a real browser


def _browser_problem() -> str | None:
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through Selenium. Missing: skipped with GANIMATE_NO_BROWSER=1, a failure in CI, else
    skipped."""
    if os.environ.get("GANIMATE_NO_BROWSER", "").strip() not in ("", "0"):
        pytest.skip("GANIMATE_NO_BROWSER is set")
    problem = _browser_problem()
    if problem:
        if in_ci():
            pytest.fail(f"the browser test must run in CI: {problem} (GANIMATE_NO_BROWSER=1 skips it)")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    profile = tmp_path_factory.mktemp("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--window-size=1280,1600", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


LOADED = """
const done = arguments[arguments.length - 1];
const t0 = Date.now();
(function wait() {
  const imgs = [...document.images], videos = [...document.querySelectorAll('video')];
  const ready = document.readyState === 'complete' && imgs.every(i => i.complete) &&
                videos.every(v => v.readyState >= 2 || v.error);
  if (!ready && Date.now() - t0 < 20000) { setTimeout(wait, 100); return; }
  Promise.all(videos.map(v => v.play().then(() => 'ok', e => String(e)))).then(played => setTimeout(() => done({
    images: imgs.map(i => [i.naturalWidth, i.alt]),
    videos: videos.map((v, k) => [v.readyState, v.duration, v.currentTime, v.error && v.error.code, played[k],
                                  v.currentSrc.slice(0, 40)]),
    pwned: window.pwned === undefined ? null : window.pwned,
  }), 600));
})();
"""


def _check_page(driver, page: Path, shot: Path) -> dict:
    driver.get_log("browser")  # drop what came before
    driver.get(page.resolve().as_uri())
    state = driver.execute_async_script(LOADED)
    assert state["images"] and all(w > 0 for w, _ in state["images"]), state["images"]
    assert state["videos"], "no video on the page"
    for ready, duration, current, error, played, src in state["videos"]:
        assert error is None and ready >= 2 and duration > 0, (src, ready, duration, error)
        assert played == "ok" and current > 0, (src, played, current)  # it plays
    assert state["pwned"] is None  # the run's name is shown, never run
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
    driver.save_screenshot(str(shot))
    grey = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert grey.std() > 20 and len(np.unique(grey)) > 50, "the screenshot looks blank"
    return state


@pytest.mark.browser
def test_report_in_headless_chromium(browser, image_run, report, tmp_path):
    t = time.perf_counter()
    state = _check_page(browser, report, tmp_path / "report.png")
    plots = len(list((image_run / "plots").iterdir()))
    assert len(state["images"]) == plots + 1 + 1 + 3  # plots, latest grid, reals, strip: nothing injected
    embedded = write_report(image_run, tmp_path / "elsewhere" / "embedded.html", embed_videos=True)
    state = _check_page(browser, embedded, tmp_path / "embedded.png")
    assert all(src.startswith("data:video/mp4") for *_, src in state["videos"])
    print(f"browser checks {time.perf_counter() - t:.1f} s; screenshot {tmp_path / 'report.png'}")


def test_ci_script_installs_chromium_or_fails_the_browser_test():
    """.ci/run installs Chromium where it can; with no apt-get it warns, and the browser test then fails in CI."""
    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "apt-get install -y --no-install-recommends chromium chromium-driver" in script
    assert "GANIMATE_NO_BROWSER" in script
    r = subprocess.run(["bash", "-n", str(Path(__file__).resolve().parents[1] / ".ci" / "run")], capture_output=True)
    assert r.returncode == 0, r.stderr
