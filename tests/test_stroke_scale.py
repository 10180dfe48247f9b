"""stroke_scale: the network paints at a chosen scale relative to the photo, detail kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.errors import FastNSTError
from fastnst.stylize import Stylizer
from tests.helpers import run_stylize, texture


class RecordingRunner:
    """A stand-in network: `paint(x)` applied to the input; remembers the input sizes."""

    name = "torch"

    def __init__(self, paint):
        self.paint, self.sizes = paint, []

    def __call__(self, x, weights=None):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.paint(x)


def stripes(x: torch.Tensor, period: int = 4) -> torch.Tensor:
    """Vertical black/white stripes of `period` px at the input's own resolution: the network's
    'stroke' has a fixed size in the pixels it runs on."""
    cols = (torch.arange(x.shape[-1]) // (period // 2)) % 2
    return cols.float().expand_as(x).clone()


def dominant_period(row: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(row - row.mean()))
    return len(row) / int(np.argmax(spectrum[1:]) + 1)


def test_stroke_scale_one_is_the_plain_forward():
    photo = texture(48, 64, seed=1)
    runner = RecordingRunner(lambda x: 1 - x)
    plain = Stylizer(runner)(photo)
    same = Stylizer(runner, stroke_scale=1.0)(photo)
    assert torch.equal(plain, same)
    assert runner.sizes == [(48, 64), (48, 64)]


@pytest.mark.parametrize("scale", [2.0, 3.0])
def test_larger_stroke_scale_paints_larger_strokes_at_full_size(scale):
    photo = torch.full((1, 3, 96, 192), 0.5)
    runner = RecordingRunner(stripes)
    out = Stylizer(runner, stroke_scale=scale)(photo)
    assert out.shape == photo.shape  # full size comes back
    assert runner.sizes == [(round(96 / scale), round(192 / scale))]  # the network ran small
    base = dominant_period(Stylizer(RecordingRunner(stripes))(photo)[0, 0, 48].numpy())
    bigger = dominant_period(out[0, 0, 48].numpy())
    assert base == pytest.approx(4, rel=0.05)
    assert bigger == pytest.approx(4 * scale, rel=0.1)


def test_smaller_stroke_scale_runs_on_an_enlarged_photo():
    photo = torch.full((1, 3, 40, 80), 0.5)
    runner = RecordingRunner(stripes)
    out = Stylizer(runner, stroke_scale=0.5)(photo)
    assert runner.sizes == [(80, 160)] and out.shape == photo.shape


def test_the_photos_fine_detail_comes_back():
    # an identity 'network' at stroke_scale 2 sees a blurred photo; the restored luminance detail
    # brings back the fine texture (exactly, for a grey photo, whose detail is all luminance)
    grey = texture(64, 64, seed=3)[:, :1].expand(-1, 3, -1, -1).contiguous()
    out = Stylizer(RecordingRunner(lambda x: x), stroke_scale=2.0)(grey)
    blurred_only = torch.nn.functional.interpolate(
        torch.nn.functional.interpolate(grey, scale_factor=0.5, mode="bilinear", antialias=True),
        size=(64, 64),
        mode="bilinear",
    )
    assert (blurred_only - grey).abs().mean() > 0.02  # painting small alone loses the detail
    assert torch.allclose(out, grey.clamp(0, 1), atol=2e-3)


def test_restored_detail_is_luminance_only():
    # the photo's colours must not creep back: for a colour photo and a network that paints
    # everything one grey, every output pixel stays grey (R = G = B)
    photo = texture(64, 64, seed=5)
    out = Stylizer(RecordingRunner(lambda x: torch.full_like(x, 0.5)), stroke_scale=2.0)(photo)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6) and torch.allclose(
        out[:, 1], out[:, 2], atol=1e-6
    )
    assert out.std() > 0.003  # ... but with the photo's detail in it (0 without it)


@pytest.mark.parametrize("bad", [0, -1, 100, "abc"])
def test_bad_stroke_scale_is_a_user_error(bad):
    with pytest.raises(FastNSTError, match="stroke_scale"):
        Stylizer(RecordingRunner(lambda x: x), stroke_scale=bad)
    with pytest.raises(FastNSTError, match="stroke_scale"):
        Stylizer(RecordingRunner(lambda x: x))(torch.rand(1, 3, 32, 32), stroke_scale=bad)


def test_stylize_cli_takes_stroke_scale(tmp_path, model_file, image_factory):
    photo = image_factory("photo.png", size=(96, 64))
    out1, out2 = tmp_path / "s1.png", tmp_path / "s2.png"
    assert run_stylize(f"model={model_file}", f"input={photo}", f"output={out1}") == 0
    assert (
        run_stylize(f"model={model_file}", f"input={photo}", f"output={out2}", "stroke_scale=2")
        == 0
    )
    expected = Stylizer.load(model_file, stroke_scale=2.0)(Image.open(photo))
    got = np.asarray(Image.open(out2), dtype=np.int16)
    assert np.abs(got - np.asarray(expected, dtype=np.int16)).max() <= 1
    assert np.abs(got - np.asarray(Image.open(out1), dtype=np.int16)).mean() > 1
    assert (
        run_stylize(
            f"model={model_file}",
            f"input={photo}",
            f"output={tmp_path / 's3.png'}",
            "stroke_scale=0",
        )
        == 2
    )
    assert not (tmp_path / "s3.png").exists()


def test_web_app_photo_request_takes_stroke_scale(tmp_path, image_factory):
    from fastnst.apps.web import WebApp, model_catalog
    from tests.app_helpers import tiny_models

    models = tiny_models(tmp_path / "models")
    app = WebApp(catalog=model_catalog(models), device="cpu", output_dir=tmp_path / "out")
    photo = image_factory("photo.png", size=(96, 64))
    result = app.stylize_photo(str(photo), "tiny_a.pt", 1.0, False, "original", stroke_scale=2.0)
    expected = Stylizer.load(models / "tiny_a.pt", stroke_scale=2.0)(Image.open(photo))
    got = np.asarray(Image.open(result.image), dtype=np.int16)
    assert np.abs(got - np.asarray(expected, dtype=np.int16)).max() <= 1
    plain = app.stylize_photo(str(photo), "tiny_a.pt", 1.0, False, "original")
    assert np.abs(got - np.asarray(Image.open(plain.image), dtype=np.int16)).mean() > 1


# ---- a network's own stroke scale (meta["stroke_scale"], from its style preset) -----------------


def test_a_networks_own_stroke_scale_is_its_stroke_scale_one():
    photo = torch.full((1, 3, 96, 192), 0.5)
    own = RecordingRunner(stripes)
    out = Stylizer(own, meta={"stroke_scale": 2.0})(photo)
    assert own.sizes == [(48, 96)]  # it ran at half size without being asked
    plain = RecordingRunner(stripes)
    assert torch.equal(out, Stylizer(plain, stroke_scale=2.0)(photo))
    # the user's stroke_scale multiplies it: 0.5 brings back the plain forward
    back = RecordingRunner(stripes)
    assert torch.equal(
        Stylizer(back, meta={"stroke_scale": 2.0})(photo, stroke_scale=0.5), stripes(photo)
    )
    assert back.sizes == [(96, 192)]


@pytest.mark.parametrize("meta", [{}, {"stroke_scale": None}])
def test_a_network_without_its_own_scale_paints_at_one(meta):
    runner = RecordingRunner(stripes)
    assert Stylizer(runner, meta=meta).native_stroke_scale == 1.0
    Stylizer(runner, meta=meta)(torch.rand(1, 3, 32, 48))
    assert runner.sizes == [(32, 48)]


@pytest.mark.parametrize("value", ["big", "2", 100, -1, 0, float("nan"), float("inf"), True, [2]])
def test_a_network_with_an_unusable_own_scale_is_refused(value):
    """A file's own stroke scale that is not a number in range is an error naming the file, not
    a silent 1.0."""
    with pytest.raises(FastNSTError, match=r"^net.pt: meta stroke_scale must be"):
        Stylizer(RecordingRunner(stripes), source="net.pt", meta={"stroke_scale": value})(
            torch.rand(1, 3, 32, 48)
        )


def test_the_cli_paints_at_the_files_own_scale(tmp_path, image_factory):
    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1)
    plain = save_exported(tmp_path / "plain.pt", net)
    own = save_exported(tmp_path / "own.pt", net, {"stroke_scale": 2.0})
    photo = image_factory("photo.png", size=(96, 64))
    out_own, out_asked = tmp_path / "own.png", tmp_path / "asked.png"
    assert run_stylize(f"model={own}", f"input={photo}", f"output={out_own}") == 0
    assert (
        run_stylize(f"model={plain}", f"input={photo}", f"output={out_asked}", "stroke_scale=2")
        == 0
    )
    a, b = (np.asarray(Image.open(p), dtype=np.int16) for p in (out_own, out_asked))
    assert np.abs(a - b).max() <= 1


def test_presets_give_the_network_and_the_rulers_their_painted_scale(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    import fastnst.config
    from fastnst.multistyle import expand_names, painted_size, preset_stroke_scale

    styles = tmp_path / "style"
    styles.mkdir()
    painting = tmp_path / "small.jpg"
    Image.new("RGB", (32, 32)).save(painting)
    (styles / "small_motifs.yaml").write_text(
        f"name: small_motifs\nimage: {painting}\nsize: 128\nstroke_scale: 2.0\n"
    )
    (styles / "plain.yaml").write_text(f"name: plain\nimage: {painting}\nsize: 256\n")
    monkeypatch.setattr(fastnst.config, "CONFIG_DIR", tmp_path)
    small = OmegaConf.load(styles / "small_motifs.yaml")
    assert preset_stroke_scale(small) == 2.0 and painted_size(small) == 256
    assert preset_stroke_scale(OmegaConf.load(styles / "plain.yaml")) == 1.0
    # a multi-style network paints every style at 1: each member's painting at its painted size
    multi = OmegaConf.create({"names": ["small_motifs", "plain"], "size": None, "beta_scale": 1.0})
    assert preset_stroke_scale(multi) == 1.0
    members = expand_names(multi)
    assert [m["size"] for m in members] == [256, 256] and all(
        "stroke_scale" not in m for m in members
    )
    # a list size still wins
    assert [m["size"] for m in expand_names(OmegaConf.create({**multi, "size": 64}))] == [64, 64]


# -- the one home of stroke scale (fastnst.stroke): checks, the combined scale, train's refusal


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 0, 100, "2", True, None, [2]])
def test_check_stroke_scale_refuses_in_one_line_naming_the_source(value):
    from fastnst.stroke import check_stroke_scale

    with pytest.raises(FastNSTError, match=r"^style\.stroke_scale must be") as info:
        check_stroke_scale(value, source="style.stroke_scale")
    assert "\n" not in str(info.value)


def test_check_stroke_scale_takes_real_numbers_in_range():
    from fastnst.stroke import STROKE_SCALE_RANGE, check_stroke_scale

    low, high = STROKE_SCALE_RANGE
    assert check_stroke_scale(low) == low and check_stroke_scale(high) == high
    assert check_stroke_scale(2) == 2.0 and check_stroke_scale(np.float32(1.5)) == 1.5


def test_the_combined_scale_is_bounded_too():
    from fastnst.stroke import combined_stroke_scale

    assert combined_stroke_scale(0.5, 2.0) == 1.0
    with pytest.raises(FastNSTError, match="stroke_scale=0.25 times the network's own"):
        combined_stroke_scale(0.25, 0.25)  # 16x the pixels per side otherwise
    with pytest.raises(FastNSTError, match="use a stroke_scale between 1 and 8"):
        Stylizer(RecordingRunner(stripes), meta={"stroke_scale": 0.25}, stroke_scale=0.25)


@pytest.mark.parametrize("value", ["nan", "-1", "100", "'2'", "true"])
def test_training_refuses_a_bad_stroke_scale_before_any_work(
    value, compose_train, photo_folder, style_env, tmp_path
):
    from fastnst.train import train
    from tests.helpers import tiny

    cfg = compose_train(*tiny(photo_folder(2), f"style.stroke_scale={value}", steps=1))
    with pytest.raises(FastNSTError, match=r"^style\.stroke_scale must be"):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        ({"stroke_scale": 100}, "style.stroke_scale must be"),
        ({"stroke_scale": "2"}, "style.stroke_scale must be"),
        ({"size": 100000, "stroke_scale": 2}, "is over 8192 px"),
        ({"size": "big"}, "style.size must be a whole number"),
    ],
)
def test_evaluate_refuses_a_crafted_run_config_in_one_line(override, message, tmp_path):
    """A run's config.yaml is user input: a painting size x stroke scale from it must not make
    the evaluation allocate gigabytes."""
    from omegaconf import OmegaConf

    from fastnst.evaluate import load_run_config
    from tests.helpers import compose_config

    run = tmp_path / "run"
    run.mkdir()
    cfg = compose_config("train", "run_dir=x")
    OmegaConf.set_struct(cfg, False)
    for key, value in override.items():
        cfg.style[key] = value
    OmegaConf.save(cfg, run / "config.yaml")
    with pytest.raises(FastNSTError, match=message) as info:
        load_run_config(run)
    assert str(info.value).startswith(str(run / "config.yaml")) and "\n" not in str(info.value)


@pytest.mark.parametrize("config_scale", [1.0, 1.5])
def test_a_run_is_judged_at_its_configs_stroke_scale(config_scale, tmp_path):
    """A run trained at stroke scale 1 whose config now says 1.5 (a network to be bundled painting
    larger) is evaluated painting at 1.5, the scale its painting is measured at."""
    from omegaconf import OmegaConf

    from fastnst.artifacts import save_exported
    from fastnst.evaluate import load_run_config, load_run_stylizer
    from fastnst.transformer import TransformerNet
    from tests.helpers import compose_config

    run = tmp_path / "run"
    run.mkdir()
    cfg = compose_config("train", "run_dir=x", "style=wave")
    OmegaConf.set_struct(cfg, False)
    cfg.style.stroke_scale = config_scale
    OmegaConf.save(cfg, run / "config.yaml")
    save_exported(
        run / "model.pt",
        TransformerNet(channels=(8, 16, 32), num_residual=1),
        {"stroke_scale": 1.0},
    )
    stylizer = load_run_stylizer(run, load_run_config(run), backend="torch")
    assert stylizer.combined_stroke_scale == config_scale
    assert stylizer(torch.rand(1, 3, 48, 48)).shape[-2:] == (48, 48)


# -- a multi-style file's own scale per style (meta stroke_scales, style.stroke_scales) ---------

TWO = ["calm", "bold"]


def test_a_multi_style_file_paints_each_style_at_its_own_scale():
    photo = texture(64, 96)
    runner = RecordingRunner(stripes)
    own = Stylizer(runner, styles=TWO, meta={"stroke_scales": {"bold": 2.0}})
    plain = Stylizer(RecordingRunner(stripes), styles=TWO)
    assert own.native_stroke_scale == 1.0  # the default style (the first) sets none
    assert own.native_stroke_scale_of("bold") == 2.0
    assert own.native_stroke_scale_of(mix={"calm": 1, "bold": 1}) == 1.5  # a blend: the mean
    assert torch.equal(own(photo, style="calm"), plain(photo, style="calm"))
    assert torch.equal(own(photo, style="bold"), plain(photo, style="bold", stroke_scale=2.0))
    # the user's stroke_scale multiplies the style's own: 0.5 brings bold back to the plain forward
    assert torch.equal(own(photo, style="bold", stroke_scale=0.5), plain(photo, style="bold"))
    runner.sizes.clear()
    own(photo, mix={"calm": 1, "bold": 1})
    assert runner.sizes == [(43, 64)]  # 64x96 at 1.5
    # a default style of the constructor carries its scale
    assert Stylizer(runner, styles=TWO, meta=own.meta, style="bold").combined_stroke_scale == 2.0


@pytest.mark.parametrize(
    "scales,styles,message",
    [
        ({"wavy": 2.0}, TWO, r"meta stroke_scales names wavy, not a style of this network"),
        ({"bold": 100}, TWO, r"meta stroke_scales\.bold must be between"),
        ({"bold": float("nan")}, TWO, r"meta stroke_scales\.bold must be between"),
        ({"bold": "2"}, TWO, r"meta stroke_scales\.bold must be a number"),
        ([2.0], TWO, r"meta stroke_scales must be a mapping of style names"),
        (
            {"bold": 2.0},
            None,
            r"meta stroke_scales gives scales per style, but this network has one style",
        ),
    ],
)
def test_a_files_stroke_scales_are_refused_in_one_line_naming_it(scales, styles, message):
    from fastnst.formats import check_meta

    with pytest.raises(FastNSTError, match=rf"^net.pt: {message}") as info:
        Stylizer(
            RecordingRunner(stripes), source="net.pt", styles=styles, meta={"stroke_scales": scales}
        )
    assert "\n" not in str(info.value)
    if isinstance(scales, list) or "bold" in scales and not isinstance(scales["bold"], float):
        with pytest.raises(FastNSTError, match=r"^net.pt: meta stroke_scales"):
            check_meta({"stroke_scales": scales}, "net.pt")  # on every read of a file


def test_a_multi_style_run_stores_its_stroke_scales(
    compose_train, photo_folder, style_env, tmp_path
):
    from fastnst.formats import load_exported
    from fastnst.train import train
    from tests.helpers import tiny

    photos = photo_folder(4)
    multi = ["style=multi", "style.names=[starry_night,the_scream]"]
    cfg = compose_train(*tiny(photos, *multi, "style.stroke_scales={the_scream: 1.75}", steps=1))
    train(cfg)
    _, meta = load_exported(tmp_path / "run" / "model.pt")
    assert meta["stroke_scales"] == {"the_scream": 1.75} and meta["stroke_scale"] == 1.0
    out = Stylizer.load(tmp_path / "run" / "model.pt", backend="torch", style="the_scream")
    assert out.combined_stroke_scale == 1.75
    for bad, message in [
        ("{the_screem: 2}", r"'the_screem' is not among style.names.*did you mean 'the_scream'"),
        ("{the_scream: 100}", r"style.stroke_scales.the_scream must be between"),
    ]:
        cfg = compose_train(
            *tiny(photos, *multi, f"style.stroke_scales={bad}", steps=1),
            run_dir=tmp_path / "bad",
        )
        with pytest.raises(FastNSTError, match=message):
            train(cfg)
        assert not (tmp_path / "bad").exists()
