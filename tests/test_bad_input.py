"""Every kind of bad input, for each CLI (table-driven): either correct handling, or one line
naming the file and the problem, exit code 2, no traceback. Runs the real entry points
in-process (sys.argv patched), so the override check, Hydra and the error reporting are all used."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import cli
from tests.helpers import assert_user_error


def _png(path, mode="RGB", size=(40, 30), **save):
    arr = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(path, **save)
    return path


def make_bad(kind: str, folder: Path) -> Path:
    """A file of the given bad kind; its name contains the kind so messages can be checked."""
    path = folder / f"bad_{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)).save(
            buf, "PNG"
        )
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "not_an_image":
        path.write_text("just some text, not pixels\n" * 20)
    elif kind == "missing":
        pass
    elif kind == "folder":
        path.mkdir()
    elif kind == "bomb":
        _png(path, size=(200, 200))  # over the (lowered) pixel limit, unlike the other test images
    elif kind == "unreadable":
        _png(path)
    return path


def make_good(kind: str, folder: Path) -> Path:
    """An unusual but valid image: it must simply work."""
    if kind == "grayscale":
        return _png(folder / "gray.png", "L")
    if kind == "cmyk":
        return _png(folder / "cmyk.jpg", "CMYK")
    if kind == "16bit":
        return _png(folder / "deep.png", "I;16")
    if kind == "palette":
        return _png(folder / "pal.gif", "P")
    if kind == "transparent":
        return _png(folder / "alpha.png", "RGBA")
    if kind == "exif_rotated":
        path = folder / "rotated.jpg"
        img = Image.fromarray((np.random.default_rng(2).random((30, 40, 3)) * 255).astype(np.uint8))
        exif = img.getexif()
        exif[0x0112] = 6  # rotate 90 degrees when displayed
        img.save(path, exif=exif)
        return path
    if kind == "animated":
        path = folder / "anim.gif"
        frames = [Image.new("RGB", (40, 30), c) for c in ("red", "green", "blue")]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
        return path
    if kind == "odd_extension":
        return _png(folder / "photo.data", format="PNG")
    if kind == "tiny":
        return _png(folder / "tiny.png", size=(3, 2))
    if kind == "huge":
        return _png(folder / "huge.jpg", size=(3000, 2000))
    raise ValueError(kind)


BAD_IMAGES = ["empty", "truncated", "not_an_image", "missing", "folder", "bomb", "unreadable"]
GOOD_IMAGES = [
    "grayscale",
    "cmyk",
    "16bit",
    "palette",
    "transparent",
    "exif_rotated",
    "animated",
    "odd_extension",
    "tiny",
    "huge",
]


@pytest.fixture
def bad_env(monkeypatch):
    """Make the 'bomb' and 'unreadable' kinds bite: a tiny pixel limit, a permission check that fails."""

    def apply(kind, path):
        if kind == "bomb":
            monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
        if kind == "unreadable":
            import os

            real = os.access
            monkeypatch.setattr(
                os,
                "access",
                lambda p, m, *a, **k: False if str(p) == str(path) else real(p, m, *a, **k),
            )

    return apply


# -- per-CLI argument builders: (main, args for an input image) -------------------------------


def gatys_content(img, tmp, style):
    return cli.gatys_main, [
        f"content={img}",
        f"style.image={style}",
        f"output={tmp / 'out.png'}",
        "size=32",
        "iterations=2",
        "progress=false",
        "scales=[1]",
    ]


def gatys_style(img, tmp, style):
    return cli.gatys_main, [
        f"content={style}",
        f"style.image={img}",
        f"output={tmp / 'out.png'}",
        "size=32",
        "iterations=2",
        "progress=false",
        "scales=[1]",
    ]


def stylize_input(img, tmp, model):
    return cli.stylize_main, [f"model={model}", f"input={img}", f"output={tmp / 'out.png'}"]


def train_style(img, tmp, photos):
    return cli.train_main, [
        "data=folder",
        f"data.root={photos}",
        f"style.image={img}",
        "debug=fdr",
        "trainer.accelerator=cpu",
        f"paths.output_root={tmp / 'runs'}",
    ]


@pytest.mark.parametrize("kind", BAD_IMAGES)
@pytest.mark.parametrize("target", ["gatys_content", "gatys_style", "stylize_input", "train_style"])
def test_bad_image_is_one_line_exit_2(
    kind, target, tmp_path, run_entry, bad_env, synthetic_style, model_file, photo_folder
):
    bad = make_bad(kind, tmp_path)
    bad_env(kind, bad)
    extra = {
        "gatys_content": synthetic_style,
        "gatys_style": synthetic_style,
        "stylize_input": model_file,
        "train_style": photo_folder(4),
    }[target]
    main, args = globals()[target](bad, tmp_path, extra)
    code, err = run_entry(main, *args)
    assert_user_error(code, err, bad.name)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("kind", GOOD_IMAGES)
@pytest.mark.parametrize("target", ["gatys_content", "stylize_input"])
def test_unusual_images_just_work(kind, target, tmp_path, run_entry, synthetic_style, model_file):
    img = make_good(kind, tmp_path)
    extra = model_file if target == "stylize_input" else synthetic_style
    main, args = globals()[target](img, tmp_path, extra)
    code, err = run_entry(main, *args)
    assert code == 0, err
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "RGB"
    if target == "stylize_input" and kind == "exif_rotated":
        assert out.size == (30, 40)  # displayed orientation


@pytest.mark.parametrize("kind", ["text", "truncated", "wrong_dict", "missing"])
@pytest.mark.parametrize("target", ["stylize", "export", "train_ckpt"])
def test_bad_model_or_checkpoint_file(
    kind, target, tmp_path, run_entry, model_file, image_factory, photo_folder, synthetic_style
):
    bad = tmp_path / f"bad_{kind}.ckpt"
    if kind == "text":
        bad.write_text("hello")
    elif kind == "truncated":
        bad.write_bytes(model_file.read_bytes()[:500])
    elif kind == "wrong_dict":
        torch.save({"something": torch.zeros(3)}, bad)
    photo = image_factory("p.png")
    main, args = {
        "stylize": (
            cli.stylize_main,
            [f"model={bad}", f"input={photo}", f"output={tmp_path / 'o.png'}"],
        ),
        "export": (
            cli.export_main,
            [f"model={bad}", "format=onnx", f"output={tmp_path / 'o.onnx'}"],
        ),
        "train_ckpt": (
            cli.train_main,
            [
                "data=folder",
                f"data.root={photo_folder(8)}",
                f"style.image={synthetic_style}",
                "data.batch_size=2",
                f"ckpt_path={bad}",
                "trainer.accelerator=cpu",
                "trainer.max_steps=1",
                f"paths.output_root={tmp_path / 'runs'}",
            ],
        ),
    }[target]
    code, err = run_entry(main, *args)
    assert_user_error(code, err, bad.name)


@pytest.mark.parametrize(
    "main,args,key",
    [
        (cli.gatys_main, ["sizee=64"], "sizee"),
        (cli.gatys_main, ["style=starry_nite"], "starry_nite"),
        (cli.train_main, ["trainer.max_step=5"], "trainer.max_step"),
        (cli.train_main, ["model=johnson_hlaf"], "johnson_hlaf"),
        (cli.stylize_main, ["modle=x.pt", "input=a.png"], "modle"),
        (cli.export_main, ["fromat=onnx"], "fromat"),
    ],
)
def test_config_override_typo(main, args, key, run_entry):
    code, err = run_entry(main, *args)
    assert_user_error(code, err, key)
    assert "did you mean" in err


@pytest.mark.parametrize(
    "main",
    [cli.train_main, cli.stylize_main, cli.gatys_main, cli.evaluate_main, cli.export_main],
    ids=["train", "stylize", "gatys", "evaluate", "export"],
)
@pytest.mark.parametrize("plus", ["+", "++"])
def test_an_added_key_the_program_never_reads_is_refused(main, plus, run_entry):
    code, err = run_entry(main, f"{plus}strenght=0.1")
    assert_user_error(code, err, "unknown key 'strenght'")


def test_the_typo_hint_for_strength_and_its_plus_form_are_both_one_line(run_entry):
    code, err = run_entry(cli.stylize_main, "strenght=0.5")
    assert_user_error(code, err, "did you mean 'strength'?")
    code, err = run_entry(cli.stylize_main, "+strenght=0.1")
    assert_user_error(code, err, "unknown key 'strenght'")
    assert "did you mean 'strength'?" in err


def test_a_mapping_given_new_keys_names_hydras_way_not_itself(run_entry):
    """`loss.content_layers={...}` with a new layer is refused by Hydra; the line says how to add
    it instead of "unknown option 'loss.content_layers' (did you mean 'loss.content_layers'?)"."""
    code, err = run_entry(cli.train_main, "loss.content_layers={block2_conv2:0.1,block4_conv2:0.1}")
    assert_user_error(code, err, "+loss.content_layers=")
    assert "did you mean" not in err


@pytest.mark.parametrize(
    "args, readable",
    [
        (["+trainer.max_time=00:00:01:00"], True),  # a pytorch_lightning.Trainer argument
        (["+trainer.max_stepz=3"], False),
        (["+system.optimizer.weight_decay=0.01"], True),  # torch.optim.Adam's
        (["+extra.key=abc"], False),
        (["+experiment=cpu_quick"], True),  # a group, not a key
        # one more callback: every entry of callbacks is built
        (["+callbacks.extra={_target_: pytorch_lightning.callbacks.Timer}"], True),
        (["+system.scheduler.name=cosine"], True),  # inside a null (free-form) option
        (["++trainer.max_steps=3"], True),  # a key the config has
        # a weight for one more VGG19 layer (the recipe study's content relu4_2 row)
        (["+loss.content_layers.block4_conv2=0.0125"], True),
        (["+loss.style_layers.block5_conv1=0.01"], True),
        (["+loss.content_layers.block9_conv2=0.1"], False),  # no such layer
    ],
)
def test_an_added_key_passes_only_where_a_class_takes_it(args, readable):
    from fastnst.cli import added_key_error
    from fastnst.config import CONFIG_DIR

    assert (added_key_error(CONFIG_DIR, "train", args) is None) == readable


def test_outputs_are_never_overwritten_without_asking(
    tmp_path, run_entry, synthetic_style, model_file, image_factory
):
    photo = image_factory("p.png")
    out = tmp_path / "out.png"
    out.write_bytes(b"a finished result")
    code, err = run_entry(*gatys_content(photo, tmp_path, synthetic_style))
    assert_user_error(code, err, "out.png")
    assert out.read_bytes() == b"a finished result"


# -- extract_frames and evaluate -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "not_a_video", "missing"])
def test_extract_frames_bad_video(kind, tmp_path, capsys):
    from fastnst.apps.frames import main as extract_frames

    bad = tmp_path / f"bad_{kind}.mp4"
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "not_a_video":
        bad.write_text("no frames here\n" * 50)
    code = extract_frames([str(bad), "--out", str(tmp_path / "frames")])
    err = capsys.readouterr().err
    assert_user_error(code, err, bad.name)


@pytest.mark.parametrize("kind", ["missing", "a_file", "no_model", "bad_model"])
def test_evaluate_bad_run_dir(kind, tmp_path, run_entry):
    run = tmp_path / f"run_{kind}"
    if kind == "a_file":
        run.write_text("not a folder")
    elif kind in ("no_model", "bad_model"):
        run.mkdir()
        (run / "config.yaml").write_text("style: {name: x}\n")
        if kind == "bad_model":
            (run / "model.pt").write_text("garbage")
    code, err = run_entry(cli.evaluate_main, f"run={run}", "progress=false")
    assert_user_error(code, err, run.name)
