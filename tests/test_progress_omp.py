"""Progress on long work (the training line after a resume, a short run's scalars and best.ckpt,
no Lightning chatter, bars only on a terminal) and passive OpenMP waits in every entry point,
script and `import fastnst` user."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastnst.progress import show_progress
from tests.helpers import make_image, scalars, tiny

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------- OpenMP wait policy

# Runs a script as `python <script> ...` would, and reports OMP_WAIT_POLICY as it is the moment
# torch starts to load (GNU OpenMP reads it then, once), then stops there: nothing runs.
# A script that never imports torch reports the value it leaves for a later import.
PROBE = r"""
import importlib.abc, os, runpy, sys

class TorchImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("policy at torch import:", os.environ.get("OMP_WAIT_POLICY"), flush=True)
            os._exit(0)

sys.meta_path.insert(0, TorchImport())
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
print("policy without torch:", os.environ.get("OMP_WAIT_POLICY"), flush=True)
"""

# scripts that run no torch in their own process
NO_TORCH_SCRIPTS = {"download_styles.py", "bench_load.py"}
SCRIPTS = sorted(
    p.relative_to(REPO / "scripts").as_posix()
    for p in (REPO / "scripts").rglob("*.py")
    if p.name not in NO_TORCH_SCRIPTS
)


def probe(args: list[str], cwd: Path, policy: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("policy ")]
    assert lines, result.stdout + result.stderr
    return lines[0]


def entry_point_args(name: str, tmp: Path) -> list[str]:
    """Arguments that get each command as far as its first torch import (and write nothing)."""
    return {
        "train.py": [f"paths.output_root={tmp / 'runs'}", "data=folder", f"data.root={tmp}"],
        "evaluate.py": [f"run={tmp}"],
        "export.py": [f"model={tmp / 'model.pt'}", f"output={tmp / 'out.ts'}"],
        "stylize.py": [f"input={tmp / 'photo.jpg'}", f"output={tmp / 'out'}"],
        "gatys.py": [f"content={tmp / 'photo.jpg'}", f"output={tmp / 'out.png'}"],
        "app.py": [],
    }[name]


@pytest.mark.parametrize(
    "name", ["train.py", "evaluate.py", "export.py", "stylize.py", "gatys.py", "app.py"]
)
def test_entry_points_load_torch_with_passive_openmp_waits(name, tmp_path):
    line = probe([str(REPO / name), *entry_point_args(name, tmp_path)], cwd=tmp_path)
    assert line == "policy at torch import: PASSIVE"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_set_passive_openmp_waits_before_torch(name, tmp_path):
    line = probe([str(REPO / "scripts" / name), "--help"], cwd=tmp_path)
    assert line.endswith(": PASSIVE"), line


def test_library_users_get_passive_waits_and_an_explicit_policy_wins(tmp_path):
    user = tmp_path / "user.py"
    user.write_text("from fastnst import Stylizer  # noqa\nimport torch  # noqa\n")
    assert probe([str(user)], cwd=tmp_path) == "policy at torch import: PASSIVE"
    assert probe([str(user)], cwd=tmp_path, policy="ACTIVE") == "policy at torch import: ACTIVE"
    assert (
        probe(
            [str(REPO / "train.py"), *entry_point_args("train.py", tmp_path)],
            cwd=tmp_path,
            policy="ACTIVE",
        )
        == "policy at torch import: ACTIVE"
    )


def test_torch_imported_first_is_named_in_one_warning(tmp_path):
    code = (
        "import warnings, torch\nwarnings.simplefilter('always')\nfrom fastnst import Stylizer\n"
        "Stylizer.load('the_scream', device='cpu'); Stylizer.load('the_scream', device='cpu')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("import fastnst before torch or set OMP_WAIT_POLICY=PASSIVE") == 1, (
        result.stderr
    )


# ---------------------------------------------------------------------------------- training

NOISE = (
    "litlogger",
    "LeafSpec",
    "limit_val_batches",
    "val_check_interval=",
    "exists and is not empty",
)


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FASTNST_DATA": str(cwd)}
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def short_then_resumed(tmp_path_factory):
    """A 3-step run (shorter than its logging and validation intervals), then resumed to 5 steps;
    both as piped subprocesses: (run dir, first output, resumed output)."""
    tmp = tmp_path_factory.mktemp("short")
    for i in range(6):
        make_image(tmp / "photos" / f"{i}.png", size=(40, 36), seed=i)
    style = make_image(tmp / "style.png", size=(48, 48), seed=99)
    run_dir = tmp / "run"
    args = [
        a
        for a in tiny(tmp / "photos", steps=3)
        if not a.startswith(("trainer.enable_progress_bar", "trainer.log_every_n_steps"))
    ]
    first = _train(
        *args,
        f"style.image={style}",
        "trainer.log_every_n_steps=50",
        "trainer.val_check_interval=1000",
        "callbacks.images.every_n_steps=0",
        f"hydra.run.dir={run_dir}",
        cwd=tmp,
    )
    resumed = _train(f"resume={run_dir}", "trainer.max_steps=5", cwd=tmp)
    return run_dir, first.stdout + first.stderr, resumed.stdout + resumed.stderr


def _progress_lines(output: str) -> list[tuple[int, int]]:
    return [
        (int(k), int(n)) for k, n in re.findall(r"step (\d+)/(\d+) \(\d+%\)  [\d.]+ img/s", output)
    ]


def test_progress_line_counts_the_global_step_out_of_the_total_after_a_resume(short_then_resumed):
    _, first, resumed = short_then_resumed
    assert _progress_lines(first) == [(3, 3)]
    lines = _progress_lines(resumed)
    assert lines and lines[-1] == (5, 5), resumed
    assert all(n == 5 and k > 3 for k, n in lines), lines


def test_a_run_shorter_than_its_intervals_logs_train_scalars_and_writes_best_ckpt(
    short_then_resumed,
):
    run_dir, _, _ = short_then_resumed
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert scalars(run_dir, "train/loss")
    assert scalars(run_dir, "val/loss")


def test_training_output_has_no_lightning_chatter(short_then_resumed):
    _, first, resumed = short_then_resumed
    for line in (first + resumed).splitlines():
        assert not any(noise in line for noise in NOISE), line


# ----------------------------------------------------------------------------------- scripts


def test_progress_switch_auto_follows_the_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert show_progress("auto", Tty()) and not show_progress("auto", io.StringIO())
    assert show_progress(True, io.StringIO()) and not show_progress("false", Tty())


def test_a_piped_script_prints_no_bar_unless_asked(tmp_path):
    photo = make_image(tmp_path / "photo.png", size=(64, 48))
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "data" / "make_pan_clip.py"),
        str(photo),
        "--frames",
        "3",
        "--size",
        "32",
    ]
    piped = subprocess.run(
        [*cmd, "--out", str(tmp_path / "a.mp4")], capture_output=True, text=True, timeout=600
    )
    assert piped.returncode == 0, piped.stderr
    assert "frame" not in piped.stderr and "%|" not in piped.stderr, piped.stderr
    asked = subprocess.run(
        [*cmd, "--out", str(tmp_path / "b.mp4"), "--progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert asked.returncode == 0, asked.stderr
    assert "pan clip: 100%|" in asked.stderr and "3/3" in asked.stderr, asked.stderr


@pytest.mark.parametrize(
    "module",
    [
        "fastnst.video_metrics",  # scripts/data/video_metrics.py
        "fastnst.apps.style_blend",  # scripts/figures/style_blend.py
        "fastnst.apps.make_pan_clip",  # scripts/data/make_pan_clip.py
        "fastnst.apps.compare_runs",  # scripts/figures/compare_runs.py
    ],
)
def test_script_help_documents_the_progress_switch(module, capsys):
    with pytest.raises(SystemExit):
        importlib.import_module(module).main(["--help"])
    assert "--progress, --no-progress" in capsys.readouterr().out
