"""train.py as a user runs it: resume=<run dir> alone, bad settings as one line, what a failed
or debug run leaves behind, Ctrl-C, the local DDP sweep guard, file modes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from fastnst import cli
from fastnst.atomic import atomic_torch_save
from fastnst.errors import FastNSTError
from fastnst.train import _check_multirun_ddp, absolute_user_paths, train
from tests.helpers import (
    assert_user_error,
    compose_config,  # noqa: E402
    tiny,
)

REPO = Path(__file__).resolve().parents[1]


def short_run_args(photos: str, style: str, steps: int = 2) -> list[str]:
    """A run far from the defaults: a smaller network, 32 px crops, relative paths."""
    return [
        "debug=quick",
        "model=johnson_fast",
        "data=folder",
        f"data.root={photos}",
        "data.image_size=32",
        f"style.image={style}",
        "style.size=48",
        f"trainer.max_steps={steps}",
        "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false",
        "callbacks.images.every_n_steps=0",
        "seed=0",
    ]


def config_files(run_dir: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in [run_dir / "config.yaml", *(run_dir / ".hydra").glob("*.yaml")]
    }


@pytest.fixture
def short_run(run_entry, photo_folder, synthetic_style, tmp_path, monkeypatch):
    """A finished 2-step run started from tmp_path with relative paths; returns its directory."""
    photo_folder(9)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "short"
    code, err = run_entry(
        cli.train_main, *short_run_args("photos", synthetic_style.name), f"hydra.run.dir={run_dir}"
    )
    assert code == 0, err
    return run_dir


def test_resume_alone_continues_with_the_runs_own_config_and_keeps_its_files(
    short_run, run_entry, tmp_path, monkeypatch, capsys
):
    before = config_files(short_run)
    monkeypatch.chdir(tmp_path.parent)  # resumed from another folder: the run's paths are absolute
    code, err = run_entry(cli.train_main, f"resume={short_run}", "trainer.max_steps=4")
    assert code == 0, err
    ckpt = torch.load(short_run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4
    assert ckpt["fastnst_model_config"]["channels"] == [
        12,
        24,
        48,
    ]  # johnson_fast, not the default network
    assert config_files(short_run) == before
    log = (short_run / "train.log").read_text()
    assert "resuming" in log and "changed trainer.max_steps: 2 -> 4" in log


def test_resume_refuses_an_override_that_changes_the_network(short_run, run_entry):
    before = config_files(short_run)
    code, err = run_entry(cli.train_main, f"resume={short_run}", "model=johnson")
    assert_user_error(code, err, "model.channels cannot change")
    code, err = run_entry(cli.train_main, f"resume={short_run}", "data.image_size=64")
    assert_user_error(code, err, "data.image_size cannot change")
    assert config_files(short_run) == before


def test_resume_accepts_the_original_command_line(short_run, run_entry, synthetic_style):
    # the same overrides again are no change; only max_steps differs
    code, err = run_entry(
        cli.train_main,
        *short_run_args("photos", synthetic_style.name, steps=3),
        f"resume={short_run}",
    )
    assert code == 0, err
    assert (
        torch.load(short_run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    )


def test_resume_reads_hydras_config_when_config_yaml_is_missing_and_follows_a_moved_run(
    tmp_path, style_env
):
    from omegaconf import OmegaConf

    from fastnst.resume import resume_config

    composed = compose_config("train", "model=johnson_fast", "data=folder", "data.root=/photos")
    only_hydra = tmp_path / "only_hydra"
    (only_hydra / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        composed, only_hydra / ".hydra" / "config.yaml"
    )  # unresolved, as Hydra writes it
    cfg, changes = resume_config(only_hydra, ["trainer.max_steps=7"])
    assert (
        cfg.run_dir == str(only_hydra)
        and cfg.callbacks.last_checkpoint.dirpath == f"{only_hydra}/checkpoints"
    )
    assert list(cfg.model.channels) == [12, 24, 48] and cfg.trainer.max_steps == 7
    assert changes == ["trainer.max_steps: 40000 -> 7"]

    moved = tmp_path / "moved"
    moved.mkdir()
    saved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    saved.run_dir = "/old/place/run"
    saved.callbacks.last_checkpoint.dirpath = "/old/place/run/checkpoints"
    OmegaConf.save(saved, moved / "config.yaml")
    cfg, _ = resume_config(moved)
    assert cfg.callbacks.last_checkpoint.dirpath == f"{moved}/checkpoints"


def test_resume_of_a_multi_style_run_accepts_its_original_command_line(tmp_path, style_env):
    # style.members is derived from style.names by train(): not asked for, so never compared
    from omegaconf import OmegaConf

    from fastnst.multistyle import expand_multi_style
    from fastnst.resume import resume_config

    original = [
        "style=multi",
        "style.names=[starry_night,the_scream]",
        "model=johnson_fast",
        "data=folder",
        "data.root=/photos",
    ]
    run_dir = tmp_path / "multi_run"
    run_dir.mkdir()
    cfg = compose_config("train", *original, f"run_dir={run_dir}")
    expand_multi_style(cfg)  # as train() does before saving config.yaml
    OmegaConf.save(
        OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)), run_dir / "config.yaml"
    )
    assert [m["name"] for m in OmegaConf.load(run_dir / "config.yaml").style.members] == [
        "starry_night",
        "the_scream",
    ]
    resumed, changes = resume_config(run_dir, [*original, "trainer.max_steps=7"])
    assert changes == ["trainer.max_steps: 40000 -> 7"]
    assert [m["name"] for m in resumed.style.members] == ["starry_night", "the_scream"]
    # the style list itself still cannot change
    with pytest.raises(FastNSTError, match="style.names cannot change"):
        resume_config(
            run_dir,
            [
                "style=multi",
                "style.names=[starry_night,wave]",
                "model=johnson_fast",
                "data=folder",
                "data.root=/photos",
            ],
        )


def test_moved_options_keep_their_old_names_on_the_command_line(capsys):
    from fastnst.cli import renamed_overrides

    old = [
        "system.log_images_every_n_steps=0",
        "system.num_log_images=2",
        "system.divergence.rollback=true",
        "+system.divergence.max_rollbacks=5",
        "system.divergence={rollback: true}",
        "trainer.max_steps=3",
    ]
    new = renamed_overrides(old)
    assert new == [
        "callbacks.images.every_n_steps=0",
        "callbacks.images.num_images=2",
        "callbacks.divergence.rollback=true",
        "+callbacks.divergence.max_rollbacks=5",
        "callbacks.divergence={rollback: true}",
        "trainer.max_steps=3",
    ]
    assert (
        "system.log_images_every_n_steps is now callbacks.images.every_n_steps"
        in capsys.readouterr().err
    )
    cfg = compose_config("train", *new[:3])
    assert cfg.callbacks.images.every_n_steps == 0 and cfg.callbacks.divergence.rollback is True


def test_resume_of_a_missing_run_directory_creates_nothing(run_entry, tmp_path):
    missing = tmp_path / "runs" / "never_ran"
    code, err = run_entry(cli.train_main, f"resume={missing}")
    assert_user_error(code, err, "no such run directory")
    assert not missing.exists()


def test_relative_style_and_data_paths_are_stored_absolute(short_run, tmp_path, synthetic_style):
    from omegaconf import OmegaConf

    saved = OmegaConf.load(short_run / "config.yaml")
    assert saved.style.image == str(synthetic_style.resolve())
    assert saved.data.root == str((tmp_path / "photos").resolve())
    cfg = compose_config(
        "train",
        "style=custom",
        "style.images=[a.jpg,sub/b.png]",
        "style.images_dir=paint",
        "vgg.weights=w/vgg.pth",
        "run_dir=x",
    )
    absolute_user_paths(cfg)
    assert list(cfg.style.images) == [
        str(Path("a.jpg").resolve()),
        str(Path("sub/b.png").resolve()),
    ]
    assert cfg.style.images_dir == str(Path("paint").resolve())
    assert cfg.vgg.weights == str(Path("w/vgg.pth").resolve())
    cfg = compose_config("train", "vgg.weights=torchvision", "run_dir=x")
    absolute_user_paths(cfg)
    assert cfg.vgg.weights == "torchvision"


def test_checkpoints_and_model_follow_the_umask(short_run, tmp_path):
    old = os.umask(0o002)
    try:
        path = atomic_torch_save({"x": 1}, tmp_path / "m.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o664
    for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "model.pt"):
        assert (short_run / name).stat().st_mode & 0o777 == 0o666 & ~old, name


# -- bad settings: one line, exit code 2, and no run directory left behind ---------------------


def _offline(monkeypatch):
    import urllib.error

    from torchvision.models._api import WeightsEnum

    def no_network(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", no_network)


# case: (overrides, keys of tiny()'s overrides to drop, the message, a preparation)
BAD_SETTINGS = {
    "folder_without_root": ([], ["data.root"], "data.root: required option not set", None),
    "missing_vgg_file": (
        ["vgg.weights=/nope.pth"],
        [],
        "/nope.pth: VGG weight file not found",
        None,
    ),
    "torchvision_vgg_offline": (["vgg.weights=torchvision"], [], "could not download", _offline),
    "gpu_without_gpu": (["trainer=gpu"], ["trainer.accelerator"], "trainer:", None),
}


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_training_setting_is_one_line_and_leaves_no_run_directory(
    case, run_entry, photo_folder, synthetic_style, tmp_path, monkeypatch
):
    overrides, drop, message, prepare = BAD_SETTINGS[case]
    if case == "gpu_without_gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is available")
    if prepare:
        prepare(monkeypatch)
    runs = tmp_path / "runs"
    args = tiny(
        photo_folder(4), f"style.image={synthetic_style}", f"paths.output_root={runs}", steps=1
    )
    args = [a for a in args if a.split("=")[0] not in drop] + overrides
    code, err = run_entry(cli.train_main, *args)
    assert_user_error(code, err, message)
    assert not runs.exists() or not any(runs.iterdir()), sorted(runs.rglob("*"))


@pytest.mark.parametrize("where", ["a_file", "below_a_file"])
def test_output_root_that_cannot_hold_runs_is_one_line(
    where, run_entry, photo_folder, synthetic_style, tmp_path
):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    root = blocker if where == "a_file" else blocker / "runs"
    code, err = run_entry(
        cli.train_main,
        *tiny(
            photo_folder(4), f"style.image={synthetic_style}", f"paths.output_root={root}", steps=1
        ),
    )
    assert_user_error(code, err, "paths.output_root cannot be created")
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    "overrides, value",
    [
        (["trainer.precision=bogus"], "'bogus'"),
        (["trainer.precision=AUTO"], "'AUTO'"),
        (["trainer=cpu", "trainer.precision=bf16-true"], "'bf16-true'"),
        (["trainer=cpu", "trainer.precision=16-mixed"], "16-mixed"),
    ],
)
def test_a_precision_train_cannot_run_is_one_line_naming_the_choices(
    overrides, value, run_entry, photo_folder, synthetic_style, tmp_path
):
    runs = tmp_path / "runs"
    args = tiny(
        photo_folder(4), f"style.image={synthetic_style}", f"paths.output_root={runs}", steps=1
    )
    code, err = run_entry(cli.train_main, *args, *overrides)
    assert_user_error(code, err, value)
    assert "auto, 32-true, bf16-mixed" in err and "GPU available" not in err
    assert not runs.exists() or not any(runs.iterdir())


def test_a_resumed_run_with_a_bad_saved_precision_is_one_line(short_run, run_entry):
    config = short_run / "config.yaml"
    config.write_text(config.read_text().replace("precision: 32-true", "precision: bf16-true"))
    code, err = run_entry(cli.train_main, f"resume={short_run}")
    assert_user_error(code, err, "'bf16-true'")


@pytest.mark.parametrize("data", ["an_empty_folder", "unset"])
def test_a_missing_data_folder_names_fastnst_data_before_lightning_starts(
    data, run_entry, synthetic_style, tmp_path, monkeypatch
):
    from fastnst.config import default_root

    if data == "unset":
        monkeypatch.delenv("FASTNST_DATA", raising=False)
        if (default_root() / "data" / "imagenet-mini").is_dir():
            pytest.skip("the default data folder holds imagenet-mini")
    else:
        monkeypatch.setenv("FASTNST_DATA", str(tmp_path / "data"))
        (tmp_path / "data").mkdir()
    runs = tmp_path / "runs"
    code, err = run_entry(
        cli.train_main,
        f"style.image={synthetic_style}",
        f"paths.output_root={runs}",
        "trainer.accelerator=cpu",
    )
    assert_user_error(code, err, "imagenet-mini: data folder not found")
    assert "FASTNST_DATA" in err and "paths.data_dir" in err and "GPU available" not in err
    assert not runs.exists()


def test_a_run_that_fails_before_its_first_step_leaves_no_run_directory(
    run_entry, synthetic_style, tmp_path
):
    empty = tmp_path / "no_photos"
    empty.mkdir()
    runs = tmp_path / "runs"
    code, err = run_entry(
        cli.train_main, *tiny(empty, f"style.image={synthetic_style}", f"paths.output_root={runs}")
    )
    assert_user_error(code, err, "no_photos")
    assert not runs.exists() or not any(runs.iterdir()), sorted(runs.rglob("*"))


def test_debug_fdr_writes_no_outputs(run_entry, photo_folder, synthetic_style, tmp_path):
    runs = tmp_path / "runs"
    args = [
        a
        for a in tiny(
            photo_folder(4), f"style.image={synthetic_style}", f"paths.output_root={runs}"
        )
        if not a.startswith("trainer.max_steps")
    ]
    code, err = run_entry(cli.train_main, *args, "debug=fdr")
    assert code == 0, err
    assert not runs.exists() or not any(runs.iterdir()), sorted(runs.rglob("*"))


# -- Ctrl-C ------------------------------------------------------------------------------------


class CtrlC(pl.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_exits_130_with_one_line_and_keeps_last_checkpoint(
    compose_train, photo_folder, style_env, tmp_path, capsys
):
    cfg = compose_train(
        *tiny(
            photo_folder(6),
            "callbacks.images.every_n_steps=0",
            "trainer.val_check_interval=100",
            "callbacks.last_checkpoint.every_n_steps=0",
            steps=10,
        ),
        run_dir=tmp_path / "run",
    )
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT once it caught one
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.run_reporting_errors(lambda c: train(c, callbacks=[CtrlC(3)]), cfg)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "fastnst: interrupted"
    assert (
        torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)[
            "global_step"
        ]
        == 3
    )


# -- trainer=ddp inside a local multirun ---------------------------------------------------------


def test_local_ddp_multirun_guard_fires_on_the_trainers_launcher(tmp_path):
    from hydra.core.hydra_config import HydraConfig

    trainer = pl.Trainer(
        strategy="ddp", accelerator="cpu", devices=2, logger=False, default_root_dir=str(tmp_path)
    )
    cfg = compose_config("train", "hydra.mode=MULTIRUN", return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        with pytest.raises(FastNSTError, match="cannot run inside a local multirun"):
            _check_multirun_ddp(trainer)
        single = pl.Trainer(
            accelerator="cpu", devices=1, logger=False, default_root_dir=str(tmp_path)
        )
        _check_multirun_ddp(single)  # one process: nothing to refuse
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.slow
def test_local_ddp_multirun_stops_with_a_clear_error(photo_folder, style_env, tmp_path):
    args = [
        a
        for a in tiny(photo_folder(4), f"paths.output_root={tmp_path / 'runs'}", steps=1)
        if a != "seed=0"
    ]
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-m",
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.precision=32-true",
            *args,
            "seed=0,1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "cannot run inside a local multirun" in result.stderr
    assert "Traceback" not in result.stderr
