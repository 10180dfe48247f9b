"""Multi-style networks (conditional instance norm): the network, its fused and tiled forwards,
style=/mix= in the Stylizer and the CLI, export with a style-weights input, training with
style=multi, and finetune=style_params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fastnst import Stylizer
from fastnst.accel import fused
from fastnst.apps.stylize import stylize_cli
from fastnst.artifacts import load_network, save_exported
from fastnst.cli import INFERENCE_CONFIG_DIR, run_reporting_errors
from fastnst.errors import FastNSTError
from fastnst.export import export_model
from fastnst.multistyle import batch_styles, freeze_for_style_params, init_network, style_weights
from fastnst.tiling import plain_forward, tiled_forward
from fastnst.train import train
from fastnst.transformer import TransformerNet
from tests.helpers import compose_config, make_image

TINY = {"channels": (8, 16, 32), "num_residual": 2}
STYLES = ["starry_night", "the_scream", "wave"]


def multi_net(styles=STYLES, seed=0) -> TransformerNet:
    """A multi-style net whose styles differ clearly (random scales and shifts per style)."""
    torch.manual_seed(seed)
    net = TransformerNet(**TINY, styles=styles).eval()
    with torch.no_grad():
        for norm in net.conditional_norms():
            norm.weight.normal_(1.0, 0.4)
            norm.bias.normal_(0.0, 0.4)
    return net


def single_from(net: TransformerNet, index: int) -> TransformerNet:
    """The single-style network of one style of `net` (its rows as plain instance norm)."""
    single = TransformerNet(**TINY).eval()
    state = {k: v[index] if _is_norm(net, k) else v for k, v in net.state_dict().items()}
    single.load_state_dict(state)
    return single


def _is_norm(net, key):
    from fastnst.transformer import ConditionalInstanceNorm2d

    return isinstance(net.get_submodule(key.rpartition(".")[0]), ConditionalInstanceNorm2d)


@pytest.fixture
def net():
    return multi_net()


@pytest.fixture
def model_file(tmp_path, net) -> Path:
    return save_exported(tmp_path / "multi.pt", net, {"style": "multi"})


def eager(net, x, style=None):
    with torch.enable_grad():  # the layer-by-layer forward, not the fused one
        return net(x, style).detach()


# -- the network ---------------------------------------------------------------------------


def test_one_style_equals_the_single_style_network_eager_fused_and_tiled(net):
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    for i in range(len(STYLES)):
        single = single_from(net, i)
        onehot = torch.eye(len(STYLES))[i]
        assert torch.allclose(eager(net, x, onehot), eager(single, x), atol=1e-6)
        with torch.no_grad():
            assert fused.can_fuse(net, x)
            assert torch.allclose(
                fused.forward(net, x, onehot), single(x), atol=1e-5
            )  # fused CPU forward
        big = torch.rand(1, 3, 96, 80, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            for forward in (fused.forward, plain_forward):  # tiles fused and layer by layer
                assert torch.allclose(
                    tiled_forward(net, big, 48, style=onehot, forward=forward),
                    tiled_forward(single, big, 48, forward=forward),
                    atol=1e-5,
                )


def test_fused_forward_matches_eager_for_blends_and_per_image_weights(net):
    x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    blend = torch.tensor([0.5, 0.2, 0.3])
    per_image = torch.tensor([[0.0, 1.0, 0.0], [0.6, 0.0, 0.4]])
    for w in (blend, per_image):
        with torch.no_grad():
            assert fused.can_fuse(net, x)
            got = fused.forward(net, x, w)
        assert torch.allclose(got, eager(net, x, w), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(
            fused.forward(net, x, per_image)[1:], fused.forward(net, x[1:], per_image[1]), atol=1e-5
        )


def test_single_style_network_is_unchanged():
    torch.manual_seed(0)
    net = TransformerNet(**TINY)
    assert net.styles is None and "styles" not in net.config
    assert all(type(m).__name__ != "ConditionalInstanceNorm2d" for m in net.modules())


def test_multi_style_needs_instance_norm_and_distinct_names():
    with pytest.raises(FastNSTError, match="distinct"):
        TransformerNet(**TINY, styles=["a", "a"])
    with pytest.raises(FastNSTError, match="norm=instance"):
        TransformerNet(**TINY, norm="batch", styles=["a", "b"])


# -- style=/mix= ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mix, message",
    [
        ({"wave": float("inf"), "starry_night": 1}, "wave must be a number between 0 and"),
        ({"wave": float("nan")}, "wave must be a number between 0 and"),
        ({"wave": 1e308, "starry_night": 1e308}, "wave must be a number between 0 and"),
        ({"wave": -0.5, "starry_night": 1}, "wave must be a number between 0 and"),
        ({"wave": 0, "starry_night": 0.0}, "positive sum"),
        ({"wave": True}, "wave must be a number, got True"),
        ({"wave": [1]}, "wave must be a number, got [1]"),
        ({"wav": 0.5, "starry_night": 0.5}, "no style 'wav' (did you mean 'wave'?)"),
    ],
)
def test_non_finite_overflowing_or_empty_blends_are_one_line_errors(mix, message):
    with pytest.raises(FastNSTError) as e:
        style_weights(STYLES, mix=mix, source="six_styles")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_tiny_and_percentage_weights_normalise_without_nan():
    w = style_weights(STYLES, mix={"wave": 1e-300, "starry_night": 1e-300})
    assert torch.allclose(w, torch.tensor([0.5, 0.0, 0.5]))
    w = style_weights(STYLES, mix={"wave": 30, "starry_night": 70})
    assert torch.allclose(w, torch.tensor([0.7, 0.0, 0.3])) and torch.isfinite(w).all()


def test_style_weights_normalise_and_name_errors_list_the_styles():
    assert torch.allclose(
        style_weights(STYLES, mix={"starry_night": 7, "wave": 3}), torch.tensor([0.7, 0.0, 0.3])
    )
    assert torch.equal(style_weights(STYLES, style="wave"), torch.tensor([0.0, 0.0, 1.0]))
    assert style_weights(None) is None and style_weights(STYLES) is None
    with pytest.raises(
        FastNSTError, match="no style 'udnie'; its styles: starry_night, the_scream, wave"
    ):
        style_weights(STYLES, style="udnie")
    with pytest.raises(FastNSTError, match="single-style"):
        style_weights(None, style="wave")
    with pytest.raises(FastNSTError, match="positive sum"):
        style_weights(STYLES, mix={"wave": 0})
    with pytest.raises(FastNSTError, match="wave must be a number between 0 and"):
        style_weights(STYLES, mix={"wave": -1, "starry_night": 2})
    with pytest.raises(FastNSTError, match="not both"):
        style_weights(STYLES, style="wave", mix={"wave": 1})


def test_blend_with_weight_one_equals_the_style_and_blends_are_continuous(model_file):
    s = Stylizer.load(model_file, device="cpu")
    x = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s(x, mix={"the_scream": 1.0}), s(x, style="the_scream"))
    assert torch.equal(s(x, mix={"the_scream": 1.0, "wave": 0.0}), s(x, style="the_scream"))
    assert torch.equal(s(x), s(x, style="starry_night"))  # no style: the first one
    a, b = s(x, style="starry_night"), s(x, style="wave")
    assert (a - b).abs().mean() > 0.02  # the styles differ
    # continuity: the output moves by less and less as the weight step shrinks, and the path
    # from one style to the other has no jump larger than a small share of the whole change
    steps = [
        s(x, mix={"starry_night": 1 - t, "wave": t}) for t in torch.linspace(0, 1, 21).tolist()
    ]
    jumps = [float((p - q).abs().max()) for p, q in zip(steps, steps[1:])]
    assert max(jumps) < 0.5 * float((a - b).abs().max())
    deltas = [
        float((s(x, mix={"starry_night": 1 - e, "wave": e}) - a).abs().max())
        for e in (1e-1, 1e-2, 1e-3)
    ]
    assert deltas[0] > deltas[1] > deltas[2] and deltas[2] < 1e-2


def test_stylizer_style_option_default_and_errors(model_file):
    x = torch.rand(1, 3, 32, 32)
    s = Stylizer.load(model_file, device="cpu", style="wave")
    assert s.styles == STYLES
    assert torch.equal(s(x), s(x, style="wave"))
    with pytest.raises(FastNSTError, match="its styles: starry_night, the_scream, wave"):
        Stylizer.load(model_file, device="cpu", style="udnie")
    single = save_exported(model_file.with_name("single.pt"), TransformerNet(**TINY))
    with pytest.raises(FastNSTError, match="single-style"):
        Stylizer.load(single, device="cpu")(x, style="wave")


def test_tiles_and_stylize_many_use_the_style(model_file):
    big = torch.rand(1, 3, 100, 76, generator=torch.Generator().manual_seed(4))
    big[..., :50, :] *= 0.3  # a dark top, a bright bottom: each tile's own statistics are far from
    big[..., 50:, :] = (
        0.7 + 0.3 * big[..., 50:, :]
    )  # the whole image's (measured 0.050 off vs 0.0066)
    s = Stylizer.load(model_file, device="cpu", mix={"the_scream": 0.5, "wave": 0.5})
    whole, tiled = s(big), s(big, tile=64)
    assert (whole - tiled).abs().mean() < 0.02
    assert (tiled - s(big, tile=64, style="wave")).abs().mean() > 0.005
    frames = [torch.rand(3, 32, 32) for _ in range(3)]
    assert all(
        torch.allclose(a, s(f), atol=1e-5)
        for a, f in zip(s.stylize_many(frames, batch_size=2), frames)
    )


@pytest.mark.parametrize("fmt,ext", [("onnx", ".onnx"), ("torchscript", ".ts")])
def test_export_takes_style_weights_and_lists_the_styles(tmp_path, net, fmt, ext):
    path = export_model(net, tmp_path / f"multi{ext}", fmt)  # parity-checked: one style and a blend
    s = Stylizer.load(path, device="cpu", trust_model_file=fmt == "torchscript")  # we made it
    assert s.styles == STYLES
    ref = Stylizer.load(save_exported(tmp_path / "m.pt", net), device="cpu")
    x = torch.rand(1, 3, 67, 45, generator=torch.Generator().manual_seed(5))
    for kwargs in ({"style": "wave"}, {"mix": {"starry_night": 0.7, "wave": 0.3}}):
        assert (s(x, **kwargs) - ref(x, **kwargs)).abs().max() < 1e-4
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path))
        assert [i.name for i in model.graph.input] == ["image", "style_weights"]
        meta = json.loads({p.key: p.value for p in model.metadata_props}["fastnst"])
        assert meta["config"]["styles"] == STYLES


# -- the CLI --------------------------------------------------------------------------------


def run_stylize(*overrides) -> int:
    try:
        run_reporting_errors(
            stylize_cli, compose_config("stylize", *overrides, config_dir=INFERENCE_CONFIG_DIR)
        )
    except SystemExit as e:
        return int(e.code)
    return 0


def test_cli_style_and_mix_pick_styles_inside_the_network(tmp_path, model_file, capsys):
    photo = make_image(tmp_path / "photo.png", size=(48, 40), seed=1)
    s = Stylizer.load(model_file, device="cpu")
    from fastnst.images import load_image

    assert (
        run_stylize(
            f"model={model_file}", f"input={photo}", f"output={tmp_path / 'w.png'}", "style=wave"
        )
        == 0
    )
    assert (
        load_image(tmp_path / "w.png") - s(load_image(photo), style="wave")
    ).abs().max() <= 1 / 255 + 1e-6
    out = tmp_path / "mix.png"
    assert (
        run_stylize(
            f"model={model_file}",
            f"input={photo}",
            f"output={out}",
            "mix={starry_night: 0.7, wave: 0.3}",
        )
        == 0
    )
    expected = s(load_image(photo), mix={"starry_night": 0.7, "wave": 0.3})
    assert (load_image(out) - expected).abs().max() <= 1 / 255 + 1e-6
    capsys.readouterr()
    assert (
        run_stylize(
            f"model={model_file}", f"input={photo}", f"output={tmp_path / 'x.png'}", "style=udnie"
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        "no style 'udnie'; its styles: starry_night, the_scream, wave" in err
        and len(err.splitlines()) == 1
    )
    assert run_stylize(f"input={photo}", "mix={wave: 1}") == 2
    assert "mix= blends the styles of a multi-style network" in capsys.readouterr().err


# -- training -------------------------------------------------------------------------------


def test_balanced_pairing():
    counts = [0, 0, 0]
    for step in range(30):
        for i in batch_styles(step, 4, [0, 1, 2]):
            counts[i] += 1
    assert counts == [40, 40, 40]
    assert batch_styles(7, 2, [3]) == [3, 3]


def test_init_from_keeps_old_styles_and_finetune_trains_only_the_new_rows(tmp_path, net):
    src = save_exported(tmp_path / "old.pt", net)
    bigger = TransformerNet(**TINY, styles=[*STYLES, "udnie"])
    assert init_network(bigger, src) == ["udnie"]
    freeze_for_style_params(bigger, [3])
    before = {k: v.clone() for k, v in bigger.state_dict().items()}
    opt = torch.optim.Adam([p for p in bigger.parameters() if p.requires_grad], lr=0.1)
    out = bigger(torch.rand(2, 3, 32, 32), torch.tensor([[0.0, 0, 0, 1], [0.5, 0, 0, 0.5]]))
    out.mean().backward()
    opt.step()
    after = bigger.state_dict()
    for key, old in before.items():
        if after[key].dim() == 2:  # conditional norm rows: the first three are the old styles
            assert torch.equal(after[key][:3], old[:3]) and torch.equal(
                old[:3], net.state_dict()[key]
            )
            assert not torch.equal(after[key][3], old[3]), key
        else:
            assert torch.equal(after[key], old), key


def tiny_multi(folder, names, *extra, steps=4):
    return [
        "data=folder",
        f"data.root={folder}",
        "data.image_size=32",
        "data.batch_size=3",
        "data.num_workers=0",
        "data.val_size=2",
        "model=johnson_fast",
        "style=multi",
        f"style.names=[{','.join(map(str, names))}]",
        "style.size=48",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.log_every_n_steps=1",
        "callbacks.images.every_n_steps=2",
        "seed=0",
        *extra,
    ]


@pytest.mark.slow  # two short trainings
def test_train_multi_logs_per_style_exports_all_styles_and_finetunes_a_new_one(
    compose_train, photo_folder, style_env, tmp_path
):
    folder = photo_folder(6)
    painting = make_image(tmp_path / "my_painting.png", size=(64, 64), seed=9)
    result = train(compose_train(*tiny_multi(folder, ["starry_night", painting])))
    run_dir = result["run_dir"]
    net, meta = load_network(run_dir)
    assert net.styles == ["starry_night", "my_painting"] and meta["styles"] == net.styles
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = set(acc.Tags()["scalars"])
    for name in net.styles:
        assert {
            f"train/style/{name}",
            f"val/{name}/loss",
            f"val/{name}/content",
            f"val/{name}/style",
        } <= tags
        assert f"val/{name}/stylized" in acc.Tags()["images"]
    assert "val/loss" in tags
    # the last checkpoint rebuilds the multi-style network too
    ckpt_net, _ = load_network(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt_net.styles == net.styles

    # a new style: only its scales and shifts train; the network holds all three styles
    new = make_image(tmp_path / "new_style.png", size=(64, 64), seed=11)
    result2 = train(
        compose_train(
            *tiny_multi(
                folder,
                ["starry_night", painting, new],
                f"init_from={run_dir}",
                "finetune=style_params",
                steps=3,
            ),
            run_dir=tmp_path / "ft",
        )
    )
    tuned, _ = load_network(result2["run_dir"])
    assert tuned.styles == ["starry_night", "my_painting", "new_style"]
    old, new_state = net.state_dict(), tuned.state_dict()
    for key, value in old.items():
        if new_state[key].dim() == 2 and new_state[key].shape[0] == 3:
            assert torch.equal(new_state[key][:2], value)
        else:
            assert torch.equal(new_state[key], value), key
    tags = set(EventAccumulator(str(result2["run_dir"])).Reload().Tags()["scalars"])
    assert (
        "train/style/new_style" in tags
        and "val/new_style/loss" in tags
        and "val/starry_night/loss" not in tags
    )


def test_finetune_needs_init_from_and_a_new_style(
    compose_train, photo_folder, style_env, tmp_path, model_file
):
    folder = photo_folder(4)
    with pytest.raises(FastNSTError, match="finetune=style_params needs init_from"):
        train(compose_train(*tiny_multi(folder, STYLES[:2], "finetune=style_params")))
    with pytest.raises(FastNSTError, match="already holds every style"):
        train(
            compose_train(
                *tiny_multi(
                    folder,
                    ["starry_night", "the_scream"],
                    f"init_from={model_file}",
                    "finetune=style_params",
                    "model.channels=[8,16,32]",
                    "model.num_residual=2",
                )
            )
        )
    with pytest.raises(FastNSTError, match="neither a style preset"):
        train(compose_train(*tiny_multi(folder, ["no_such_style"])))


# -- scripts/figures/style_blend.py -----------------------------------------------------------------


def _style_blend():
    from fastnst.apps import style_blend  # scripts/figures/style_blend.py's logic

    return style_blend


def test_style_blend_writes_a_strip_and_a_morph_video(tmp_path, model_file, capsys):
    from PIL import Image

    blend = _style_blend()
    photo = make_image(tmp_path / "photo.png", size=(40, 32), seed=1)
    strip, video = tmp_path / "strip.png", tmp_path / "morph.mp4"
    argv = [
        "--model",
        str(model_file),
        "--photo",
        str(photo),
        "--size",
        "40",
        "--out",
        str(strip),
        "--steps",
        "5",
        "--video",
        str(video),
        "--seconds",
        "0.25",
        "--fps",
        "8",
    ]
    assert blend.main(argv) == 0
    assert Image.open(strip).size == (6 * 40 + 7 * blend.PAD, 32 + 2 * blend.PAD)
    from fastnst.video import video_info

    assert (
        video_info(video)["frames"] == 2 * 2 + 1
    )  # 3 styles: two transitions of 2 frames + the last
    assert blend.main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert (
        blend.main([*argv[:4], "--out", str(tmp_path / "x.png"), "--styles", "wave", "udnie"]) == 2
    )
    assert "its styles: starry_night, the_scream, wave" in capsys.readouterr().err


def test_beta_scales_weights_one_style_of_the_list(style_env):
    from fastnst import metrics
    from fastnst.multistyle import expand_multi_style

    def effective_beta(*overrides):
        cfg = compose_config(
            "train", "style=multi", "style.names=[starry_night,wave]", "loss.beta=3", *overrides
        )
        expand_multi_style(cfg)
        return metrics.hparams_of(cfg, metrics.run_labels("/runs/x", cfg))["loss/effective_beta"]

    assert effective_beta() == "starry_night=9,wave=12"  # each preset's beta_scale (3, 4)
    assert effective_beta("style.beta_scales={wave: 1.5}") == "starry_night=9,wave=18"
    assert effective_beta("style.beta_scale=2", "style.beta_scales={starry_night: 0.5}") == (
        "starry_night=9,wave=24"
    )
    with pytest.raises(FastNSTError, match=r"'udnie' is not among style.names.*starry_night, wave"):
        effective_beta("style.beta_scales={udnie: 2}")
    with pytest.raises(FastNSTError, match=r"style.beta_scales.wave must be a finite number >= 0"):
        effective_beta("style.beta_scales={wave: -1}")
    with pytest.raises(FastNSTError, match="style.beta_scales must be a mapping"):
        effective_beta("style.beta_scales=2")
