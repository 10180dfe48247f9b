"""The data order without a seed (`seed: null`): DDP ranks still split each global batch, and
a resumed run continues with the shuffle and crops of the run it resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fastnst.artifacts import load_exported
from fastnst.data import StyleDataModule
from tests.helpers import tiny, wait_for

REPO = Path(__file__).resolve().parents[1]

# One rank of a 2-process gloo group: the real StyleDataModule under a stand-in trainer whose
# broadcast is torch.distributed's; prints the item codes this rank trains on, per epoch.
RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from types import SimpleNamespace
    import torch.distributed as dist
    from fastnst.data import StyleDataModule

    os.environ.pop("PL_GLOBAL_SEED", None)  # seed: null
    dist.init_process_group("gloo")
    def broadcast(obj, src=0):
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    dm = StyleDataModule(sys.argv[1], "folder", image_size=16, batch_size=2, num_workers=0,
                         val_fraction=0.0, augment=False)
    progress = SimpleNamespace(current=SimpleNamespace(processed=0))
    dm.trainer = SimpleNamespace(world_size=2, global_rank=dist.get_rank(),
                                 strategy=SimpleNamespace(broadcast=broadcast),
                                 fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)))
    dm.setup("fit")
    sampler = dm.train_dataloader().sampler
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    print(json.dumps({"rank": dist.get_rank(), "seed": dm.train_set.seed, "epochs": epochs}))
    dist.destroy_process_group()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_split_each_global_batch_without_a_seed(photo_folder):
    folder = photo_folder(12, size=(20, 20))
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": "2",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PL_GLOBAL_SEED", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(folder)],
            env={**env, "RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    ranks = sorted(
        (json.loads(out.strip().splitlines()[-1]) for out, _ in outs), key=lambda r: r["rank"]
    )
    assert ranks[0]["seed"] == ranks[1]["seed"], "the ranks shuffle with different seeds"
    for epoch in range(2):
        a, b = ranks[0]["epochs"][epoch], ranks[1]["epochs"][epoch]
        assert len(a) == len(b) == 6
        assert not set(a) & set(b), f"epoch {epoch}: both ranks train on {set(a) & set(b)}"
        assert sorted(a + b) == [epoch * 12 + i for i in range(12)]  # together: every photo once


def test_the_drawn_data_seed_is_stored_in_the_checkpoint_and_reused(photo_folder, monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    folder = photo_folder(6, size=(20, 20))

    def datamodule():
        dm = StyleDataModule(
            str(folder), "folder", image_size=16, batch_size=2, num_workers=0, val_fraction=0.0
        )
        dm.setup("fit")
        return dm

    first = datamodule()
    order = list(first.train_dataloader().sampler)
    saved = first.state_dict()
    resumed = datamodule()
    resumed.load_state_dict(saved)
    assert resumed.train_set.seed == first.train_set.seed
    assert list(resumed.train_dataloader().sampler) == order


@pytest.mark.slow
def test_resume_after_sigkill_without_a_seed_reaches_the_uninterrupted_weights(
    photo_folder, style_env, tmp_path
):
    """The uninterrupted run draws its own seed, so the killed run is a copy of it: it is frozen
    (SIGSTOP) at a random step, its run directory copied, and the copy resumed. The copy is exactly
    what a SIGKILL at that step leaves behind (writes are atomic)."""
    args = [
        a
        for a in tiny(
            photo_folder(9),
            "trainer.val_check_interval=4",
            "callbacks.images.every_n_steps=0",
            "callbacks.last_checkpoint.every_n_steps=1",
            "export=true",
            steps=10,
        )
        if not a.startswith("seed=")
    ]
    env = {k: v for k, v in os.environ.items() if k != "PL_GLOBAL_SEED"}
    full, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args, f"hydra.run.dir={full}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    wait_for(full / "checkpoints" / "last.ckpt", proc, min_step=4)
    proc.send_signal(signal.SIGSTOP)
    try:
        shutil.copytree(full, killed, ignore=shutil.ignore_patterns(".lock"))
    finally:
        proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)
    assert 4 <= ckpt["global_step"] < 10 and not (killed / "model.pt").exists()
    assert ckpt["StyleDataModule"]["data_seed"] is not None
    time.sleep(0.1)
    resumed = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args, f"resume={killed}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    net_a, meta_a = load_exported(killed / "model.pt")
    net_b, _ = load_exported(full / "model.pt")
    assert meta_a["global_step"] == 10
    for (name, p), q in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-4, rtol=1e-4), (
            f"{name} differs after resuming from step {ckpt['global_step']}"
        )
