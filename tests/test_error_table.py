"""Every entry point x {an output location that cannot be written, a wrong-typed option}: one
line `fastnst: error: ...` on stderr, exit code 2, no traceback, nothing written, and all of it
before any work (no network loaded, no image stylized). The entry points run in-process
(sys.argv patched), so each case takes a fraction of a second; every script under scripts/
(found by glob: a new script without a row fails) runs as the program a user starts.

The unwritable location is under /sys, which not even root can write (a permission check
would pass there: only a real attempt tells)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastnst import cli
from fastnst.errors import FastNSTError
from fastnst.preflight import ensure_writable, option_type_error
from tests.helpers import make_image
from tests.script_runner import SCRIPTS as SCRIPTS_DIR
from tests.script_runner import all_scripts

REPO = Path(__file__).resolve().parents[1]
UNWRITABLE = Path("/sys/fastnst-test")

pytestmark = pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys (Linux)")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A photo, a folder of photos, a 3-frame video and a run-like folder, outside the cwd."""
    from fastnst.video import write_video

    root = tmp_path_factory.mktemp("inputs")
    photo = make_image(root / "photo.png", size=(40, 32))
    folder = root / "photos"
    for i in range(2):
        make_image(folder / f"{i}.png", size=(40, 32), seed=i)
    video = root / "clip.mp4"
    write_video((torch.rand(1, 3, 32, 32) for _ in range(3)), video, rate=10)
    run = root / "run"
    run.mkdir()
    return {"photo": photo, "folder": folder, "video": video, "run": run}


# entry point -> (kind, how to call it, arguments for {unwritable output, wrong-typed option}).
# {photo}, {folder}, {video}, {run} and {out} (a path under the unwritable folder) are filled in.
HYDRA = {
    "train": cli.train_main,
    "stylize": cli.stylize_main,
    "gatys": cli.gatys_main,
    "export": cli.export_main,
    "evaluate": cli.evaluate_main,
    "app": cli.app_main,
}
CASES = {
    "train": (["paths.output_root={out}"], ["trainer.max_steps=abc"]),
    "stylize_image": (
        ["style=the_scream", "input={photo}", "output={out}/x.png"],
        ["style=the_scream", "input={photo}", "strength=abc"],
    ),
    "stylize_into_folder": (
        ["style=the_scream", "input={photo}", "output={out}/"],
        ["style=the_scream", "input={photo}", "size=big"],
    ),
    "stylize_folder": (
        ["style=the_scream", "input={folder}", "output={out}"],
        ["style=the_scream", "input={folder}", "batch_size=abc"],
    ),
    "stylize_video": (
        ["style=the_scream", "input={video}", "output={out}/x.mp4"],
        ["style=the_scream", "input={video}", "temporal_strength=abc"],
    ),
    "gatys": (
        ["content={photo}", "output={out}/x.png"],
        ["content={photo}", "output=x.png", "iterations=abc"],
    ),
    "export": (["model=the_scream", "output={out}/"], ["model=the_scream", "overwrite=maybe"]),
    "evaluate": (["run={run}", "cache_dir={out}"], ["run={run}", "num_photos=abc"]),
    "app": ([], ["port=abc"]),  # the unwritable case: GRADIO_TEMP_DIR (below)
}
# every script under scripts/, by its path there -> (arguments for {an unwritable output (None:
# it writes none before its work), a bad value}); `gpu_run.sh` finds no bundle (FASTNST_GPU_BUNDLE)
SCRIPT_CASES = {
    "bench/bench_app.py": (None, ["--seconds", "abc"]),
    "bench/bench_convs.py": (None, ["--repeats", "abc"]),
    "bench/bench_gatys.py": (None, ["--parts", "abc"]),
    "bench/bench_inference.py": (["--json", "{out}/x.json"], ["--repeats", "abc"]),
    "bench/bench_load.py": (None, ["--load", "abc"]),
    "bench/bench_memory.py": (None, ["--cases", "abc"]),
    "bench/bench_multistyle.py": (
        ["--runs", "{run}", "--plot", "{out}/x.png"],
        ["--runs", "{run}", "--rounds", "abc"],
    ),
    "bench/bench_recipe.py": (None, ["--steps", "abc"]),
    "bench/bench_temporal.py": (
        [
            "--plain",
            "{run}",
            "--stable",
            "s={run}",
            "--clip",
            "c={video}",
            "--picture",
            "{out}/x.png",
        ],
        ["--plain", "{run}", "--stable", "s={run}", "--clip", "c={video}", "--frames", "abc"],
    ),
    "bench/bench_train.py": (None, ["--batch", "abc"]),
    "data/download_styles.py": (["--out", "{out}"], ["no_such_painting"]),
    "data/extract_frames.py": (
        ["{video}", "--out", "{out}"],
        ["{video}", "--out", "frames", "--every", "abc"],
    ),
    "data/make_pan_clip.py": (
        ["{photo}", "--out", "{out}/x.mp4"],
        ["{photo}", "--out", "x.mp4", "--frames", "abc"],
    ),
    "data/video_metrics.py": (
        None,
        ["--input", "{video}", "--output", "{video}", "--frames", "abc"],
    ),
    "figures/app_screenshot.py": (["--output", "{out}/x.png"], ["--no-such-option"]),
    "figures/blind_sheet.py": (None, ["--size", "abc"]),
    "figures/compare_runs.py": (
        ["{run}", "--out", "{out}"],
        ["{run}", "--out", "report", "--size", "abc"],
    ),
    "figures/gatys_precision_sheet.py": (None, ["--size", "abc"]),
    "figures/stroke_scale_sheet.py": (None, ["x.jpg", "--size", "abc"]),
    "figures/style_blend.py": (
        ["--model", "the_scream", "--photo", "{photo}", "--out", "{out}/x.jpg"],
        ["--model", "the_scream", "--photo", "{photo}", "--out", "x.jpg", "--steps", "abc"],
    ),
    "figures/tensorboard_screenshot.py": (None, ["{run}", "--width", "abc"]),
    "gpu_run.py": (
        ["--out", "{out}", "--work", "work"],
        ["--out", "out", "--work", "work", "--budget", "abc"],
    ),
    "gpu_run.sh": (None, ["--out", "out"]),
    "zoo/bundle_network.py": (None, ["--num-photos", "abc"]),
    "zoo/judge_table.py": (None, ["--size", "abc"]),
    "zoo/teacher_gap.py": (None, ["six_styles", "--size", "abc"]),
    "zoo/train_zoo.py": (None, ["--runs-dir", "runs", "--steps", "abc"]),
    "zoo/zoo_sheet.py": (None, ["x.jpg", "--height", "abc"]),
}


def _call(entry: str, args: list[str], monkeypatch) -> int:
    name = entry.split("_")[0]  # stylize_folder -> stylize
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    try:
        HYDRA[name]()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


@pytest.mark.parametrize("problem", ["unwritable_output", "wrong_type"])
@pytest.mark.parametrize("entry", CASES)
def test_one_line_exit_2_nothing_written(entry, problem, inputs, tmp_path, monkeypatch, capsys):
    template = CASES[entry][0 if problem == "unwritable_output" else 1]
    if template is None:
        pytest.skip(
            f"{entry} writes no output"
            if problem == "unwritable_output"
            else f"{entry} has no typed option"
        )
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # default outputs (x.png, frames/, report/) would land here
    if entry == "app" and problem == "unwritable_output":
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(UNWRITABLE / "gradio"))
    args = [a.format(out=UNWRITABLE, **inputs) for a in template]
    root = logging_root_state()
    try:
        code = _call(entry, args, monkeypatch)
    finally:
        restore_logging(root)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("fastnst: error: "), lines
    if problem == "unwritable_output":
        assert str(UNWRITABLE) in lines[0] or "GRADIO_TEMP_DIR" in lines[0], lines[0]
    else:
        assert "abc" in lines[0] or "big" in lines[0] or "maybe" in lines[0], lines[0]
    assert not any(cwd.iterdir()), sorted(cwd.rglob("*"))
    assert sorted(p.name for p in inputs["run"].iterdir()) == []
    assert not UNWRITABLE.exists()


SCRIPT_FILES = [p.relative_to(SCRIPTS_DIR).as_posix() for p in all_scripts()] + sorted(
    p.relative_to(SCRIPTS_DIR).as_posix() for p in SCRIPTS_DIR.rglob("*.sh")
)


@pytest.mark.parametrize("problem", ["unwritable_output", "bad_value"])
@pytest.mark.parametrize("script", SCRIPT_FILES)
def test_every_script_refuses_in_one_line_exit_2_nothing_written(script, problem, inputs, tmp_path):
    assert script in SCRIPT_CASES, f"scripts/{script} has no row in SCRIPT_CASES"
    template = SCRIPT_CASES[script][0 if problem == "unwritable_output" else 1]
    if template is None:
        pytest.skip(f"{script} writes no output before its work")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    path = SCRIPTS_DIR / script
    command = ["bash" if path.suffix == ".sh" else sys.executable, str(path)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "FASTNST_GPU_BUNDLE": str(tmp_path / "none")}
    proc = subprocess.run(
        [*command, *(a.format(out=UNWRITABLE, **inputs) for a in template)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("fastnst: error: "), lines
    if problem == "unwritable_output":
        assert str(UNWRITABLE) in lines[0], lines[0]
    assert not any(cwd.iterdir()), sorted(cwd.rglob("*"))
    assert sorted(p.name for p in inputs["run"].iterdir()) == []


def logging_root_state():
    import logging

    root = logging.getLogger()
    return root, list(root.handlers), root.level


def restore_logging(state):
    root, handlers, level = state  # Hydra points the root logger at this test's captured stderr
    root.handlers[:] = handlers
    root.setLevel(level)


# -- the two checks on their own ---------------------------------------------------------------


def test_ensure_writable_tries_for_real_and_leaves_nothing(tmp_path):
    assert ensure_writable(tmp_path / "a" / "b" / "out.png") == tmp_path / "a" / "b" / "out.png"
    assert ensure_writable(tmp_path / "new_folder", folder=True)
    assert list(tmp_path.iterdir()) == []  # the probe is removed, nothing is created
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        FastNSTError, match=r"out\.png: output cannot be created \(.*file is a file\)"
    ):
        ensure_writable(blocker / "out.png")
    with pytest.raises(FastNSTError, match="cannot be written .*/sys"):
        ensure_writable(
            UNWRITABLE / "runs", "paths.output_root", folder=True
        )  # os.access says yes for root


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_ensure_writable_refuses_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(FastNSTError, match="locked"):
        ensure_writable(locked / "out.png")


@pytest.mark.parametrize(
    "config, args, expected",
    [
        ("train", ["trainer.max_steps=abc"], "trainer.max_steps expects an integer, got 'abc'"),
        (
            "train",
            ["trainer.precision=fp32"],
            "trainer.precision expects one of",
        ),  # Lightning's annotation
        (
            "train",
            ["callbacks.divergence.check_every_n_steps=often"],
            "expects one of auto or an integer",
        ),
        ("train", ["system.optimizer.lr=fast"], "system.optimizer.lr expects a number"),
        (
            "train",
            ["style=wave", "style.size=large"],
            "style.size expects an integer",
        ),  # after a group choice
        ("gatys", ["overwrite=yes"], "overwrite expects true or false, got 'yes'"),
        ("gatys", ["lr=abc"], "lr expects a number, got 'abc'"),
    ],
)
def test_wrong_types_are_named_with_the_type_expected(config, args, expected):
    from fastnst.config import CONFIG_DIR

    assert expected in option_type_error(CONFIG_DIR, config, args)


@pytest.mark.parametrize(
    "config, args",
    [
        (
            "train",
            [
                "trainer.devices=auto",
                "trainer.precision=bf16-mixed",
                "trainer.val_check_interval=0.5",
                "trainer.fast_dev_run=2",
                "trainer.limit_val_batches=3",
                "callbacks.divergence.check_every_n_steps=auto",
                "system.optimizer.lr=2e-3",
                "seed=null",
                "style=scream",
                "data.batch_size=8",
            ],
        ),
        ("train", ["experiment=cpu_quick", "trainer.max_steps=5", "+extra.key=abc", "resume=null"]),
        (
            "gatys",
            [
                "size=null",
                "seed=null",
                "scales=[0.5,1]",
                "loss.beta=1e5",
                "iterations=1e2",
                "style.size=null",
            ],
        ),
    ],
)
def test_values_of_the_right_type_pass(config, args):
    from fastnst.config import CONFIG_DIR

    assert option_type_error(CONFIG_DIR, config, args) is None
