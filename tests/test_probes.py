"""The probe set (fastnst.probes): every training run logs the same photos under the same
probe/ tags, whatever data it trained on, so TensorBoard shows runs side by side."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fastnst import probes
from fastnst.train import train
from tests.helpers import make_image

NAMES = [name for name, _ in probes.PROBES]


def data_folder(root: Path, with_probes: bool) -> Path:
    """A data folder with both layouts: imagenet-mini/{train,val}/<class>/*.JPEG and a flat
    anime-standin/; with_probes: also the probe photos' files (chicago, ...)."""
    for i in range(6):
        for split in ("train", "val"):
            cls = f"n0000000{i % 2}"
            make_image(root / "imagenet-mini" / split / cls / f"{cls}_{i}.JPEG", (40, 36), i)
        make_image(root / "anime-standin" / f"{i}.jpg", (40, 36), 50 + i)
    make_image(root / "styles" / "wave.jpg", (48, 48), 7)
    if with_probes:
        for i, (_, relative) in enumerate(probes.PROBES):
            make_image(root / relative, (64, 40), 200 + i)
    return root


def tiny_run(compose_train, tmp_path, data: str):
    cfg = compose_train(
        "style=wave",
        f"data={data}",
        "model=johnson_half",
        "model.channels=[8,16,32]",
        "model.num_residual=1",
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.val_size=2",
        "style.size=48",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.max_steps=3",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "callbacks.images.every_n_steps=2",
        "callbacks.images.probe_size=32",
        "seed=0",
        run_dir=tmp_path / "runs" / data,
    )
    return train(cfg)["run_dir"]


def images_of(run_dir) -> EventAccumulator:
    return EventAccumulator(str(run_dir), size_guidance={"images": 0}).Reload()


def test_runs_on_different_data_log_the_same_probe_tags(
    compose_train, tmp_path, monkeypatch, caplog
):
    root = data_folder(tmp_path / "data", with_probes=False)
    monkeypatch.setenv("FASTNST_DATA", str(root))
    with caplog.at_level(logging.WARNING, logger="fastnst.train"):
        runs = [tiny_run(compose_train, tmp_path, d) for d in ("imagenet_mini", "anime_standin")]
    accs = [images_of(r) for r in runs]
    tags = [{t for t in acc.Tags()["images"] if t.startswith("probe/")} for acc in accs]
    expected = {probes.probe_tag(n) for n in NAMES} | {"probe/photos"}
    assert tags[0] == tags[1] == expected
    for acc in accs:
        # after the validation at step 2 and at the end (step 3, no validation there)
        assert [e.step for e in acc.Images("probe/chicago")] == [2, 3]
        # every probe image at the probe shape (width 32: 4:3 -> 24 x 32)
        assert (
            acc.Images("probe/anime_358")[-1].height,
            acc.Images("probe/chicago")[-1].width,
        ) == (
            24,
            32,
        )
        assert "val/stylized" in acc.Tags()["images"]  # the run's own photos stay, as a second tag
    # the probe photos are the same pictures in both runs; the networks' outputs differ
    assert accs[0].Images("probe/photos")[0].encoded_image_string == (
        accs[1].Images("probe/photos")[0].encoded_image_string
    )
    # no probe photo in this data folder: stand-ins, said once per run, naming the folder
    notes = [r.getMessage() for r in caplog.records if "probe photos" in r.getMessage()]
    assert len(notes) == 2 and all(str(root) in n and "content/chicago.jpg" in n for n in notes)


def test_probe_photos_come_from_the_data_folder_and_fall_back_one_by_one(tmp_path):
    root = data_folder(tmp_path / "data", with_probes=True)
    (root / probes.PROBES[1][1]).unlink()  # one photo missing
    (root / probes.PROBES[2][1]).write_bytes(b"not an image")  # one unreadable
    names, photos, missing = probes.probe_photos(root, size=64)
    assert names == NAMES and photos.shape == (len(NAMES), 3, 48, 64)
    assert missing == [NAMES[1], NAMES[2]]
    assert torch.equal(photos[1:2], probes.synthesized_probe(NAMES[1], 64))
    assert torch.equal(photos[0:1], probes.load_probe(root / probes.PROBES[0][1], 64))
    # stand-ins are the same everywhere and differ from each other
    assert torch.equal(probes.synthesized_probe("x", 64), probes.synthesized_probe("x", 64))
    assert not torch.equal(photos[1], photos[2])
    note = probes.missing_note(missing, root)
    assert str(root) in note and probes.PROBES[1][1] in note and probes.PROBES[0][1] not in note


def test_probe_size_below_16_is_refused(tmp_path):
    from fastnst.callbacks import LogImagesAndHparams
    from fastnst.errors import FastNSTError

    with pytest.raises(FastNSTError, match="probe_size=8"):
        LogImagesAndHparams(probe_size=8)
    assert LogImagesAndHparams(probe_size=0).probe_size == 0  # off


@pytest.mark.skipif("FASTNST_DATA" not in os.environ, reason="needs FASTNST_DATA")
def test_the_probe_photos_are_in_the_data_folder():
    names, photos, missing = probes.probe_photos(os.environ["FASTNST_DATA"])
    assert missing == [] and photos.shape == (len(NAMES), 3, 192, 256)
