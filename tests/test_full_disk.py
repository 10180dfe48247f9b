"""A full disk: a write that fails with ENOSPC keeps the previous file, leaves no temp file and
ends with one line naming the path and "no space left on device" (exit 2 for the CLIs); a folder
run reports the file and goes on with the others.

The full disk is simulated: files opened for writing through os.fdopen (how images.save_image and
atomic.atomic_torch_save write) accept a few bytes, then fail with ENOSPC, when their
path matches a pattern."""

from __future__ import annotations

import errno
import fnmatch
import io
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst import cli
from fastnst.artifacts import load_exported, save_exported
from fastnst.errors import FastNSTError
from fastnst.images import save_image
from fastnst.transformer import TransformerNet
from tests.helpers import tiny

NO_SPACE = "no space left on device"


class _FullDiskFile:
    """A writable file that takes `room` bytes, then raises ENOSPC (like a disk filling up)."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data) -> int:
        if len(data) > self._room:
            self._f.write(bytes(data[: self._room]))
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def fileno(self):
        # no file descriptor: Pillow then writes through write() instead of straight to the fd
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk("*.png") -> writes to temp files whose name matches fail with ENOSPC after 100 bytes
    (from then on). Returns the list of paths whose write failed."""
    real = os.fdopen
    failed: list[str] = []

    def apply(pattern: str, skip: int = 0):
        seen = [0]

        def fdopen(fd, mode="r", *args, **kwargs):
            f = real(fd, mode, *args, **kwargs)
            if "w" not in mode:
                return f
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            if not fnmatch.fnmatch(name, pattern):
                return f
            seen[0] += 1
            if seen[0] <= skip:  # the first `skip` matching writes still fit
                return f
            failed.append(name)
            return _FullDiskFile(f, room=100)

        monkeypatch.setattr(os, "fdopen", fdopen)
        return failed

    return apply


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.is_file() and p.name != ".lock")


def one_line(code, err, path: Path):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and str(path) in lines[0] and NO_SPACE in lines[0], lines


def test_save_image_on_a_full_disk_keeps_the_previous_file(tmp_path, full_disk):
    out = save_image(torch.zeros(1, 3, 8, 8), tmp_path / "a.png")
    before = out.read_bytes()
    full_disk("*a.png*")
    with pytest.raises(FastNSTError, match=f"{out}.*{NO_SPACE}"):
        save_image(torch.rand(1, 3, 64, 64), out, overwrite=True)
    assert out.read_bytes() == before and leftovers(tmp_path) == []


def test_model_pt_on_a_full_disk_keeps_the_previous_file(tmp_path, full_disk):
    net = TransformerNet(channels=(8, 16, 32), num_residual=1)
    path = save_exported(tmp_path / "model.pt", net, {"style": "old"})
    failed = full_disk("*model.pt*")
    with pytest.raises(FastNSTError, match=f"{path}.*{NO_SPACE}"):
        save_exported(path, TransformerNet(channels=(8, 16, 32), num_residual=1), {"style": "new"})
    assert failed and load_exported(path)[1]["style"] == "old" and leftovers(tmp_path) == []


def test_gatys_result_on_a_full_disk(
    tmp_path, run_entry, full_disk, image_factory, synthetic_style
):  # noqa: F811
    photo = image_factory("photo.png", size=(32, 24))
    out = tmp_path / "out" / "result.png"
    out.parent.mkdir()
    Image.new("RGB", (5, 5), "red").save(out)
    before = out.read_bytes()
    full_disk("*result.png*")
    code, err = run_entry(
        cli.gatys_main,
        f"content={photo}",
        f"style.image={synthetic_style}",
        f"output={out}",
        "size=32",
        "iterations=1",
        "progress=false",
        "overwrite=true",
    )
    one_line(code, err, out)
    assert out.read_bytes() == before and leftovers(out.parent) == []


def test_stylized_image_on_a_full_disk(tmp_path, run_entry, full_disk, image_factory, model_file):  # noqa: F811
    photo = image_factory("photo.png", size=(32, 24))
    out = tmp_path / "out" / "styled.jpg"
    full_disk("*styled.jpg*")
    code, err = run_entry(
        cli.stylize_main, f"model={model_file}", f"input={photo}", f"output={out}"
    )
    one_line(code, err, out)
    assert not out.exists() and leftovers(out.parent) == []


def test_stylize_folder_on_a_full_disk_reports_the_file_and_goes_on(
    tmp_path,
    run_entry,
    full_disk,
    image_factory,  # noqa: F811
    model_file,
):  # noqa: F811
    for i in range(3):
        image_factory(f"in/{i}.png", size=(24, 16), seed=i)
    full_disk("*1.png*")
    out = tmp_path / "out"
    code, err = run_entry(
        cli.stylize_main, f"model={model_file}", f"input={tmp_path / 'in'}", f"output={out}"
    )
    assert code == 2 and "Traceback" not in err, err
    assert f"{out / '1.png'}: cannot write image ({NO_SPACE})" in err
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "2.png"] and leftovers(out) == []
    assert err.strip().splitlines()[-1].startswith("fastnst: error: 1 of 3 image(s) failed")


@pytest.mark.slow
@pytest.mark.parametrize("what", ["checkpoint", "model.pt"])
def test_training_on_a_full_disk(what, tmp_path, run_entry, full_disk, photo_folder, style_env):  # noqa: F811
    """The first checkpoint fits, the second does not: last.ckpt stays the step-1 one. Or every
    checkpoint fits and model.pt does not."""
    run_dir = tmp_path / "run"
    args = tiny(
        photo_folder(5),
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=1",
        "trainer.val_check_interval=2",
        steps=2,
    )
    if what == "checkpoint":
        full_disk(".last.ckpt*", skip=1)
        path = run_dir / "checkpoints" / "last.ckpt"
    else:
        full_disk(".model.pt*")
        path = run_dir / "model.pt"
    code, err = run_entry(cli.train_main, *args, f"hydra.run.dir={run_dir}")
    err = "\n".join(
        line for line in err.splitlines() if "fastnst: error" in line or "Traceback" in line
    )
    one_line(code, err, path)
    assert leftovers(run_dir / "checkpoints") == [] and not list(run_dir.glob(".model.pt*"))
    if what == "checkpoint":
        assert torch.load(path, weights_only=False)["global_step"] == 1
