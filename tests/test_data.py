"""The training data pipeline (fastnst.data): layouts, splits, decoding, batches, augmentation."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from types import SimpleNamespace

import hydra.utils
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from fastnst.config import CONFIG_DIR
from fastnst.data import LAYOUTS, StyleDataModule
from fastnst.errors import FastNSTError

S = 32  # image_size used by the unit tests


def make_dm(root, layout="flat", **kw) -> StyleDataModule:
    args = dict(image_size=S, batch_size=2, num_workers=0, val_fraction=0.2, val_size=None)
    args.update(kw)
    dm = StyleDataModule(str(root), layout, **args)
    dm.setup("fit")
    return dm


def batches(dm, train=True):
    loader = dm.train_dataloader() if train else dm.val_dataloader()
    return list(loader)


@pytest.fixture
def flat_dir(tmp_path, image_factory):
    for i in range(10):
        image_factory(f"flat/{i:03d}.jpg", size=(48 + i, 40), seed=i)
    return tmp_path / "flat"


@pytest.fixture
def imagenet_dir(tmp_path, image_factory):
    for c, wnid in enumerate(["n01440764", "n01443537", "n01484850"]):
        for j in range(3):
            image_factory(f"inet/train/{wnid}/{wnid}_{j}.JPEG", size=(60, 44), seed=10 * c + j)
        image_factory(f"inet/val/{wnid}/{wnid}_val.JPEG", size=(44, 60), seed=100 + c)
    return tmp_path / "inet"


def write_bad_files(folder: Path, good_jpeg: Path) -> list[Path]:
    """A garbage-bytes .jpg and a truncated JPEG (first half of a real one)."""
    garbage = folder / "x.jpg"
    garbage.write_bytes(b"this is not a jpeg at all" * 20)
    data = good_jpeg.read_bytes()
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    return [garbage, truncated]


# ---- layouts and splits --------------------------------------------------------------------


def test_imagenet_layout_uses_train_and_val_folders(imagenet_dir):
    dm = make_dm(imagenet_dir, "imagenet")
    assert (dm.num_train, dm.num_val) == (9, 3)
    assert all("/train/" in p for p in dm.train_set.paths)
    assert all("/val/" in p for p in dm.val_set.paths)
    assert dm.val_set.paths == sorted(dm.val_set.paths)
    # val_size caps validation, spread over the sorted list (here: classes 0 and 1 of 3)
    capped = make_dm(imagenet_dir, "imagenet", val_size=2)
    assert [Path(p).parent.name for p in capped.val_set.paths] == ["n01440764", "n01443537"]


def test_imagenet_layout_requires_val_folder(imagenet_dir):
    for p in (imagenet_dir / "val").rglob("*.JPEG"):
        p.unlink()
    with pytest.raises(FastNSTError, match=r"no images found in val.*Kaggle imagenetmini-1000"):
        make_dm(imagenet_dir, "imagenet")


def test_flat_split_is_fixed_disjoint_and_seeded(flat_dir, image_factory):
    image_factory("flat/sub/ignored.jpg")  # flat layout does not recurse
    image_factory("flat/.hidden.jpg")  # nor read hidden files
    (flat_dir / "notes.txt").write_text("not an image")
    a, b = make_dm(flat_dir), make_dm(flat_dir)
    assert (a.num_train, a.num_val) == (8, 2)
    assert a.train_set.paths == b.train_set.paths and a.val_set.paths == b.val_set.paths
    assert not set(a.train_set.paths) & set(a.val_set.paths)
    assert sorted(a.train_set.paths + a.val_set.paths) == [
        str(flat_dir / f"{i:03d}.jpg") for i in range(10)
    ]
    others = [make_dm(flat_dir, split_seed=s).val_set.paths for s in range(1, 6)]
    assert any(o != a.val_set.paths for o in others)
    # adding a file does not reshuffle the split of the others
    image_factory("flat/999.jpg", seed=99)
    c = make_dm(flat_dir)
    assert set(a.val_set.paths) <= set(c.val_set.paths) | {str(flat_dir / "999.jpg")}
    assert c.num_train + c.num_val == 11


def test_val_fraction_zero_means_no_validation(flat_dir):
    dm = make_dm(flat_dir, val_fraction=0.0)
    assert (dm.num_train, dm.num_val) == (10, 0)
    assert dm.val_dataloader() == []
    assert dm.val_images(4).shape == (0, 3, S, S)


def test_folder_layout_is_recursive(tmp_path, image_factory):
    image_factory("photos/a.png", seed=1)
    image_factory("photos/deep/er/b.jpg", seed=2)
    image_factory("photos/deep/c.webp", seed=3)
    image_factory("photos/d.bmp", seed=4)
    (tmp_path / "photos" / "deep" / "readme.md").write_text("x")
    dm = make_dm(tmp_path / "photos", "folder", val_fraction=0.25)
    assert (dm.num_train, dm.num_val) == (3, 1)
    names = {Path(p).name for p in dm.train_set.paths + dm.val_set.paths}
    assert names == {"a.png", "b.jpg", "c.webp", "d.bmp"}


def test_max_train_images_caps_with_a_seeded_subset(flat_dir):
    full = make_dm(flat_dir)
    a, b = make_dm(flat_dir, max_train_images=3), make_dm(flat_dir, max_train_images=3)
    assert a.num_train == 3 and a.train_set.paths == b.train_set.paths
    assert set(a.train_set.paths) <= set(full.train_set.paths)
    assert a.val_set.paths == full.val_set.paths


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_empty_and_missing_folders_fail_naming_folder_and_layout(tmp_path, layout):
    empty = tmp_path / "empty"
    (empty / "train" / "n0").mkdir(parents=True)  # folders but no images
    for folder, problem in (
        (empty, "no images found"),
        (tmp_path / "nope", "data folder not found"),
    ):
        with pytest.raises(FastNSTError) as info:
            make_dm(folder, layout)
        msg = str(info.value)
        assert str(folder) in msg and problem in msg and LAYOUTS[layout] in msg
        assert "\n" not in msg


def test_relative_root_resolves_from_launch_dir(flat_dir, monkeypatch):
    monkeypatch.chdir(flat_dir.parent)
    assert make_dm("flat").num_train == 8


def test_too_few_training_images_for_a_batch_fail_at_setup(flat_dir):
    with pytest.raises(FastNSTError, match=r"only 8 training images, fewer than data.batch_size=9"):
        make_dm(flat_dir, batch_size=9)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"layout": "tfrecord"}, "unknown layout"),
        ({"scale": [0.9, 0.5]}, "data.scale"),
        ({"scale": [0.0, 1.0]}, "data.scale"),
        ({"val_fraction": 1.0}, "data.val_fraction"),
        ({"batch_size": 0}, "data.batch_size"),
    ],
)
def test_bad_options_are_user_errors(flat_dir, kw, match):
    args = {"root": str(flat_dir), "layout": "flat", **kw}
    with pytest.raises(FastNSTError, match=match):
        StyleDataModule(**args)


def test_setup_before_use():
    dm = StyleDataModule("anywhere", "flat")
    with pytest.raises(RuntimeError, match="setup"):
        _ = dm.num_train


# ---- batches -------------------------------------------------------------------------------


def test_train_batches_shapes_ranges_and_drop_last(flat_dir):
    dm = make_dm(flat_dir, batch_size=3)
    out = batches(dm)
    assert len(out) == 2  # 8 training images, batch 3, drop_last
    for b in out:
        assert set(b) == {"image", "skipped"}
        assert b["image"].shape == (3, 3, S, S) and b["image"].dtype == torch.float32
        assert 0 <= b["image"].min() and b["image"].max() <= 1 and b["image"].std() > 0.05
        assert b["skipped"].dtype == torch.long and b["skipped"].dim() == 0 and b["skipped"] == 0
    val = batches(dm, train=False)
    assert [b["image"].shape[0] for b in val] == [2]  # no drop_last for validation


def test_small_grayscale_and_rgba_images_become_rgb_of_full_size(tmp_path, image_factory):
    image_factory("mix/tiny.png", size=(12, 9), seed=1)  # far smaller than image_size: upscaled
    image_factory("mix/gray.png", size=(40, 50), seed=2, mode="L")
    image_factory("mix/rgba.png", size=(50, 40), seed=3, mode="RGBA")
    image_factory("mix/pal.gif", size=(50, 40), seed=4, mode="P")
    dm = make_dm(tmp_path / "mix", "folder", batch_size=3, val_fraction=0.25)
    (b,) = batches(dm)
    assert b["image"].shape == (3, 3, S, S) and b["skipped"] == 0
    for dataset in (dm.train_set, dm.val_set):
        for i, path in enumerate(dataset.paths):
            assert dataset[i].shape == (3, S, S), path
    paths = dm.train_set.paths + dm.val_set.paths
    items = [dm.train_set[i] for i in range(dm.num_train)] + [dm.val_set[0]]
    gray = items[paths.index(str(tmp_path / "mix" / "gray.png"))]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # gray stays gray


def test_corrupt_files_are_skipped_counted_and_warned_once(tmp_path, image_factory):
    good = [image_factory(f"bad/{i}.jpg", seed=i) for i in range(4)]
    bad = write_bad_files(tmp_path / "bad", good[0])
    dm = make_dm(tmp_path / "bad", batch_size=2, val_fraction=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        epochs = [batches(dm) for _ in range(2)]
    for epoch in epochs:
        assert sum(int(b["skipped"]) for b in epoch) == 2
        assert sum(b["image"].shape[0] for b in epoch) == 4
        assert all(b["image"].shape[1:] == (3, S, S) for b in epoch)
    messages = [str(w.message) for w in caught]
    for path in bad:
        # once in total, although each bad file was loaded in both epochs
        assert sum(str(path) in m for m in messages) == 1, messages
    assert any("truncated" in m for m in messages)


def test_batch_with_only_corrupt_files_is_empty(tmp_path, image_factory):
    good = image_factory("allbad/good.jpg")
    write_bad_files(tmp_path / "allbad", good)
    good.unlink()
    dm = make_dm(tmp_path / "allbad", batch_size=2, val_fraction=0.0)
    with pytest.warns(UserWarning, match="skipping unreadable"):
        (b,) = batches(dm)
    assert b["image"].shape == (0, 3, S, S) and b["skipped"] == 2
    dm.trainer = SimpleNamespace(training=True)
    assert dm.on_after_batch_transfer(b, 0)["image"].shape == (0, 3, S, S)


def test_worker_processes_give_the_same_batches(flat_dir, image_factory):
    write_bad_files(flat_dir, flat_dir / "000.jpg")
    # val_fraction 0: all 12 files (2 bad) are training files
    serial = make_dm(flat_dir, val_fraction=0.0, batch_size=3)
    workers = make_dm(flat_dir, val_fraction=0.0, batch_size=3, num_workers=2)
    loader = workers.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = batches(serial), list(loader)
    assert len(a) == len(b) == 4
    assert sum(int(x["skipped"]) for x in b) == sum(int(x["skipped"]) for x in a) == 2
    assert sum(x["image"].shape[0] for x in b) == 10
    # the shared flags record that the workers saw (and warned about) the bad files
    assert int(workers.train_set.warned.sum()) == 2


def test_worker_warnings_appear_once_per_file(tmp_path, image_factory):
    """In worker processes (fresh each epoch here) each bad file is still warned about once.
    Runs in a subprocess: pytest's warning capture would swallow warnings of forked workers."""
    folder = tmp_path / "w"
    good = [image_factory(f"w/{i}.jpg", seed=i) for i in range(4)]  # + 2 bad = 3 full batches
    bad = write_bad_files(folder, good[0])
    script = textwrap.dedent(
        f"""
        from fastnst.data import StyleDataModule
        dm = StyleDataModule({str(folder)!r}, "flat", image_size=32, batch_size=2,
                             num_workers=2, val_fraction=0.0, persistent_workers=False)
        dm.setup()
        skipped = [sum(int(b["skipped"]) for b in dm.train_dataloader()) for _ in range(3)]
        print("SKIPPED", skipped)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "SKIPPED [2, 2, 2]" in proc.stdout
    for path in bad:
        assert proc.stderr.count(f"{path}:") == 1, proc.stderr


def test_validation_is_deterministic_and_matches_val_images(flat_dir):
    dm = make_dm(flat_dir)
    first, second = batches(dm, train=False), batches(dm, train=False)
    assert torch.equal(first[0]["image"], second[0]["image"])
    assert torch.equal(dm.val_images(2), first[0]["image"])
    assert dm.val_images(1).shape == (1, 3, S, S)
    assert dm.val_images(50).shape == (2, 3, S, S)  # no more than the split holds
    other = make_dm(flat_dir)
    assert torch.equal(other.val_images(2), dm.val_images(2))


def test_train_order_and_crops_reproducible_under_seed_everything(flat_dir):
    dm = make_dm(flat_dir, batch_size=4)

    def first_epoch(seed):
        pl.seed_everything(seed, workers=True, verbose=False)
        return torch.cat([b["image"] for b in dm.train_dataloader()])

    a, b, c = first_epoch(3), first_epoch(3), first_epoch(4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ---- device-side augmentation ---------------------------------------------------------------


def test_augmentation_only_in_training_changes_batch_keeps_shape_and_range(flat_dir):
    dm = make_dm(flat_dir, batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    original = batch["image"].clone()
    assert dm.on_after_batch_transfer(batch, 0) is batch  # no trainer attached: untouched
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)["image"], original)
    dm.trainer = SimpleNamespace(training=True)
    pl.seed_everything(0, verbose=False)
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["image"].shape == original.shape and out["skipped"] is batch["skipped"]
    assert 0 <= out["image"].min() and out["image"].max() <= 1
    assert (out["image"] - original).abs().mean() > 0.01
    assert torch.equal(batch["image"], original)  # the input batch is not modified in place
    pl.seed_everything(0, verbose=False)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)["image"], out["image"])
    no_aug = make_dm(flat_dir, batch_size=4, augment=False)
    no_aug.trainer = SimpleNamespace(training=True)
    assert torch.equal(no_aug.on_after_batch_transfer(batch, 0)["image"], original)


def test_scale_range_controls_the_crop(flat_dir):
    """scale=[1, 1] keeps the whole image (only flips remain); a small scale zooms in."""
    batch = next(iter(make_dm(flat_dir, batch_size=4).train_dataloader()))
    outputs = {}
    for scale in ((1.0, 1.0), (0.2, 0.3)):
        dm = make_dm(flat_dir, batch_size=4, scale=list(scale))
        dm.trainer = SimpleNamespace(training=True)
        pl.seed_everything(1, verbose=False)
        outputs[scale] = dm.on_after_batch_transfer(batch, 0)["image"]
    for o, i in zip(outputs[(1.0, 1.0)], batch["image"]):
        assert min((o - i).abs().max(), (o - i.flip(-1)).abs().max()) < 1e-5
    for o, i in zip(outputs[(0.2, 0.3)], batch["image"]):
        assert min((o - i).abs().mean(), (o - i.flip(-1)).abs().mean()) > 0.01


def test_loader_options(flat_dir):
    dm = make_dm(flat_dir, pin_memory=True, persistent_workers=True)
    loader = dm.train_dataloader()
    assert loader.pin_memory and not loader.persistent_workers  # no workers: never persistent
    auto = make_dm(flat_dir)
    assert auto.train_dataloader().pin_memory == torch.cuda.is_available()
    assert make_dm(flat_dir, name="frames").name == "frames"


class Probe(pl.LightningModule):
    """Records the batches a LightningModule receives."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = {"train": [], "val": []}

    def training_step(self, batch, _):
        self.seen["train"].append(batch["image"].clone())
        return (batch["image"].mean() - self.w) ** 2

    def validation_step(self, batch, _):
        self.seen["val"].append(batch["image"].clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class MarkAugmented(torch.nn.Module):
    """Stands in for the kornia pipeline: makes augmented batches recognisable (all ones)."""

    def forward(self, x):
        return torch.ones_like(x)


@pytest.mark.parametrize("val_fraction", [0.2, 0.0])
def test_lightning_trainer_augments_training_batches_only(flat_dir, val_fraction):
    dm = make_dm(flat_dir, batch_size=2, val_fraction=val_fraction)
    dm.gpu_augment = MarkAugmented()
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        val_check_interval=2,
    )
    probe = Probe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning: "Total length of `list` ... is zero"
        trainer.fit(probe, datamodule=dm)
    assert len(probe.seen["train"]) == 2
    assert all(b.shape == (2, 3, S, S) and bool((b == 1).all()) for b in probe.seen["train"])
    if val_fraction:
        assert len(probe.seen["val"]) == 1
        assert torch.equal(probe.seen["val"][0], dm.val_images(2))  # not augmented
    else:
        assert probe.seen["val"] == []


# ---- configs -------------------------------------------------------------------------------

CONFIGS = {
    "imagenet_mini": ("imagenet", "imagenet-mini"),
    "fate_zero": ("flat", "fate_zero"),
    "anime_standin": ("flat", "anime-standin"),
    "folder": ("folder", None),
}


def compose_data_config(name: str, *overrides: str):
    """Compose conf/data/<name>.yaml with the real conf/paths/default.yaml through Hydra's
    compose API (no primary config needed, so this does not depend on conf/train.yaml)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=None, overrides=[f"+data={name}", "+paths=default", *overrides])


def test_config_files_are_the_tested_ones():
    assert sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml")) == sorted(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_data_configs_instantiate(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNST_DATA", str(tmp_path))
    layout, folder = CONFIGS[name]
    cfg = compose_data_config(name)
    if folder is None:
        with pytest.raises(Exception, match="Missing mandatory value"):
            _ = cfg.data.root  # data=folder needs data.root=...
        cfg = compose_data_config(name, f"data.root={tmp_path / 'mine'}")
        folder = "mine"
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, StyleDataModule)
    assert dm.layout == layout and dm.name == name
    assert Path(dm.root) == tmp_path / folder
    assert dm.image_size == 256 and dm.scale == (0.5, 1.0) and dm.augment
    # the configured folder does not exist here: setup names it
    with pytest.raises(FastNSTError, match=str(tmp_path / folder)):
        dm.setup("fit")


@pytest.mark.data
def test_shared_data_sets_give_batches(data_dir, monkeypatch):
    monkeypatch.setenv("FASTNST_DATA", str(data_dir))
    for name, expected_min in (("imagenet_mini", 100), ("anime_standin", 20)):
        cfg = compose_data_config(name)
        dm = hydra.utils.instantiate(cfg.data, image_size=64, num_workers=0)
        dm.setup("fit")
        assert dm.num_train >= expected_min and 0 < dm.num_val <= 16, name
        b = next(iter(dm.train_dataloader()))
        assert b["image"].shape == (4, 3, 64, 64) and b["skipped"] == 0, name
        assert dm.val_images(2).shape == (2, 3, 64, 64)
