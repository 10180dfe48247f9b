"""Model files and run directories from elsewhere cannot run code: every loader reads torch files
with weights_only=True (refusing anything else with one line, exit 2, unless trust_model_file)
and builds only fastnst's own classes from a run's config.yaml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fastnst.apps.export import export_cli
from fastnst.apps.stylize import stylize_cli
from fastnst.artifacts import load_network, save_exported
from fastnst.cli import INFERENCE_CONFIG_DIR
from fastnst.errors import FastNSTError
from fastnst.stylize import Stylizer
from fastnst.transformer import TransformerNet
from tests.helpers import CodeRunningPickle, compose_config, exit_code

REPO = Path(__file__).resolve().parents[1]
TINY = {"channels": (8, 16, 32), "num_residual": 1}


def evaluate_exit_code(run, tmp_path) -> int:
    """evaluate.py on `run` with one small photo and no Gatys reference: its exit code."""
    from fastnst.apps.evaluate import evaluate_cli
    from tests.helpers import make_image

    photos = tmp_path / "photos"
    make_image(photos / "a.png")
    cfg = compose_config(
        "evaluate",
        f"run={run}",
        f"photos={photos}",
        "num_photos=1",
        "gatys_iterations=0",
        "tensorboard=false",
        config_dir=INFERENCE_CONFIG_DIR,
    )
    return exit_code(evaluate_cli, cfg)


@pytest.fixture
def evil_pt(tmp_path, marker) -> Path:
    path = tmp_path / "evil.pt"
    torch.save({"x": CodeRunningPickle(marker)}, path)
    return path


@pytest.fixture
def evil_ckpt(tmp_path, marker) -> Path:
    """Looks like a fastnst checkpoint, with the payload hidden among the hyperparameters."""
    torch.manual_seed(0)
    net = TransformerNet(**TINY)
    path = tmp_path / "evil.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "fastnst_model_config": dict(net.config),
            "optimizer_states": [{}],
            "hyper_parameters": {"x": CodeRunningPickle(marker)},
        },
        path,
    )
    return path


def one_error_line(err: str, name: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert name in lines[0] and "trust_model_file=true" in lines[0]
    return lines[0]


@pytest.mark.parametrize("fixture", ["evil_pt", "evil_ckpt"])
def test_python_loaders_refuse_files_that_would_run_code(request, fixture, marker, tmp_path):
    path = request.getfixturevalue(fixture)
    for load in (load_network, Stylizer.load):
        with pytest.raises(FastNSTError, match=f"{path.name}.*trust_model_file=true"):
            load(path)
    run = tmp_path / "run"  # the same file as a run directory's model.pt / last.ckpt
    target = run / "model.pt" if fixture == "evil_pt" else run / "checkpoints" / "last.ckpt"
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes())
    with pytest.raises(FastNSTError, match="refused"):
        Stylizer.load(run)
    assert not marker.exists()


def test_stylize_and_export_clis_refuse_a_file_that_would_run_code(
    evil_pt, evil_ckpt, marker, image_factory, capsys
):
    photo = image_factory("photo.png", size=(32, 32))
    for path in (evil_pt, evil_ckpt):
        cfg = compose_config(
            "stylize", f"model={path}", f"input={photo}", config_dir=INFERENCE_CONFIG_DIR
        )
        assert exit_code(stylize_cli, cfg) == 2
        one_error_line(capsys.readouterr().err, path.name)
        cfg = compose_config("export", f"model={path}", config_dir=INFERENCE_CONFIG_DIR)
        assert exit_code(export_cli, cfg) == 2
        one_error_line(capsys.readouterr().err, path.name)
    assert not marker.exists()


def test_evaluate_refuses_a_run_whose_model_would_run_code(evil_pt, marker, tmp_path, capsys):

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(evil_pt.read_bytes())
    OmegaConf.save(
        compose_config("train", f"style.image={tmp_path / 'style.png'}", "run_dir=x"),
        run / "config.yaml",
        resolve=True,
    )
    from tests.helpers import make_image

    make_image(tmp_path / "style.png")
    assert evaluate_exit_code(run, tmp_path) == 2
    one_error_line(capsys.readouterr().err, "model.pt")
    assert not marker.exists()


def test_training_checkpoint_check_refuses_a_file_that_would_run_code(evil_ckpt, marker):
    from fastnst.artifacts import check_is_training_checkpoint

    with pytest.raises(FastNSTError, match="evil.ckpt.*trust_model_file"):
        check_is_training_checkpoint(evil_ckpt)
    assert not marker.exists()


def test_stylize_command_line_refuses_evil_file_in_one_line_exit_2(evil_pt, marker, image_factory):
    photo = image_factory("photo.png", size=(32, 32))
    result = subprocess.run(
        [sys.executable, str(REPO / "stylize.py"), f"model={evil_pt}", f"input={photo}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    one_error_line(result.stderr, "evil.pt")
    assert not marker.exists()


def _older_file(tmp_path) -> tuple[Path, TransformerNet]:
    """An exported model whose meta holds a non-plain object (as older or foreign files may)."""
    import argparse

    torch.manual_seed(0)
    net = TransformerNet(**TINY).eval()
    path = save_exported(tmp_path / "old.pt", net, {"args": argparse.Namespace(style="x")})
    return path, net


def test_trust_model_file_loads_an_older_file_and_says_so(tmp_path, image_factory, capsys):
    path, net = _older_file(tmp_path)
    with pytest.raises(FastNSTError, match="trust_model_file"):
        Stylizer.load(path)
    x = torch.rand(1, 3, 32, 32)
    s = Stylizer.load(path, trust_model_file=True)
    assert "trust_model_file=true" in capsys.readouterr().err
    with torch.no_grad():
        assert torch.allclose(s(x), net(x), atol=1e-5)
    photo = image_factory("photo.png", size=(32, 32))
    cfg = compose_config(
        "stylize",
        f"model={path}",
        f"input={photo}",
        f"output={tmp_path / 'o.png'}",
        "trust_model_file=true",
        config_dir=INFERENCE_CONFIG_DIR,
    )
    assert exit_code(stylize_cli, cfg) == 0 and (tmp_path / "o.png").is_file()
    warning = [line for line in capsys.readouterr().err.splitlines() if "trust_model_file" in line]
    assert len(warning) == 1 and "old.pt" in warning[0]


def test_files_training_writes_load_with_weights_only(compose_train, photo_folder, style_env):
    """model.pt and Lightning's last.ckpt (with hyperparameters, optimizer, scheduler and callback
    states) are plain: they load without trust_model_file."""
    from fastnst.train import train
    from tests.helpers import tiny

    cfg = compose_train(
        *tiny(photo_folder(4), "system.scheduler={name:cosine,warmup_steps:1}", steps=2)
    )
    run_dir = train(cfg)["run_dir"]
    for path in (run_dir / "model.pt", run_dir / "checkpoints" / "last.ckpt"):
        torch.load(path, weights_only=True)
        load_network(path)


CONFIG_WITH_FOREIGN_TARGETS = {
    "model": {"model": {"_target_": "os.system"}},
    "loss": {"loss": {"_target_": "builtins.exec", "_args_": ["open('MARKER', 'w')"]}},
    "nested": {
        "loss": {"_target_": "fastnst.losses.PerceptualLoss", "extra": {"_target_": "os.system"}}
    },
    "disguised": {"loss": {"_target_": "fastnst.evaluate.os.system"}},
}


@pytest.mark.parametrize("case", sorted(CONFIG_WITH_FOREIGN_TARGETS))
def test_run_readers_build_only_fastnst_classes_from_config_yaml(case, tmp_path, marker):
    from fastnst.apps.compare_runs import compare_runs
    from fastnst.evaluate import evaluate_run, load_run_config

    run = tmp_path / "run"
    run.mkdir()
    cfg = compose_config("train", "run_dir=x")
    OmegaConf.set_struct(cfg, False)
    cfg = OmegaConf.merge(cfg, OmegaConf.create(CONFIG_WITH_FOREIGN_TARGETS[case]))
    OmegaConf.save(cfg, run / "config.yaml")
    text = (run / "config.yaml").read_text().replace("MARKER", str(marker))
    (run / "config.yaml").write_text(text)
    with pytest.raises(FastNSTError, match="_target_"):
        load_run_config(run)
    with pytest.raises(FastNSTError, match="_target_"):
        evaluate_run(run, photos=[], gatys_iterations=0, tensorboard=False)
    with pytest.raises(FastNSTError, match="_target_"):
        compare_runs([run], tmp_path / "report", photos=[], gatys_iterations=0)
    # Stylizer.load on a run reads only model.pt / the checkpoint, never config.yaml's targets
    save_exported(run / "model.pt", TransformerNet(**TINY))
    Stylizer.load(run)
    assert not marker.exists()


# -- crafted payloads: a torch file shaped like an exported model or a checkpoint, one field of
# the wrong type each; every case is one line naming the file (exit 2), never a traceback

BAD_VALUES = {
    "none": None,
    "str": "2",
    "bool": True,
    "float_nan": float("nan"),
    "negative": -1,
    "huge_int": 10**30,
    "list": [1, 2],
    "nested": {"a": {"b": {"c": [1, {"d": None}]}}},
    "tensor": torch.ones(2),
    "bytes": b"\x00\x01",
}


def _exported_payload(net) -> dict:
    return {
        "format": "fastnst.transformer",
        "version": 1,
        "config": dict(net.config),
        "state_dict": {k: v.clone() for k, v in net.state_dict().items()},
        "meta": {"stroke_scale": 1.0},
    }


def _checkpoint_payload(net) -> dict:
    return {
        "fastnst_model_config": dict(net.config),
        "state_dict": {f"net.{k}": v.clone() for k, v in net.state_dict().items()},
        "epoch": 0,
        "global_step": 1,
    }


PAYLOADS = {"exported": _exported_payload, "checkpoint": _checkpoint_payload}
# (payload kind, field path) -> the fields whose every bad value must be refused
FIELDS = {
    "exported": [
        ("version",),
        ("config",),
        ("config", "channels"),
        ("config", "num_residual"),
        ("config", "norm"),
        ("config", "styles"),
        ("state_dict",),
        ("meta",),
        ("meta", "stroke_scale"),
        ("meta", "global_step"),
    ],
    "checkpoint": [
        ("fastnst_model_config",),
        ("fastnst_model_config", "channels"),
        ("fastnst_model_config", "num_residual"),
        ("state_dict",),
    ],
}
# values a field may legitimately hold: those cases must load
ALLOWED = {
    (("version",), "bool"): False,  # refused (a bool is not a version)
    (("meta",), "none"): True,  # no meta
    (("meta",), "nested"): True,  # meta is free-form beside the keys fastnst reads
    (("meta", "stroke_scale"), "none"): True,  # no scale of its own
    (("meta", "global_step"), "none"): True,
    (("config", "styles"), "none"): True,  # a single-style network
    (("version",), "negative"): True,  # an older version number reads
}
CRAFTED = [
    (kind, field, value) for kind in PAYLOADS for field in FIELDS[kind] for value in BAD_VALUES
]


def _crafted(tmp_path: Path, kind: str, field: tuple, value: str) -> Path:
    torch.manual_seed(0)
    payload = PAYLOADS[kind](TransformerNet(**TINY))
    target = payload
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = BAD_VALUES[value]
    path = tmp_path / f"{kind}.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "kind,field,value", CRAFTED, ids=lambda x: ".".join(x) if isinstance(x, tuple) else str(x)
)
def test_crafted_payload_is_one_line_or_loads(kind, field, value, tmp_path):
    path = _crafted(tmp_path, kind, field, value)
    if ALLOWED.get((field, value)):
        Stylizer.load(path)(torch.rand(1, 3, 24, 24))
        return
    with pytest.raises(FastNSTError) as info:
        Stylizer.load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert len(message) < 400, message


@pytest.mark.parametrize(
    "kind,field,value",
    [
        ("exported", ("version",), "str"),
        ("exported", ("meta",), "list"),
        ("exported", ("meta", "stroke_scale"), "float_nan"),
        ("exported", ("meta", "stroke_scale"), "str"),
        ("exported", ("meta", "stroke_scale"), "bool"),
        ("checkpoint", ("state_dict",), "nested"),
        ("checkpoint", ("fastnst_model_config", "channels"), "huge_int"),
    ],
)
def test_crafted_payload_through_the_cli_is_one_line_exit_2(
    kind, field, value, tmp_path, image_factory, capsys
):
    path = _crafted(tmp_path, kind, field, value)
    photo = image_factory("photo.png", size=(32, 32))
    cfg = compose_config(
        "stylize", f"model={path}", f"input={photo}", config_dir=INFERENCE_CONFIG_DIR
    )
    assert exit_code(stylize_cli, cfg) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("fastnst: error: ") and path.name in err[0], err


@pytest.mark.parametrize("value", [float("nan"), -1, 100, "2", True, 0.1, float("inf")])
def test_a_meta_stroke_scale_out_of_range_or_not_a_number_is_refused(value, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    payload = _exported_payload(TransformerNet(**TINY))
    payload["meta"]["stroke_scale"] = value
    torch.save(payload, path)
    with pytest.raises(FastNSTError, match=r"m.pt: meta stroke_scale must be"):
        Stylizer.load(path)
    with pytest.raises(FastNSTError, match="meta stroke_scale must be"):
        save_exported(tmp_path / "written.pt", TransformerNet(**TINY), {"stroke_scale": value})
    assert not (tmp_path / "written.pt").exists()


@pytest.mark.parametrize("value", [100, float("nan"), "2"])
def test_evaluate_refuses_a_run_whose_model_meta_is_crafted(value, tmp_path, capsys):
    """evaluate.py paints the style at the network's stroke scale: a crafted one is one line
    before anything is built (it used to crash or try to allocate gigabytes)."""
    from tests.helpers import make_image

    run = tmp_path / "run"
    run.mkdir()
    payload = _exported_payload(TransformerNet(**TINY))
    payload["meta"]["stroke_scale"] = value
    torch.save(payload, run / "model.pt")
    make_image(tmp_path / "style.png")
    OmegaConf.save(
        compose_config("train", f"style.image={tmp_path / 'style.png'}", "run_dir=x"),
        run / "config.yaml",
        resolve=True,
    )
    assert evaluate_exit_code(run, tmp_path) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "model.pt: meta stroke_scale must be" in err[0], err
