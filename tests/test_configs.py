"""Every config group option composes, and its objects instantiate (as in the Lightning-Hydra
template's config tests)."""

from __future__ import annotations

import hydra
import pytest
from omegaconf import OmegaConf

from fastnst.config import CONFIG_DIR


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_every_group_has_options():
    for group in (
        "style",
        "loss",
        "model",
        "data",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "debug",
        "experiment",
    ):
        assert _options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("model", _options("model"))
def test_model_options_instantiate(compose_train, model, style_env):
    cfg = compose_train(f"model={model}")
    net = hydra.utils.instantiate(cfg.model)
    import torch

    assert net(torch.rand(1, 3, 19, 23)).shape == (1, 3, 19, 23)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_model_norm_option(compose_train, norm, style_env):
    import torch

    cfg = compose_train(f"model.norm={norm}")
    net = hydra.utils.instantiate(cfg.model)
    kinds = {type(m).__name__ for m in net.modules()}
    expected = {"instance": "InstanceNorm2d", "batch": "BatchNorm2d"}.get(norm)
    if expected:
        assert expected in kinds
    else:
        assert not kinds & {"InstanceNorm2d", "BatchNorm2d"}
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("loss", _options("loss"))
def test_loss_options_instantiate(compose_train, loss, style_env):
    from fastnst.style import build_loss

    cfg = compose_train(f"loss={loss}", "style.size=32")
    perceptual = build_loss(cfg.loss, cfg.style, vgg_weights=cfg.vgg.weights)
    assert perceptual.has_style
    assert set(perceptual.content_weights) == set(cfg.loss.content_layers)


@pytest.mark.parametrize("style", _options("style"))
def test_style_options_compose(compose_train, style):
    cfg = compose_train(f"style={style}")
    assert cfg.style.name
    if style == "anime":
        assert cfg.style.images_dir.endswith("anime-standin")  # a collection style
    elif style == "multi":
        assert list(cfg.style.names) == [
            "starry_night",
            "the_scream",
            "wave",
        ]  # a multi-style network
    elif style != "custom":
        assert str(cfg.style.image).endswith(".jpg")
    if style == "scream":
        assert cfg.style.image.endswith("the_scream.jpg")


@pytest.mark.parametrize("data", _options("data"))
def test_data_options_instantiate(compose_train, data, tmp_path, style_env):
    overrides = [f"data={data}"]
    if data == "folder":
        overrides.append(f"data.root={tmp_path}")
    cfg = compose_train(*overrides)
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.name == cfg.data.name
    assert dm.batch_size == 4 and dm.image_size == 256  # Johnson's recipe is the default


@pytest.mark.parametrize("trainer", _options("trainer"))
def test_trainer_options_compose(compose_train, trainer):
    cfg = compose_train(f"trainer={trainer}")
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if trainer in ("default", "cpu"):
        from fastnst.train import resolve_precision

        cfg.trainer.precision = resolve_precision(cfg.trainer)[
            0
        ]  # trainer=cpu's `auto`, as train() does
        t = hydra.utils.instantiate(
            cfg.trainer, logger=False, enable_checkpointing=False, accelerator="cpu"
        )
        assert t.max_steps == 40000


@pytest.mark.parametrize("debug", _options("debug"))
def test_debug_options_compose(compose_train, debug):
    cfg = compose_train(f"debug={debug}")
    assert cfg.trainer.fast_dev_run or cfg.trainer.max_steps <= 100


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiment_options_compose(compose_train, experiment):
    base = compose_train()
    cfg = compose_train(f"experiment={experiment}")
    assert OmegaConf.to_yaml(cfg) != OmegaConf.to_yaml(base), "an experiment must change something"


def test_default_recipe_is_johnsons(compose_train):
    cfg = compose_train()
    assert cfg.trainer.max_steps == 40000
    assert cfg.system.optimizer.lr == pytest.approx(1e-3)
    assert (
        cfg.data.name == "imagenet_mini" and cfg.data.batch_size == 4 and cfg.data.image_size == 256
    )


def test_logger_and_callbacks_instantiate(compose_train, tmp_path):
    from fastnst.train import _instantiate_group

    cfg = compose_train()
    loggers = _instantiate_group(cfg.logger)
    callbacks = _instantiate_group(cfg.callbacks)
    assert loggers and callbacks
    assert str(tmp_path) in loggers[0].log_dir


@pytest.mark.parametrize("entry", ["gatys", "train", "stylize", "export", "evaluate"])
def test_help_names_the_program(entry):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / f"{entry}.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{entry}: ")
    assert f"usage: python {entry}.py" in result.stdout


def test_gatys_help_lists_only_the_groups_gatys_uses():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "gatys.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    groups = result.stdout.split("groups (group=option):")[1].split("\n\n")[0]
    listed = {line.split(":")[0].strip() for line in groups.splitlines() if ": " in line}
    assert listed == {"style", "loss"}, groups
    assert "starry_night" in groups and "multi" not in groups


def test_make_help_gatys_example_passes_the_required_output():
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    example = next(line for line in makefile.splitlines() if line.startswith("gatys:"))
    gatys = OmegaConf.load(CONFIG_DIR / "gatys.yaml")
    required = [k for k in gatys if OmegaConf.is_missing(gatys, k)]
    assert required == ["content", "output"]
    for key in required:
        assert f"{key}=" in example, example


@pytest.mark.parametrize("value", [None, "", "  "])
def test_data_dir_without_fastnst_data_is_data_under_the_default_root(monkeypatch, value):
    from fastnst.config import data_dir, default_root

    if value is None:
        monkeypatch.delenv("FASTNST_DATA", raising=False)
    else:
        monkeypatch.setenv("FASTNST_DATA", value)
    assert data_dir() == default_root() / "data"


def test_data_dir_is_fastnst_data_and_the_configs_follow_it(monkeypatch, tmp_path, compose_train):
    from fastnst.config import data_dir

    monkeypatch.setenv("FASTNST_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    cfg = compose_train()
    assert cfg.paths.data_dir == str(tmp_path)
    assert cfg.data.root == str(tmp_path / "imagenet-mini")


def test_an_empty_fastnst_data_is_unset_in_the_configs(monkeypatch, compose_train):
    from fastnst.config import default_root

    monkeypatch.setenv("FASTNST_DATA", "")
    assert compose_train().paths.data_dir == str(default_root() / "data")
