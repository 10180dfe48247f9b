"""Training speed and scale: mixed precision, decoded cache, LR scaling, compile, DDP, SLURM
launcher config. Tiny CPU runs (32 px, a few steps)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch

import fastnst.data as data_mod
from fastnst.callbacks import resolve_check_interval
from fastnst.data import DecodedCache, StyleDataModule
from fastnst.module import resolve_channels_last, scaled_lr
from fastnst.train import build_system, train
from tests.helpers import scalars, tiny

REPO = Path(__file__).resolve().parents[1]

QUIET = ("trainer.val_check_interval=1000", "callbacks.images.every_n_steps=0")


# ---- mixed precision ---------------------------------------------------------------------------


def test_bf16_mixed_and_channels_last_on_cpu_train_with_finite_loss(
    compose_train, photo_folder, style_env
):
    cfg = compose_train(
        *tiny(
            photo_folder(6),
            *QUIET,
            "trainer.precision=bf16-mixed",
            "system.channels_last=true",
            steps=2,
        )
    )
    result = train(cfg)
    losses = scalars(result["run_dir"], "train/loss")
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses.values())


def test_fp16_mixed_with_grad_scaling_trains_with_finite_loss(
    compose_train, photo_folder, style_env
):
    """Lightning turns 16-mixed into bf16 on CPU, so its fp16 plugin is given explicitly: the
    same autocast + GradScaler path as trainer.precision=16-mixed on CUDA."""
    from pytorch_lightning.plugins.precision import MixedPrecision

    cfg = compose_train(*tiny(photo_folder(6), *QUIET, steps=2))
    datamodule = hydra.utils.instantiate(cfg.data)
    system = build_system(cfg)
    before = [p.detach().clone() for p in system.net.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    plugin = MixedPrecision("16-mixed", device="cpu", scaler=scaler)

    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        plugins=[plugin],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
        limit_val_batches=0,
    )
    trainer.fit(system, datamodule=datamodule)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert scaler.get_scale() > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, system.net.parameters())), (
        "no update applied"
    )


# ---- decoded cache -----------------------------------------------------------------------------


def _dm(folder, cache_dir=None, **kw):
    args = dict(image_size=32, batch_size=2, num_workers=0, val_fraction=0.2, val_size=None)
    args.update(kw)
    dm = StyleDataModule(
        str(folder), "flat", cache=cache_dir is not None, cache_dir=cache_dir, **args
    )
    dm.setup("fit")
    return dm


def test_decoded_cache_gives_the_direct_crops_and_is_reused(photo_folder, tmp_path, monkeypatch):
    folder = photo_folder(8, size=(61, 45))
    (folder / "broken.png").write_bytes(b"not an image at all")
    cache_dir = tmp_path / "cache"
    with pytest.warns(UserWarning, match="broken.png"):
        direct = _dm(folder, val_fraction=0.01)
        cached = _dm(folder, cache_dir, val_fraction=0.01)
    arrays = list(cache_dir.glob("*.npy"))
    assert len(arrays) == 1 and cached.train_set.cache.meta_path.is_file()
    n = len(direct.train_set)
    cached.train_set.seed = direct.train_set.seed
    for code in range(2 * n):  # two epochs: every file, different crops
        a, b = direct.train_set[code], cached.train_set[code]
        if a is None:
            assert b is None and "broken" in direct.train_set.paths[code % n]
        else:
            assert torch.equal(a, b), f"item {code}"

    # a second run with the same files and size decodes nothing
    calls = []
    real_open = data_mod.open_rgb
    monkeypatch.setattr(data_mod, "open_rgb", lambda p: calls.append(p) or real_open(p))
    with warnings.catch_warnings(record=True):
        again = _dm(folder, cache_dir, val_fraction=0.01)
    again.train_set.seed = direct.train_set.seed
    items = [again.train_set[c] for c in range(n)]
    assert calls == [], "the cache was rebuilt or bypassed"
    assert sum(t is None for t in items) == 1
    assert list(cache_dir.glob("*.npy")) == arrays

    # other settings or changed files: a new cache
    assert DecodedCache(again.train_set.paths, 40, cache_dir).key != again.train_set.cache.key
    os.utime(folder / "000.png", ns=(1, 1))
    assert DecodedCache(again.train_set.paths, 32, cache_dir).key != again.train_set.cache.key


def test_cached_training_batches_come_through_the_loader(photo_folder, tmp_path):
    dm = _dm(photo_folder(6), tmp_path / "cache", num_workers=1)
    images = torch.cat([b["image"] for b in dm.train_dataloader()])
    assert images.shape[1:] == (3, 32, 32) and 0 <= images.min() and images.max() <= 1


# ---- learning-rate scaling, speed settings -----------------------------------------------------


def test_lr_scaling_rules():
    assert scaled_lr(1e-3, 16, 4, "sqrt") == pytest.approx(2e-3)
    assert scaled_lr(1e-3, 16, 4, True) == pytest.approx(2e-3)
    assert scaled_lr(1e-3, 16, 4, "linear") == pytest.approx(4e-3)
    assert scaled_lr(1e-3, 16, 4, False) == pytest.approx(1e-3)
    from fastnst.errors import FastNSTError

    with pytest.raises(FastNSTError, match="scale_lr_with_batch"):
        scaled_lr(1e-3, 16, 4, "cubic")


def test_scaled_lr_is_what_the_optimizer_uses(compose_train, photo_folder, style_env):
    cfg = compose_train(
        *tiny(
            photo_folder(10),
            *QUIET,
            "data.batch_size=8",
            "data.val_fraction=0.1",
            "system.optimizer.scale_lr_with_batch=true",
            steps=1,
        )
    )
    result = train(cfg)
    assert scalars(result["run_dir"], "train/lr")[0] == pytest.approx(1e-3 * math.sqrt(8 / 4))


def test_channels_last_and_divergence_interval_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_channels_last("auto", cuda) and not resolve_channels_last("auto", cpu)
    # bf16 on CPU: oneDNN's bf16 kernels want NHWC; fp32 on CPU stays NCHW
    assert resolve_channels_last("auto", cpu, "bf16-mixed") and not resolve_channels_last(
        "auto", cpu, "32-true"
    )
    assert resolve_channels_last(True, cpu) and not resolve_channels_last(False, cpu, "bf16-mixed")
    assert (
        resolve_check_interval("auto", cpu, 50) == 1
        and resolve_check_interval("auto", cuda, 50) == 50
    )
    assert resolve_check_interval(7, cuda, 50) == 7 and resolve_check_interval(None, cpu, 50) == 0


def test_divergence_interval_reports_the_first_bad_step(compose_train, photo_folder, style_env):
    from fastnst.errors import FastNSTError
    from tests.helpers import PoisonBatch

    cfg = compose_train(
        *tiny(photo_folder(9), *QUIET, "callbacks.divergence.check_every_n_steps=3", steps=5)
    )
    with pytest.raises(FastNSTError, match="non-finite loss at step 1"):
        train(cfg, callbacks=[PoisonBatch(1)])  # found at the step-3 check, reported as step 1


def test_compile_option_composes_and_trains(compose_train, photo_folder, style_env):
    """Two training steps through torch.compile's graph capture (TorchDynamo). The default backend
    (inductor) generates C++ for each graph: minutes on a 2-core CPU, so the steps here run the
    captured graphs with backend=eager; FASTNST_TEST_COMPILE=1 uses the default backend."""
    cfg = compose_train(*tiny(photo_folder(6), *QUIET, "compile=true", steps=2))
    assert cfg.system.compile is True
    system = build_system(cfg)
    system.compile_networks(cfg.system.compile)
    assert "_orig_mod" not in str(list(system.state_dict())), (
        "compile must not change checkpoint keys"
    )
    if os.environ.get("FASTNST_TEST_COMPILE") != "1":
        cfg = compose_train(
            *tiny(photo_folder(6), *QUIET, "system.compile={backend: eager}", steps=2)
        )
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    result = train(cfg)
    assert counters["stats"]["unique_graphs"] >= 2, "the transformer and the VGG ran uncompiled"
    losses = scalars(result["run_dir"], "train/loss")
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses.values())


# ---- DDP on two CPU processes ------------------------------------------------------------------


@pytest.mark.slow
def test_ddp_two_processes_match_one_process_with_the_doubled_batch(
    compose_train, photo_folder, style_env, tmp_path
):
    folder = photo_folder(9)  # 8 train / 1 val
    common = tiny(folder, *QUIET, "data.augment=false", steps=3)
    single = train(
        compose_train(
            *[a for a in common if not a.startswith("data.batch_size")],
            "data.batch_size=4",
            run_dir=tmp_path / "single",
        )
    )
    run_dir = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            *common,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            "data.batch_size=2",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one run directory for both ranks, written by rank zero
    assert (run_dir / "config.yaml").is_file() and (run_dir / "model.pt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    a, b = scalars(single["run_dir"], "train/loss"), scalars(run_dir, "train/loss")
    assert sorted(a) == sorted(b) == [0, 1, 2]
    # step 0 is the same forward; later steps follow Adam updates from gradients summed in another
    # order (oneDNN's AVX-512 fp32 kernels block by batch size), which Adam's first steps amplify
    # to ~0.2% on an AMX Xeon
    assert b[0] == pytest.approx(a[0], rel=1e-5), f"step 0: {a} vs {b}"
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=5e-3), f"step {step}: {a} vs {b}"


# ---- SLURM launcher ----------------------------------------------------------------------------


def test_submitit_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    from tests.helpers import compose_config

    cfg = compose_config(
        "train", "hydra/launcher=submitit_slurm", "style=candy", return_hydra_config=True
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    assert set(SlurmQueueConf.__dataclass_fields__) <= set(launcher), (
        "a SlurmLauncher argument is missing"
    )
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    slurm = SlurmLauncher(
        **{k: v for k, v in launcher.items() if k not in ("_target_", "submitit_folder", "name")},
        submitit_folder="/tmp/x",
        name="train",
    )
    assert slurm.params["timeout_min"] == launcher.timeout_min
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1
