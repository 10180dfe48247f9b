"""trainer.precision=auto (trainer=cpu): bf16-mixed on CPUs with native bf16, fp32 elsewhere; the
losses stay fp32 under bf16 autocast; loss.feature_scale (the pytorch/examples peer preset)."""

from __future__ import annotations

import logging

import pytest
import pytorch_lightning as pl
import torch

import fastnst.accel.autotune as autotune
from fastnst.images import load_image
from fastnst.losses import PerceptualLoss
from fastnst.train import resolve_precision, train
from fastnst.vgg import VGG19Features
from tests.helpers import tiny

QUIET = ("trainer.val_check_interval=1000", "callbacks.images.every_n_steps=0", "export=false")


@pytest.fixture
def cpu_flags(monkeypatch):
    """cpu_flags(*flags): /proc/cpuinfo as if the CPU had exactly these flags."""

    def fake(*flags):
        monkeypatch.setattr(autotune, "cpu_info", lambda: ("Test CPU", frozenset(flags)))

    return fake


@pytest.mark.parametrize("flag", ["amx_bf16", "avx512_bf16"])
def test_trainer_cpu_chooses_bf16_mixed_where_the_cpu_has_native_bf16(
    compose_train, cpu_flags, flag
):
    cpu_flags("avx2", "avx512f", flag)
    precision, why = resolve_precision(compose_train("trainer=cpu").trainer)
    assert precision == "bf16-mixed"
    assert flag in why and "Test CPU" in why and "\n" not in why


def test_trainer_cpu_keeps_fp32_on_an_avx2_only_cpu(compose_train, cpu_flags):
    cpu_flags("avx2", "fma", "avx512f")  # AVX-512 without its bf16 extension: emulated bf16
    precision, why = resolve_precision(compose_train("trainer=cpu").trainer)
    assert precision == "32-true"
    assert "no native bf16" in why


@pytest.mark.parametrize(
    ("flags", "asked"), [(("avx2", "amx_bf16"), "32-true"), (("avx2",), "bf16-mixed")]
)
def test_trainer_precision_overrides_the_automatic_choice(compose_train, cpu_flags, flags, asked):
    cpu_flags(*flags)
    assert resolve_precision(
        compose_train("trainer=cpu", f"trainer.precision={asked}").trainer
    ) == (asked, None)


def test_a_cpu_run_trains_in_the_chosen_precision_and_logs_why(
    compose_train, photo_folder, style_env, cpu_flags, caplog
):
    cpu_flags("avx2", "avx512_bf16")
    seen = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append((trainer.precision, pl_module.use_channels_last))

    cfg = compose_train(*tiny(photo_folder(4), *QUIET, "trainer=cpu", steps=1))
    with caplog.at_level(logging.INFO, logger="fastnst.train"):
        train(cfg, callbacks=[Record()])
    assert seen == [("bf16-mixed", True)]  # bf16 on CPU trains on channels_last maps
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("precision ")]
    assert len(chosen) == 1 and "bf16-mixed" in chosen[0] and "avx512_bf16" in chosen[0]


# ---- the loss under bf16 autocast --------------------------------------------------------------


@pytest.fixture(scope="module")
def shallow_vgg() -> VGG19Features:
    return VGG19Features(["block1_conv1", "block1_conv2", "block2_conv1"])


@pytest.fixture
def loss_and_images(shallow_vgg, image_factory, synthetic_style):
    def make(**kwargs):
        loss = PerceptualLoss(
            {"block2_conv1": 1.0},
            {"block1_conv1": 0.5, "block1_conv2": 2.0},
            beta=3.0,
            vgg=shallow_vgg,
            **kwargs,
        )
        loss.set_style([load_image(synthetic_style, size=32)])
        return loss

    photo = load_image(image_factory("photo.png", size=(32, 24), seed=1))
    return make, photo, (photo + 0.1 * torch.rand_like(photo)).clamp(0, 1)


def test_loss_terms_stay_float32_under_bf16_autocast(loss_and_images):
    make, photo, output = loss_and_images
    loss = make()
    exact = loss(output, loss.content_features(photo))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(output, loss.content_features(photo))
    for key in ("total", "content", "style"):
        assert mixed[key].dtype == torch.float32, key
        # bf16 features, fp32 Grams and MSE: close to the fp32 terms, not bf16-rounded sums
        assert torch.allclose(mixed[key], exact[key], rtol=0.05), key


def test_feature_scale_scales_content_by_its_square_and_style_by_its_fourth_power(loss_and_images):
    make, photo, output = loss_and_images
    plain, scaled = make(), make(feature_scale=0.1)
    a, b = (
        plain(output, plain.content_features(photo)),
        scaled(output, scaled.content_features(photo)),
    )
    assert torch.allclose(b["content"], a["content"] * 1e-2, rtol=1e-5)
    assert torch.allclose(b["style"], a["style"] * 1e-4, rtol=1e-5)
    assert torch.allclose(b["total"], b["content"] + 3.0 * b["style"], rtol=1e-5)
    with pytest.raises(ValueError, match="feature_scale"):
        make(feature_scale=0)


# ---- the compiled training step (system.compile) -----------------------------------------------


@pytest.mark.slow
def test_compiled_bf16_training_step_trains_and_says_compile_is_paid_once(
    compose_train, photo_folder, style_env, caplog
):
    losses = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))
            assert pl_module._compiled and pl_module.use_channels_last

    overrides = ("trainer=cpu", "trainer.precision=bf16-mixed", "compile=true")
    cfg = compose_train(*tiny(photo_folder(4), *QUIET, *overrides, steps=12))
    with caplog.at_level(logging.INFO, logger="fastnst.train"):
        train(cfg, callbacks=[Record()])
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < losses[0]  # it trains
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("compile:")]
    assert sum("once per run" in m for m in said) == 2  # announced, then the first step's time
    assert sum("first step took" in m for m in said) == 1


@pytest.mark.parametrize(
    ("device", "precision", "steps", "on", "says"),
    [
        ("cpu", "bf16-mixed", 40000, True, "on"),
        ("cpu", "bf16-mixed", -1, True, "unbounded"),
        ("cpu", "bf16-mixed", 300, False, "off"),
        ("cpu", "32-true", 40000, False, None),
        ("cuda", "bf16-mixed", 40000, False, None),
    ],
)
def test_compile_auto_is_on_for_long_bf16_cpu_runs_only(device, precision, steps, on, says):
    from fastnst.module import resolve_compile

    value, why = resolve_compile("auto", torch.device(device), precision, steps)
    assert value is on
    assert (why is None) if says is None else (says in why and "\n" not in why)
    assert resolve_compile(True, torch.device("cpu"), "32-true", 10) == (True, None)
    assert resolve_compile({"mode": "max-autotune"}, torch.device("cpu"), None, 10)[0] == {
        "mode": "max-autotune"
    }


def test_compile_spelling_is_checked():
    from fastnst.errors import FastNSTError
    from fastnst.module import resolve_compile

    with pytest.raises(FastNSTError, match="system.compile='yes'"):
        resolve_compile("yes", torch.device("cpu"), "bf16-mixed", 40000)


def test_trainer_cpu_composes_compile_auto(compose_train):
    assert compose_train("trainer=cpu").system.compile == "auto"
