"""Teacher networks (fastnst.distill): which network teaches which style, the targets they paint,
the errors for a bad `teachers=`/`teacher_weight=`, and a run that learns from its teacher."""

from __future__ import annotations

import pytest
import torch

from fastnst import Stylizer
from fastnst.distill import Teachers, distill_loss, teacher_specs
from fastnst.errors import FastNSTError, check_weight
from fastnst.formats import load_exported, save_exported
from fastnst.transformer import TransformerNet
from tests.helpers import scalars, train_tiny

STYLES = ["starry_night", "the_scream", "wave"]
STEPS = 30


def saved_net(path, seed, **config):
    torch.manual_seed(seed)
    net = TransformerNet(**{"channels": (8, 16, 32), "num_residual": 1, **config})
    with torch.no_grad():  # a teacher that clearly paints: not the near-identity of a new net
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return save_exported(path, net)


def magenta_teacher(path):
    """The student's architecture, painting everything magenta: a clear, learnable target."""
    torch.manual_seed(5)
    net = TransformerNet(channels=(16, 32, 64), num_residual=5)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.bias.copy_(torch.tensor([1.5, -1.5, 0.0]))
    return save_exported(path, net)


def test_zoo_names_each_style_its_bundled_network():
    assert teacher_specs("zoo", STYLES, None) == {0: "starry_night", 1: "the_scream", 2: "wave"}
    assert teacher_specs("zoo", None, "the_scream") == {None: "the_scream"}
    assert teacher_specs({"wave": "zoo", "starry_night": "/m.pt"}, STYLES, None) == {
        2: "wave",
        0: "/m.pt",
    }
    assert teacher_specs(None, STYLES, None) == {}


@pytest.mark.parametrize(
    ("teachers", "styles", "name", "says"),
    [
        ({"candy": "zoo"}, STYLES, None, "candy is not among the run's styles"),
        ("/some/model.pt", STYLES, None, "teachers=zoo or a mapping"),
        ({"wave": "zoo"}, None, "wave", "needs a multi-style run"),
        ("zoo", None, "my_painting", "no bundled network for the style 'my_painting'"),
        ("zoo", ["wave", "my_painting"], None, "no bundled network for the style 'my_painting'"),
    ],
)
def test_a_teacher_that_cannot_teach_is_a_clear_error(teachers, styles, name, says):
    with pytest.raises(FastNSTError, match=says):
        teacher_specs(teachers, styles, name)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "lots"])
def test_teacher_weight_must_be_finite_and_not_negative(bad):
    with pytest.raises(FastNSTError, match="teacher_weight"):
        check_weight("teacher_weight", bad)
    assert check_weight("teacher_weight", "1e6") == 1e6


def test_targets_are_each_styles_teacher_output_and_untaught_styles_are_masked(tmp_path):
    first = saved_net(tmp_path / "a.pt", seed=1)
    third = saved_net(tmp_path / "c.pt", seed=3)
    teachers = Teachers(teacher_specs({"starry_night": first, "wave": third}, STYLES, None))
    photos = torch.rand(4, 3, 40, 40)
    target, mask = teachers.targets(photos, [2, 1, 0, 2])
    assert mask.tolist() == [True, False, True, True]
    expect = Stylizer.load(third, backend="torch", precision="fp32").stylize_tensor(photos[:1])
    assert torch.allclose(target[0], expect[0], atol=1e-5)
    assert not torch.allclose(target[0], target[2], atol=1e-2)  # two teachers, two paintings
    assert target[1].abs().max() == 0
    # the untaught photo adds nothing: only the masked rows are compared
    stylized = target.clone()
    stylized[1] = 1.0
    assert distill_loss(stylized, target, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert distill_loss(stylized, target, torch.zeros_like(mask)).item() == 0.0


def test_a_teacher_paints_at_its_own_scale_relative_to_the_students(tmp_path):
    # a teacher made to paint at stroke scale 2, for a student that will paint at 2 too: the
    # target is the teacher network's own output of the photo, not the 2x-painted picture
    path = saved_net(tmp_path / "t.pt", seed=4)
    net, _ = load_exported(path)
    scaled = save_exported(tmp_path / "t2.pt", net, {"stroke_scale": 2.0})
    photos = torch.rand(2, 3, 48, 48)
    same = Teachers({None: str(scaled)}, {None: 2.0}).targets(photos, None)[0]
    raw = Stylizer.load(path, backend="torch", precision="fp32").stylize_tensor(photos)
    assert torch.allclose(same, raw, atol=1e-5)
    shown = Teachers({None: str(scaled)}).targets(photos, None)[0]  # a student at scale 1
    expect = Stylizer.load(scaled, backend="torch", precision="fp32").stylize_tensor(photos)
    assert torch.allclose(shown, expect, atol=1e-5)
    assert not torch.allclose(shown, raw, atol=1e-2)
    # a multi-style student: each style's teacher relative to that style's own scale
    many = Teachers({0: str(scaled), 1: str(scaled)}, {0: 2.0})
    target, _ = many.targets(photos, [0, 1])
    assert torch.allclose(target[0], raw[0], atol=1e-5)
    assert torch.allclose(target[1], expect[1], atol=1e-5)
    # a student scale the teacher cannot paint relative to: one line naming the teacher
    with pytest.raises(
        FastNSTError, match=r"teachers: .*t\.pt for a student painting at stroke scale 8"
    ):
        Teachers({None: str(path)}, {None: 8.0}).targets(photos, None)


def test_a_multi_style_network_is_refused_as_a_teacher(tmp_path):
    multi = saved_net(tmp_path / "multi.pt", seed=1, styles=["a", "b"])
    with pytest.raises(FastNSTError, match="multi-style network"):
        Teachers({None: str(multi)}).targets(torch.rand(1, 3, 32, 32), None)


def test_a_run_with_a_teacher_learns_to_paint_like_it(tmp_path):
    teacher = magenta_teacher(tmp_path / "teacher.pt")
    extra = ("callbacks.images.every_n_steps=0", "system.optimizer.lr=3e-3")
    taught = train_tiny(
        tmp_path / "a",
        f"teachers={teacher}",
        "teacher_weight=1e6",
        *extra,
        run_dir=tmp_path / "taught",
        steps=STEPS,
    )
    untaught = train_tiny(tmp_path / "b", *extra, run_dir=tmp_path / "untaught", steps=STEPS)
    distill = scalars(taught, "train/distill")
    assert distill[max(distill)] < 0.8 * distill[min(distill)]
    photos = torch.rand(2, 3, 40, 40)
    target = Stylizer.load(teacher, backend="torch", precision="fp32").stylize_tensor(photos)

    def gap(run):
        out = Stylizer.load(run / "model.pt", backend="torch", precision="fp32")
        return (out.stylize_tensor(photos) - target).square().mean().item()

    assert gap(taught) < 0.5 * gap(untaught)


@pytest.mark.parametrize(
    "extra",
    [[], ["teacher_grams=true"], ["teacher_content=true"]],
    ids=["plain", "teacher_grams", "teacher_content"],
)
def test_a_run_taught_by_its_teacher_alone_learns_without_the_loss_network(
    tmp_path, monkeypatch, extra
):
    # loss.alpha=0 loss.beta=0: the teacher's term alone, and no VGG pass on the training photos
    # (teacher_grams=true has no style term to set then, and reads no Grams either;
    # teacher_content=true no content term, and reads no features of the teacher's output)
    from fastnst.vgg import VGG19Features

    teacher = magenta_teacher(tmp_path / "teacher.pt")
    calls = []
    forward = VGG19Features.forward
    monkeypatch.setattr(
        VGG19Features, "forward", lambda self, x: calls.append(x.shape) or forward(self, x)
    )
    run = train_tiny(
        tmp_path / "a",
        f"teachers={teacher}",
        "teacher_weight=1e6",
        "loss.alpha=0",
        "loss.beta=0",
        "callbacks.images.every_n_steps=0",
        "system.optimizer.lr=3e-3",
        *extra,
        run_dir=tmp_path / "alone",
        steps=STEPS,
    )
    distill = scalars(run, "train/distill")
    assert distill[max(distill)] < 0.5 * distill[min(distill)]
    assert set(scalars(run, "train/content").values()) == {0.0}
    assert len(calls) < 5  # the painting's Grams once, before training; none per step


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["style=multi", "style.names=[starry_night,the_scream]", "teachers={candy: zoo}"],
            "candy",
        ),
        (["style=the_scream", "loss.alpha=0", "loss.beta=0"], "nothing to learn"),
        (["style=starry_night", "teacher_weight=-1", "teachers=zoo"], "teacher_weight"),
        (["style=the_scream", "teachers=/no/such/teacher.pt"], "/no/such/teacher.pt"),
    ],
)
def test_train_py_refuses_a_bad_teacher_in_one_line(args, says, run_entry, photo_folder, style_env):
    from fastnst import cli
    from tests.helpers import assert_user_error, tiny

    code, err = run_entry(cli.train_main, *tiny(photo_folder(), *args, steps=1))
    assert_user_error(code, err, says)


def test_a_mapping_teaches_the_styles_it_names_and_is_kept_in_the_hparams(
    tmp_path, photo_folder, style_env
):
    import yaml

    from fastnst.train import train
    from tests.helpers import compose_config, tiny

    teacher = saved_net(tmp_path / "teacher.pt", seed=2)
    cfg = compose_config(
        "train",
        *tiny(
            photo_folder(),
            "style=multi",
            "style.names=[starry_night,the_scream]",
            f"teachers={{the_scream: '{teacher}'}}",
            "callbacks.images.every_n_steps=0",
            steps=3,
        ),
        f"run_dir={tmp_path / 'run'}",
    )
    run = train(cfg)["run_dir"]
    assert scalars(run, "train/distill")  # logged on the steps that paired a photo with the_scream
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hparams["teachers"] == f"the_scream={teacher}"
    assert hparams["teacher_weight"] == 1e7
    assert hparams["teacher_grams"] is False


def test_teacher_paths_are_kept_absolute_and_names_as_they_are(tmp_path, monkeypatch):
    from fastnst.distill import absolute_teachers

    monkeypatch.chdir(tmp_path)
    assert absolute_teachers("runs/udnie") == str(tmp_path / "runs" / "udnie")
    assert absolute_teachers("zoo") == "zoo"
    assert absolute_teachers({"wave": "wave", "udnie": "m.pt"}) == {
        "wave": "wave",
        "udnie": str(tmp_path / "m.pt"),
    }


def runs_of_a_student_that_starts_as_its_teacher(tmp_path, seed, flag):
    """(a run with `flag`, the same run without): a student initialized from its teacher paints
    exactly the teacher's output, so a term whose target the teacher's output gives starts at 0."""
    torch.manual_seed(seed)
    teacher = save_exported(
        tmp_path / "teacher.pt", TransformerNet(channels=(16, 32, 64), num_residual=5)
    )
    common = (f"init_from={teacher}", f"teachers={teacher}", "callbacks.images.every_n_steps=0")
    own = train_tiny(tmp_path / "a", *common, flag, "teacher_weight=0", run_dir=tmp_path / "own")
    plain = train_tiny(tmp_path / "b", *common, "teacher_weight=0", run_dir=tmp_path / "plain")
    return own, plain


def test_teacher_grams_make_the_teachers_own_texture_the_style_target(tmp_path):
    # with the teacher's Grams as targets the style term starts at zero, with the painting's not
    own, painting = runs_of_a_student_that_starts_as_its_teacher(tmp_path, 3, "teacher_grams=true")
    assert scalars(own, "train/style")[0] < 1e-6 * scalars(painting, "train/style")[0]
    assert scalars(painting, "train/style")[0] > 0


def test_teacher_content_makes_the_teachers_output_the_content_target(tmp_path):
    # with the teacher's output as the content target the content term starts at zero, with the
    # photo it does not
    own, photo = runs_of_a_student_that_starts_as_its_teacher(tmp_path, 4, "teacher_content=true")
    assert scalars(photo, "train/content")[0] > 0
    assert scalars(own, "train/content")[0] < 1e-6 * scalars(photo, "train/content")[0]
    # validation still measures the content term against the photo
    assert scalars(own, "val/content") and min(scalars(own, "val/content").values()) > 0


def test_the_module_gives_its_teachers_the_scale_it_will_paint_each_style_at():
    from types import SimpleNamespace

    from fastnst.module import StyleTransferModule

    scales = StyleTransferModule._student_stroke_scales
    members = [{"name": n} for n in STYLES]
    multi = {"names": STYLES, "members": members, "stroke_scales": {"wave": 1.5}}
    assert scales(SimpleNamespace(style_names=STYLES), multi) == {0: 1.0, 1: 1.0, 2: 1.5}
    single = {"name": "the_scream", "stroke_scale": 2.0}
    assert scales(SimpleNamespace(style_names=None), single) == {None: 2.0}
