"""fastnst.judge: the style measure that compares distributions of VGG feature vectors, and
must not be fooled by a tint plus a fine grain."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fastnst.images import load_image, resize_tensor
from fastnst.judge import (
    StyleJudge,
    painting_size,
    published_output,
    random_directions,
    sliced_wasserstein,
    tint_and_grain,
    transfer_colour_statistics,
)

# small judges: a few directions and one pyramid level keep each test at a second or two
FAST = dict(num_directions=32, seeds=(0, 1), levels=(1.0,))


def _strokes(h: int = 96, w: int = 96, period: float = 24.0, seed: int = 0) -> torch.Tensor:
    """A 'painting': broad curved bands of two saturated colours, strokes of ~period/2 px."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    phase = float(torch.rand(1, generator=g)) * 6.28
    bands = torch.sin(2 * math.pi * (xx + 8 * torch.sin(yy / 15 + phase)) / period)
    mask = (bands > 0).float()
    blue, yellow = torch.tensor([0.1, 0.2, 0.6]), torch.tensor([0.95, 0.85, 0.3])
    img = mask * yellow.view(3, 1, 1) + (1 - mask) * blue.view(3, 1, 1)
    return img.unsqueeze(0)


def _photo(h: int = 96, w: int = 96) -> torch.Tensor:
    """A 'photo': smooth gradients and a few flat blocks, no strokes."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.3 + 0.4 * yy, 0.5 + 0.3 * xx, 0.8 - 0.3 * yy])
    img[:, 50:90, 10:30] = torch.tensor([0.2, 0.2, 0.25]).view(3, 1, 1)
    img[:, 40:90, 60:80] = torch.tensor([0.6, 0.2, 0.15]).view(3, 1, 1)
    return img.unsqueeze(0)


# ----------------------------------------------------------------------------- the distance


def test_sliced_wasserstein_ignores_the_order_of_the_samples():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 16, generator=g)
    d = random_directions(16, 64, seed=0)
    assert sliced_wasserstein(a, a[torch.randperm(500, generator=g)], d).max() < 1e-10


def test_sliced_wasserstein_of_a_shift_is_the_projected_shift_squared():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(400, 8, generator=g)
    shift = torch.randn(8, generator=g)
    d = random_directions(8, 16, seed=3)
    torch.testing.assert_close(
        sliced_wasserstein(a, a + shift, d), (shift @ d) ** 2, rtol=1e-4, atol=1e-5
    )


def test_sliced_wasserstein_compares_sets_of_different_sizes_as_distributions():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(300, 4, generator=g)
    d = random_directions(4, 8, seed=0)
    assert sliced_wasserstein(a, torch.cat([a, a, a]), d).max() < 1e-10  # the same distribution
    assert sliced_wasserstein(a, 2 * a, d).min() > 0.1  # a wider one


def test_directions_are_unit_vectors_fixed_by_the_seed():
    d = random_directions(64, 10, seed=5)
    torch.testing.assert_close(d.norm(dim=0), torch.ones(10))
    assert torch.equal(d, random_directions(64, 10, seed=5))
    assert not torch.equal(d, random_directions(64, 10, seed=6))


# ----------------------------------------------------------------------------- the judge


def test_the_painting_itself_scores_zero_and_the_judge_is_deterministic():
    painting = _strokes()
    judge = StyleJudge(painting, **FAST)
    same = judge(painting)
    assert same["style_swd"] < 1e-4
    photo = _photo()
    assert judge(photo) == StyleJudge(painting, **FAST)(photo)  # same seeds, same numbers
    assert set(judge(photo)) >= {
        "style_swd",
        "style_swd_std",
        "style_swd/block1_conv1",
        "style_swd/block4_conv1",
    }


def test_a_mirrored_or_shifted_painting_is_close_and_a_photo_far():
    """The same strokes elsewhere in the picture are the same style: the distance is about
    distributions, not positions."""
    painting = _strokes()
    judge = StyleJudge(painting, **FAST)
    far = judge(_photo())["style_swd"]
    assert judge(painting.flip(-1))["style_swd"] < 0.25 * far
    assert judge(torch.roll(painting, shifts=(17, 29), dims=(-2, -1)))["style_swd"] < 0.25 * far


def test_tint_plus_grain_is_farther_than_strokes_at_the_painting_scale():
    """The adversary the Gram loss falls for: the photo in the painting's colours with a fine
    uniform diagonal grain. The same kind of strokes as the painting's, in another layout, must
    score closer."""
    painting = _strokes(seed=0)
    judge = StyleJudge(painting, **FAST)
    tinted = tint_and_grain(_photo(), painting, period=4.0, amplitude=0.08)
    painted = _strokes(seed=1)  # other bands, same stroke scale and palette
    assert judge(painted)["style_swd"] < judge(tinted)["style_swd"]


def test_colour_transfer_matches_the_painting_statistics():
    # a painting of moderate colours: the mapped photo then needs no clipping to [0, 1]
    painting, photo = (
        0.35 + 0.3 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
        _photo(),
    )
    moved = transfer_colour_statistics(photo, painting)
    p, m = painting[0].reshape(3, -1), moved[0].reshape(3, -1)
    torch.testing.assert_close(m.mean(1), p.mean(1), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(m), torch.cov(p), atol=1e-4, rtol=0)


def test_several_paintings_pool_into_one_distribution():
    a, b = _strokes(seed=0), _photo()
    judge = StyleJudge([a, b], **FAST)
    # each alone is half of the pooled distribution: both are nearer to it than to the other alone
    assert judge(a)["style_swd"] < StyleJudge(b, **FAST)(a)["style_swd"]
    assert judge(b)["style_swd"] < StyleJudge(a, **FAST)(b)["style_swd"]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        StyleJudge(torch.rand(3, 32, 32), **FAST)
    judge = StyleJudge(_strokes(), **FAST)
    with pytest.raises(ValueError):
        judge(torch.rand(2, 3, 32, 32))


# ----------------------------------------------------------------------------- on the real data

JUDGE_SIZE = 256  # px, longer side: small, so the five styles take seconds


@pytest.mark.data
@pytest.mark.parametrize(
    "style", ["starry_night", "the_scream", "wave", "composition_vii", "udnie"]
)
def test_johnson_2016_beats_tint_plus_grain_and_the_photo_is_farthest(data_dir, style):
    """On Chicago, Johnson et al. 2016's published output is closer to the painting than the
    photo in the painting's colours plus a fine diagonal grain, and than the photo."""
    published = load_image(published_output(data_dir, style))
    reference_side = max(published.shape[-2:])
    photo = load_image(data_dir / "content" / "chicago.jpg", JUDGE_SIZE)
    painting = load_image(
        data_dir / "styles" / f"{style}.jpg",
        round(painting_size(style) * JUDGE_SIZE / reference_side),
    )
    judge = StyleJudge(painting, num_directions=64, seeds=(0,))
    johnson = judge(resize_tensor(published, tuple(photo.shape[-2:])))["style_swd"]
    tinted = judge(tint_and_grain(photo, painting))["style_swd"]
    assert johnson < tinted
    assert johnson < judge(photo)["style_swd"]


# ----------------------------------------------------------------------------- scripts/judge_table.py


def _judge_table():
    import importlib.util

    from fastnst.config import REPO_ROOT

    spec = importlib.util.spec_from_file_location(
        "judge_table", REPO_ROOT / "scripts" / "judge_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_judge_table_refuses_a_bad_network_spec_in_one_line(tmp_path, capsys):
    table = _judge_table()
    assert table.main(["--network", "no-equals-sign", "--cache", str(tmp_path)]) == 2
    assert (
        table.main(["--network", f"new={tmp_path / 'missing.pt'}", "--cache", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "LABEL=PATH" in err[0] and "missing.pt" in err[1]


@pytest.mark.data
def test_judge_table_rows_picture_and_json(data_dir, tmp_path, capsys):
    """One style, small: every row is judged, the photo is farthest and Johnson beats both the
    bundled network and the Gram loss's favourite tint plus grain."""
    table = _judge_table()
    table.GRAIN_PERIODS, table.GRAIN_AMPLITUDES = (
        (4.0,),
        (0.0, 0.1),
    )  # a smaller search for the adversary
    args = [
        "--styles",
        "starry_night",
        "--size",
        "256",
        "--gatys-iterations",
        "0",
        "--cache",
        str(tmp_path / "cache"),
        "--pictures",
        str(tmp_path),
        "--json",
        str(tmp_path / "t.json"),
    ]
    assert table.main(args) == 0
    rows = {
        r["row"].split(" ")[0]: r for r in json.loads((tmp_path / "t.json").read_text())["rows"]
    }
    assert set(rows) == {"photo", "tint", "bundled", "Johnson"}
    swd = {k: r["style_swd"] for k, r in rows.items()}
    assert swd["Johnson"] < swd["bundled"] < swd["photo"]
    assert swd["Johnson"] < swd["tint"]
    assert (tmp_path / "judge_starry_night.jpg").is_file()
    assert table.main(args) == 2  # finished results are not overwritten unasked
    assert "exists" in capsys.readouterr().err


# ----------------------------------------------------------------------------- evaluate.py


def test_evaluate_reports_style_swd_and_keeps_a_gatys_cache_from_before_the_judge(
    tiny_run, photo_folder, tmp_path
):
    from fastnst.evaluate import evaluate_run, format_metrics

    photos = photo_folder(2, size=(40, 40), name="eval_photos")
    options = dict(
        photos=photos,
        num_photos=1,
        size=32,
        gatys_iterations=2,
        cache_dir=tmp_path / "cache",
        backend="torch",
        device="cpu",
        tensorboard=False,
        overwrite=True,
    )
    result = evaluate_run(tiny_run, **options)
    assert result["metrics"]["style_swd"] > 0 and result["metrics"]["gatys/style_swd"] > 0
    assert "style_swd" in result["per_photo"][0]
    assert "style_swd" in format_metrics(result)
    # a reference cached before the judge existed has no gatys/style_swd: used as it is, not recomputed
    (cache,) = (tmp_path / "cache").glob("*.json")
    saved = json.loads(cache.read_text())
    del saved["metrics"]["gatys/style_swd"]
    cache.write_text(json.dumps(saved))
    again = evaluate_run(tiny_run, **options)["metrics"]
    assert (
        "gatys/style_swd" not in again and again["gatys/total"] == result["metrics"]["gatys/total"]
    )
