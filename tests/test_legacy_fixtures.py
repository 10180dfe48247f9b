"""A run directory written by an older fastnst still works: it resumes and its model.pt stylizes.

tests/fixtures/legacy_run is a tiny run (8-8-8 channels, one residual block, 32 px crops, two
steps, fp32) made by the code before the modules were regrouped: its resolved config.yaml names
the `_target_` paths of that time, its last.ckpt and model.pt are that code's files. It was made
on a machine where the data folder was /legacy/data and the run lived under /legacy/outputs;
the test puts the copy's data paths at FASTNST_DATA (a moved run keeps its own config).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy_run"
OLD_DATA = "/legacy/data"


def _data_dir() -> Path:
    data = os.environ.get("FASTNST_DATA")
    if not data:
        pytest.skip("FASTNST_DATA is not set")
    return Path(data)


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def legacy_run(tmp_path) -> Path:
    """A copy of the fixture run whose data paths point at FASTNST_DATA."""
    data = _data_dir()
    run = tmp_path / "legacy_run"
    shutil.copytree(FIXTURE, run)
    for name in ("config.yaml", ".hydra/config.yaml"):
        path = run / name
        path.write_text(path.read_text().replace(OLD_DATA, str(data)))
    return run


def test_the_fixture_names_the_old_module_paths():
    cfg = OmegaConf.load(FIXTURE / "config.yaml")
    assert cfg.system._target_ == "fastnst.module.StyleTransferModule"
    assert cfg.model._target_ == "fastnst.transformer.TransformerNet"
    assert cfg.trainer.max_steps == 2
    assert torch.load(FIXTURE / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2


def test_a_legacy_run_resumes_for_one_more_step(legacy_run, tmp_path):
    result = _run("train.py", f"resume={legacy_run}", "trainer.max_steps=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(legacy_run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    model = torch.load(legacy_run / "model.pt", weights_only=False)
    assert model["meta"]["global_step"] == 3


def test_a_legacy_model_file_stylizes(tmp_path):
    photo = _data_dir() / "content" / "chicago.jpg"
    out = tmp_path / "out.png"
    result = _run(
        "stylize.py",
        f"model={FIXTURE / 'model.pt'}",
        f"input={photo}",
        f"output={out}",
        "size=64",
        "backend=torch",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from PIL import Image

    with Image.open(out) as image:
        assert max(image.size) == 64


def _targets(node, found=None) -> list[str]:
    found = [] if found is None else found
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            found.append(node["_target_"])
        for value in node.values():
            _targets(value, found)
    elif isinstance(node, list):
        for value in node:
            _targets(value, found)
    return found


def test_every_class_the_legacy_config_names_is_found_today():
    """A class a run's config builds that moves needs a line in MOVED_TARGETS."""
    from hydra._internal.utils import _locate

    from fastnst.config import upgrade_saved_targets

    cfg = OmegaConf.load(FIXTURE / "config.yaml")
    upgrade_saved_targets(cfg)
    targets = _targets(OmegaConf.to_container(cfg))
    assert "fastnst.module.StyleTransferModule" in targets
    for target in targets:
        assert callable(_locate(target)), target


def test_a_moved_target_is_rewritten_when_a_saved_config_is_read(tmp_path, monkeypatch):
    from fastnst import config
    from fastnst.resume import saved_config

    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(
        text.replace("fastnst.transformer.TransformerNet", "fastnst.old_place.TransformerNet")
    )
    monkeypatch.setitem(
        config.MOVED_TARGETS,
        "fastnst.old_place.TransformerNet",
        "fastnst.transformer.TransformerNet",
    )
    cfg = saved_config(run)
    assert cfg.model._target_ == "fastnst.transformer.TransformerNet"
    assert cfg.run_dir == str(run.resolve())
