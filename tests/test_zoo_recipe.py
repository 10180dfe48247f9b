"""The zoo recipe: the style presets' painting size and style weight, the training runs of
scripts/zoo/train_zoo.py (fastnst.zoo.recipe: commands, skip/resume, wall time), the zoo listing
of multi-style networks, scripts/zoo/zoo_sheet.py and the recipe summary (fastnst.zoo.meta)."""

from __future__ import annotations

import subprocess

import pytest
from omegaconf import OmegaConf
from PIL import Image

from fastnst.sheets import GAP, LABEL_HEIGHT
from fastnst.zoo import recipe
from fastnst.zoo.meta import recipe_of
from tests.helpers import REPO, compose_config, make_image
from tests.script_runner import run_script

# -- 1. the presets: painting size (the strokes' pixel size) and style weight per painting ------


@pytest.mark.parametrize(
    "overrides, size",
    [
        (["experiment=zoo", "style=the_scream"], 192),
        (["style=the_scream"], 192),  # the same painting size for any crop size
        (["experiment=zoo", "style=udnie"], 256),
        (["experiment=zoo", "style=the_scream", "style.size=300"], 300),  # the user's size wins
    ],
)
def test_train_takes_the_presets_painting_size(overrides, size):
    assert compose_config("train", *overrides).style.size == size


def test_gatys_paints_at_512_with_the_plain_style_weight():
    gatys = compose_config("gatys", "style=the_scream", "content=a.jpg", "output=b.png")
    assert gatys.style.size == 512 and gatys.style.beta_scale == 1.0
    train = compose_config("train", "experiment=zoo", "style=the_scream")
    assert train.style.beta_scale == 8.0


@pytest.mark.parametrize(
    "style",
    ["starry_night", "the_scream", "wave", "udnie", "composition_vii", "shipwreck_of_the_minotaur"],
)
def test_every_zoo_preset_has_its_own_recipe(style):
    cfg = compose_config("train", "experiment=zoo", f"style={style}")
    assert 128 <= cfg.style.size <= 512 and cfg.style.beta_scale > 1
    # fp32 and the equivariance term: the recipe that removed the lattice hatch (docs/quality.md)
    assert cfg.trainer.precision == "32-true"
    assert cfg.loss.temporal_weight > 0 and cfg.loss.temporal_transform.shift > 0


def test_multi_style_members_keep_their_presets_beta_scale():
    from fastnst.multistyle import expand_multi_style

    cfg = compose_config("train", "style=multi", "style.names=[the_scream,udnie]", "style.size=200")
    expand_multi_style(cfg)  # as train() does
    members = {m.name: m for m in cfg.style.members}
    assert members["the_scream"].beta_scale == 8.0 and members["udnie"].beta_scale == 3.0
    assert members["the_scream"].size == 200 and members["udnie"].size == 200
    own = compose_config(
        "train", "style=multi", "style.names=[the_scream,udnie]", "style.size=null"
    )
    expand_multi_style(own)  # size=null: each member at its preset's painting size
    # size=null: each member's painting at the size its preset paints it (size x stroke_scale)
    assert [m.size for m in own.style.members] == [384, 256]
    doubled = compose_config(
        "train", "style=multi", "style.names=[the_scream,udnie]", "style.beta_scale=2"
    )
    expand_multi_style(doubled)
    assert [m.beta_scale for m in doubled.style.members] == [16.0, 6.0]


# -- 2. the training runs of scripts/zoo/train_zoo.py (fastnst.zoo.recipe) ---------------------


def test_train_command(tmp_path):
    run_dir = tmp_path / "wave"
    overrides = [*recipe.zoo_overrides(40, 0), "style=wave", "init_from=old/wave.pt"]
    command = recipe.train_command(overrides, run_dir)
    assert "experiment=zoo" in command and "style=wave" in command
    assert "init_from=old/wave.pt" in command and "trainer.max_steps=40" in command
    assert f"callbacks.last_checkpoint.every_n_steps={recipe.checkpoint_every(40)}" in command
    assert f"hydra.run.dir={run_dir}" in command
    assert not any(c.startswith("resume=") for c in command)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert recipe.train_command(overrides, run_dir)[-1] == f"resume={run_dir}"


def test_train_command_overrides_compose():
    command = recipe.train_command([*recipe.zoo_overrides(16, 0), "style=wave"], REPO / "x")
    overrides = [c for c in command[2:] if not c.startswith("hydra.")]
    cfg = compose_config("train", *overrides)
    assert cfg.trainer.max_steps == 16 and cfg.data.image_size == 128 and cfg.style.name == "wave"


@pytest.fixture
def calls(monkeypatch):
    """subprocess.call recorded; returns the codes queued in calls.codes (0 when empty)."""

    class Calls(list):
        codes: list[int]

    recorded = Calls()
    recorded.codes = []

    def fake_call(command, **kwargs):
        recorded.append(command)
        return recorded.codes.pop(0) if recorded.codes else 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    return recorded


def test_a_failed_run_writes_its_log_and_no_wall_time(tmp_path, calls):
    calls.codes[:] = [1]
    run_dir = tmp_path / "wave"
    rc, _ = recipe.run_training(["train", "style=wave"], run_dir, "train_zoo.log", 1)
    assert rc == 1 and len(calls) == 1
    assert recipe.wall_seconds(run_dir) is None
    assert "style=wave" in (run_dir / "train_zoo.log").read_text()


def test_wall_time_adds_up_over_resumed_pieces(tmp_path, calls, monkeypatch):
    clock = iter([100.0, 160.0, 200.0, 230.0])
    monkeypatch.setattr(recipe.time, "time", lambda: next(clock))
    run_dir = tmp_path / "wave"
    assert recipe.run_training(["train"], run_dir, "log", 1)[0] == 0
    assert recipe.wall_seconds(run_dir) == 60
    assert recipe.run_training(["train"], run_dir, "log", 1)[0] == 0
    assert recipe.wall_seconds(run_dir) == 90 and len(calls) == 2


def test_train_zoo_skips_finished_runs_and_fails_on_a_failed_one(tmp_path):
    (tmp_path / "udnie").mkdir()
    (tmp_path / "udnie" / "model.pt").write_bytes(b"x")
    # an override train.py refuses: the run fails at once (exit 2), the next one still tries
    code, out, err = run_script(
        "train_zoo",
        "--runs-dir", tmp_path, "--styles", "udnie", "wave", "--multi", "wave", "udnie",
        "--threads", "1", "no_such_key=1",
    )  # fmt: skip
    assert code == 1 and "udnie: finished before" in out and "failed: wave, multi" in err
    assert (
        "style=multi style.names=[wave,udnie]" in (tmp_path / "multi" / "train_zoo.log").read_text()
    )
    assert recipe.wall_seconds(tmp_path / "wave") is None


def test_train_zoo_needs_styles_or_multi(tmp_path):
    code, _, err = run_script("train_zoo", "--runs-dir", tmp_path)
    assert code == 2 and "nothing to train" in err


# -- 3. the zoo listing of a multi-style network ---------------------------------------------


def tiny_net(path, styles=None):
    from fastnst.artifacts import save_exported
    from fastnst.transformer import TransformerNet

    net = TransformerNet(channels=[4, 8, 8], num_residual=1, styles=styles)
    return save_exported(path, net, {"recipe": {"summary": "tiny"}})


def test_listing_names_a_multi_style_networks_styles(tmp_path, monkeypatch):
    import fastnst.zoo as zoo

    tiny_net(tmp_path / "duo.pt", styles=["a", "b"])
    tiny_net(tmp_path / "solo.pt")
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    assert zoo.network_styles(tmp_path / "duo.pt") == ["a", "b"]
    assert zoo.network_styles(tmp_path / "solo.pt") == []
    blocks = zoo.listing().split("\nsolo")
    assert blocks[0].startswith("duo") and "recipe:  tiny" in blocks[0]
    assert any(line.startswith("  styles:  a, b") for line in blocks[0].splitlines())
    assert "styles:" not in blocks[1]


# -- 4. scripts/zoo/zoo_sheet.py ----------------------------------------------------------------


@pytest.fixture
def sheet_data(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for i, rel in enumerate(["content/p.jpg", "content/q.jpg", "styles/wave.jpg"]):
        make_image(data / rel, size=(48, 36), seed=i)
    make_image(data / "reference" / "johnson2016" / "p_wave.jpg", size=(64, 48), seed=5)
    make_image(
        data / "reference" / "johnson2016" / "chicago_wave.jpg", size=(64, 48), seed=6
    )  # run width
    monkeypatch.setenv("FASTNST_DATA", str(data))
    return data, tiny_net(tmp_path / "wave_net.pt")


def test_zoo_sheet_rows_and_no_silent_overwrite(tmp_path, sheet_data):
    _, network = sheet_data
    out = tmp_path / "sheet.jpg"
    args = [
        str(out),
        "--styles",
        "wave",
        "--photos",
        "p",
        "--network",
        f"wave={network}",
        "--height",
        "40",
        "--closeups",
    ]
    assert run_script("zoo_sheet", *args)[0] == 0
    with Image.open(out) as sheet:
        assert sheet.height == 2 * (40 + LABEL_HEIGHT + GAP) - GAP
    before = out.read_bytes()
    code, _, err = run_script("zoo_sheet", *args)
    err = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and str(out) in err[0] and "already exists" in err[0]
    assert out.read_bytes() == before


def test_zoo_sheet_refusal_names_its_own_option(tmp_path):
    out = tmp_path / "sheet.jpg"
    out.write_bytes(b"x")
    code, _, err = run_script("zoo_sheet", out, "--styles", "wave")
    assert code == 2 and "--overwrite" in err


def test_zoo_sheet_empty_panels(tmp_path, sheet_data):
    _, network = sheet_data
    widths = {}
    for extra in ([], ["--empty-panels"]):
        out = tmp_path / f"sheet{len(extra)}.png"
        assert (
            run_script(
                "zoo_sheet",
                *[
                    str(out),
                    "--styles",
                    "wave",
                    "--photos",
                    "p",
                    "q",
                    "--network",
                    f"wave={network}",
                    "--height",
                    "40",
                    "--closeups",
                    *extra,
                ],
            )[0]
            == 0
        )
        with Image.open(out) as sheet:
            widths[bool(extra)] = sheet.width
    # q has no published output: the empty panel is as wide as our output of q (36 px tall photo
    # at 40 px height -> 53 px) plus the gap
    assert widths[True] - widths[False] == round(48 * 40 / 36) + 4


def test_zoo_sheet_shows_close_ups_after_the_photos(tmp_path, sheet_data):
    data, network = sheet_data
    make_image(data / "imagenet-mini" / "val" / "n0" / "n0_big_dog.JPEG", size=(80, 60), seed=9)
    widths = {}
    for closeups in ([], ["n0/n0_big_dog.JPEG"]):
        out = tmp_path / f"sheet{len(closeups)}.png"
        args = [out, "--styles", "wave", "--photos", "p", "--network", f"wave={network}"]
        assert run_script("zoo_sheet", *args, "--height", "40", "--closeups", *closeups)[0] == 0
        with Image.open(out) as sheet:
            widths[bool(closeups)] = sheet.width
    # one more column: the close-up (80x60 shown 40 px high -> 53 px) plus the gap
    assert widths[True] - widths[False] == round(80 * 40 / 60) + 4


# -- 5. the recipe summary of a bundled file (fastnst.zoo.meta.recipe_of) -----------------------------------------------------


def run_config(**style):
    return OmegaConf.create(
        {
            "model": {"channels": [16, 32, 64]},
            "data": {"name": "imagenet_mini", "image_size": 128, "batch_size": 4},
            "system": {"optimizer": {"lr": 0.002}},
            "style": {"name": "wave", "size": 192, "beta_scale": 3.0, **style},
            "loss": {"beta": 5.0},
            "init_from": "/runs/old/base.pt",
            "seed": 0,
        }
    )


def test_recipe_of_single_style():
    recipe = recipe_of(run_config(), 400, None)
    assert "style weight 15" in recipe["summary"] and "fine-tuned from base.pt" in recipe["summary"]
    assert "128 px crops x 4" in recipe["summary"] and "painting at 192 px" in recipe["summary"]
    assert recipe["command"].startswith("python train.py experiment=zoo style=wave")
    assert (
        "trainer.max_steps=400" in recipe["command"] and "init_from=<base.pt>" in recipe["command"]
    )
    cfg = run_config()
    cfg.init_from = None
    recipe = recipe_of(cfg, 400, None)
    assert "fine-tuned" not in recipe["summary"] and "init_from" not in recipe["command"]
    assert "stroke scale" not in recipe["summary"]
    recipe = recipe_of(run_config(stroke_scale=2.0), 400, None)
    assert "painting at 192 px and run at stroke scale 2" in recipe["summary"]


def test_recipe_of_multi_style():
    cfg = run_config(name="multi", names=["a", "b"], beta_scale=1.0)
    recipe = recipe_of(cfg, 100, None)
    assert (
        "style=multi style.names=[a,b]" in recipe["command"]
        and "style.size=192" in recipe["command"]
    )
    assert "each style's preset style weight" in recipe["summary"]
    # a scale per style: in the summary, and in the command that reproduces the file
    cfg = run_config(
        name="multi",
        names=["a", "b"],
        beta_scale=1.0,
        members=[{"name": "a"}, {"name": "b"}],
        stroke_scales={"b": 1.5},
        beta_scales={"a": 2.0},
    )
    recipe = recipe_of(cfg, 100, None)
    assert "run at stroke scale 1.5 (b)" in recipe["summary"]
    assert "'style.beta_scales={a: 2}' 'style.stroke_scales={b: 1.5}'" in recipe["command"]
    # an image path's style is named after the file: the per-style options name that
    cfg.style.names = ["/paintings/a.jpg", "b"]
    assert "'style.beta_scales={a: 2}'" in recipe_of(cfg, 100, None)["command"]


def test_recipe_of_names_its_teachers():
    cfg = run_config(name="multi", names=["a", "b", "c"], beta_scale=1.0)
    assert "taught" not in recipe_of(cfg, 100, None)["summary"]
    cfg.teachers = {"a": "zoo", "b": "b", "c": "/runs/c_net/model.pt"}
    cfg.teacher_weight = 1e7
    recipe = recipe_of(cfg, 100, None)
    assert "taught by the single networks of a, b, c (c_net/model.pt)" in recipe["summary"]
    assert "'teachers={a: zoo, b: b, c: c_net/model.pt}' teacher_weight=1e+07" in recipe["command"]
    cfg = run_config()
    cfg.teachers, cfg.teacher_weight, cfg.teacher_grams = "wave", 0.0, True
    recipe = recipe_of(cfg, 100, None)
    assert "taught by wave" in recipe["summary"]
    assert recipe["command"].endswith("teachers=wave teacher_weight=0 teacher_grams=true")
    cfg.teacher_grams, cfg.teacher_content = False, True
    assert recipe_of(cfg, 100, None)["command"].endswith(
        "teachers=wave teacher_weight=0 teacher_content=true"
    )
    cfg.teacher_content = False
    # taught by its teachers alone (no content or style term): said, and in the command
    cfg.loss.alpha, cfg.loss.beta, cfg.teacher_weight, cfg.teacher_grams = 0, 0, 1e8, False
    recipe = recipe_of(cfg, 100, None)
    assert (
        "no content or style term" in recipe["summary"]
        and "taught by wave alone" in recipe["summary"]
    )
    assert recipe["command"].endswith("teachers=wave teacher_weight=1e+08 loss.alpha=0 loss.beta=0")


def test_a_bundled_multi_style_file_keeps_its_scale_per_style():
    from fastnst.zoo.meta import bundled_meta

    meta = bundled_meta("duo", "", 1.0, {}, {}, [], 0, {"b": 1.5})
    assert meta["stroke_scales"] == {"b": 1.5} and "margin" not in meta
    assert "stroke_scales" not in bundled_meta("wave", "", 1.5, {}, {}, [])


def test_the_command_is_the_runs_own_overrides_less_the_machines(tmp_path):
    # a run launched with loss and data options: the bundled command carries every one of them
    from fastnst.evaluate import load_run_overrides

    typed = [
        "experiment=zoo",
        "style=composition_vii",
        "data.image_size=256",
        "loss.alpha=1.0",
        "+loss.content_layers.block4_conv2=0.0125",
        "trainer.max_steps=300",
        "init_from=/runs/old/base.pt",
        "teachers=/runs/t/model.pt",
        "paths.output_root=/home/me/runs",
        "hydra.run.dir=/home/me/runs/x",
        "callbacks.last_checkpoint.every_n_steps=100",
        "style.stroke_scales={a: 1.5}",
        "style.names=[a,b]",
    ]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("".join(f"- {o!r}\n" for o in typed))
    cfg = run_config()
    cfg.teachers, cfg.teacher_weight = "/runs/t/model.pt", 1e8
    command = recipe_of(cfg, 250, None, overrides=load_run_overrides(tmp_path))["command"]
    assert command == (
        "python train.py experiment=zoo style=composition_vii data.image_size=256 loss.alpha=1.0 "
        "+loss.content_layers.block4_conv2=0.0125 trainer.max_steps=250 init_from=<base.pt> "
        "'style.stroke_scales={a: 1.5}' 'style.names=[a,b]' teachers=t/model.pt "
        "teacher_weight=1e+08"
    )
    # no record (or a bare resume=): rebuilt from the config, as before
    assert load_run_overrides(tmp_path / "none") is None
    rebuilt = recipe_of(run_config(), 400, None)["command"]
    assert recipe_of(run_config(), 400, None, overrides=["resume=/r"])["command"] == rebuilt
    assert rebuilt.startswith("python train.py experiment=zoo style=wave")
