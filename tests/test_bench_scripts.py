"""The benchmark scripts' child programs (code run in a fresh interpreter, out of reach of the
linters and of the imports the rest of the suite checks) still run against the current package."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from fastnst.artifacts import save_exported
from fastnst.transformer import TransformerNet
from tests.script_runner import run_script, script_path


def script_constant(script: str, name: str) -> str:
    """A string constant of a script, read from its source (the script is not imported)."""
    tree = ast.parse(script_path(script).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{script}.py defines no {name}")


@pytest.mark.parametrize("child", ["EAGER_CHILD", "MEMORY_CHILD"])
def test_bench_inference_children_run(child, tmp_path):
    model = save_exported(tmp_path / "m.pt", TransformerNet(channels=(8, 16, 32), num_residual=1))
    args = (
        [str(model), "24", "32", "1"]
        if child == "EAGER_CHILD"
        else [str(model), "24", "32", "none", "auto"]
    )
    proc = subprocess.run(
        [sys.executable, "-c", script_constant("bench_inference", child), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split()[-1]) > 0


def _write_scalars(run, values: dict[str, list[tuple[int, float]]]):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run)) as writer:
        for tag, points in values.items():
            for step, value in points:
                writer.add_scalar(tag, value, step - 1)  # logged at global_step = steps done - 1


@pytest.mark.parametrize("tuned_best", [90.0, 120.0])
def test_bench_multistyle_reads_the_curves_and_draws_them(tuned_best, tmp_path):
    from PIL import Image

    styles = script_constant("bench_multistyle", "STYLES")

    train = [(1, 500.0), (50, 400.0)]
    for style in styles:
        _write_scalars(tmp_path / f"single_{style}", {"val/loss": [(100, 200.0)]})
    _write_scalars(tmp_path / "multi3", {f"val/{s}/loss": [(300, 210.0)] for s in styles})
    _write_scalars(
        tmp_path / "scratch_udnie", {"val/loss": [(100, 300.0), (200, 100.0)], "train/loss": train}
    )
    _write_scalars(
        tmp_path / "finetune_udnie",
        {"val/udnie/loss": [(25, 150.0), (50, tuned_best)], "train/loss": train},
    )
    plot = tmp_path / "curves.png"
    code, out, err = run_script(
        "bench_multistyle", "--runs", tmp_path, "--skip", "speed", "parity", "--plot", plot
    )
    assert code == 0, err
    assert "| starry_night | 200 (100 steps) | 210 (300 steps) | 1.050 |" in out
    assert "the from-scratch network's val loss after 200 steps = 100" in out
    if tuned_best <= 100:
        assert "reached it after 50 steps (0.250 of 200)" in out
    else:
        assert "did NOT reach it within 50 steps (best 120)" in out
    assert Image.open(plot).size == (640, 320)
