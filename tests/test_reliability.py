"""Nothing lost on kills, SIGTERM, damaged checkpoints or a diverging loss."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst.artifacts import load_exported
from fastnst.callbacks import parameters_finite
from fastnst.errors import FastNSTError
from fastnst.train import train
from tests.helpers import PoisonBatch, scalars, tiny, wait_for

REPO = Path(__file__).resolve().parents[1]


def kill_step(test: str) -> int:
    """The step a run is killed after, drawn from a generator seeded by FASTNST_TEST_SEED (default
    0) and the test: the same seed replays a failure (its message names both)."""
    return random.Random(f"{os.environ.get('FASTNST_TEST_SEED', '0')}:{test}").randint(2, 7)


def launch(args, **kw):
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_reaches_the_same_weights(
    compose_train, photo_folder, style_env, tmp_path
):
    folder = photo_folder(9)
    args = tiny(
        folder,
        "trainer.val_check_interval=4",
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=1",
        "export=true",
        steps=10,
    )
    run_dir = tmp_path / "killed"
    proc = launch([*args, f"hydra.run.dir={run_dir}"])
    kill_after = kill_step("sigkill_then_resume")
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc, min_step=kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "model.pt").exists(), "the run finished before it could be killed"
    killed_at = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]

    resumed = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args, f"resume={run_dir}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = train(compose_train(*args, run_dir=tmp_path / "reference"))
    net_a, meta_a = load_exported(run_dir / "model.pt")
    net_b, _ = load_exported(reference["model_path"])
    assert meta_a["global_step"] == 10
    for (name, p), q in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-4, rtol=1e-4), (
            f"{name} differs after a kill at step {killed_at} (drawn: {kill_after}) + resume"
        )
    # the same TensorBoard run continues: steps after the kill are in the killed run's directory
    assert max(scalars(run_dir, "train/loss")) == 9


@pytest.mark.slow
def test_sigkill_then_resume_alone_reaches_the_same_weights_and_keeps_the_config(
    compose_train, photo_folder, style_env, tmp_path
):
    # far from the defaults: a resume that fell back on them could not load the checkpoint
    args = [
        "debug=quick",
        "model=johnson_fast",
        "data=folder",
        f"data.root={photo_folder(9)}",
        "data.image_size=32",
        "data.batch_size=2",
        "style.size=48",
        "trainer.max_steps=10",
        "trainer.val_check_interval=4",
        "trainer.enable_progress_bar=false",
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=1",
        "seed=0",
    ]
    run_dir = tmp_path / "killed"
    proc = launch([*args, f"hydra.run.dir={run_dir}"])
    kill_after = kill_step("sigkill_then_resume_alone")
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc, min_step=kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "model.pt").exists(), "the run finished before it could be killed"
    config = {
        p: p.read_bytes() for p in [run_dir / "config.yaml", *(run_dir / ".hydra").glob("*.yaml")]
    }

    resumed = subprocess.run(
        [sys.executable, str(REPO / "train.py"), f"resume={run_dir}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {p: p.read_bytes() for p in config} == config
    reference = train(compose_train(*args, run_dir=tmp_path / "reference"))
    net_a, meta_a = load_exported(run_dir / "model.pt")
    net_b, _ = load_exported(reference["model_path"])
    assert meta_a["global_step"] == 10 and meta_a["model"]["channels"] == [12, 24, 48]
    for (name, p), q in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-4, rtol=1e-4), (
            f"{name} differs after a kill after step {kill_after} + resume"
        )


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint(photo_folder, style_env, tmp_path):
    folder = photo_folder(6)
    # no periodic checkpoints: only SIGTERM can write last.ckpt
    args = tiny(
        folder,
        "trainer.val_check_interval=1000",
        "callbacks.last_checkpoint.every_n_steps=0",
        "callbacks.last_checkpoint.every_minutes=null",
        "callbacks.images.every_n_steps=0",
        steps=100000,
    )
    run_dir = tmp_path / "run"
    proc = launch([*args, f"hydra.run.dir={run_dir}"])
    # wait until it trains, then send what a scheduler sends before killing a job
    deadline = time.monotonic() + 240
    while not list(run_dir.glob("events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.exists(), proc.stderr.read()[-2000:]
    assert torch.load(ckpt, weights_only=False)["global_step"] >= 1
    assert "Traceback" not in proc.stderr.read()


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(
    compose_train, photo_folder, style_env, tmp_path, capsys
):
    folder = photo_folder(9)
    args = tiny(
        folder,
        "trainer.val_check_interval=100",
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=2",
        steps=4,
    )
    run_dir = tmp_path / "run"
    train(compose_train(*args, run_dir=run_dir))
    last, previous = (
        run_dir / "checkpoints" / "last.ckpt",
        run_dir / "checkpoints" / "previous.ckpt",
    )
    assert torch.load(previous, weights_only=False)["global_step"] == 2
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # damaged on purpose
    result = train(
        compose_train(*args, "trainer.max_steps=6", f"resume={run_dir}", run_dir=run_dir)
    )
    assert result["global_step"] == 6
    assert "truncated or corrupt" in capsys.readouterr().err


def test_truncated_checkpoint_given_explicitly_is_a_clear_error(
    compose_train, tmp_path, photo_folder, style_env
):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(FastNSTError, match="bad.ckpt: checkpoint is truncated or corrupt"):
        train(compose_train(*tiny(photo_folder(4), f"ckpt_path={bad}"), run_dir=tmp_path / "run"))


def test_nan_loss_stops_with_the_step_and_keeps_a_good_checkpoint(
    compose_train, photo_folder, style_env, tmp_path
):
    args = tiny(
        photo_folder(9),
        "trainer.val_check_interval=100",
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=2",
        steps=10,
    )
    run_dir = tmp_path / "run"
    with pytest.raises(FastNSTError, match="non-finite loss at step 5") as err:
        train(compose_train(*args, run_dir=run_dir), callbacks=[PoisonBatch(5)])
    assert "last.ckpt" in str(err.value)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    # saved when the run stopped, right after the skipped step (Lightning counts it as a step)
    assert ckpt["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_nan_loss_with_rollback_continues_at_a_lower_learning_rate(
    compose_train, photo_folder, style_env, tmp_path
):
    args = tiny(
        photo_folder(9),
        "trainer.val_check_interval=100",
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=2",
        "callbacks.divergence.rollback=true",
        steps=10,
    )
    result = train(compose_train(*args, run_dir=tmp_path / "run"), callbacks=[PoisonBatch(5)])
    assert result["global_step"] == 10
    lr = scalars(result["run_dir"], "train/lr")
    assert lr[0] == pytest.approx(1e-3) and lr[max(lr)] == pytest.approx(5e-4)
    net, _ = load_exported(result["model_path"])
    assert parameters_finite(net)


def test_rollback_count_is_kept_in_checkpoints_and_caps_a_resumed_run(
    compose_train, photo_folder, style_env, tmp_path
):
    # the DivergenceGuard callback's state (its rollbacks) travels in last.ckpt: a resumed run
    # does not get max_rollbacks anew
    folder = photo_folder(9)
    base = (
        "trainer.val_check_interval=100",
        "callbacks.images.every_n_steps=0",
        "callbacks.last_checkpoint.every_n_steps=2",
        "callbacks.divergence.rollback=true",
        "callbacks.divergence.max_rollbacks=1",
    )
    run_dir = tmp_path / "run"
    result = train(
        compose_train(*tiny(folder, *base, steps=6), run_dir=run_dir), callbacks=[PoisonBatch(3)]
    )
    assert result["global_step"] == 6
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    guard_states = [v for k, v in ckpt["callbacks"].items() if k.startswith("DivergenceGuard")]
    assert guard_states == [{"rollbacks": 1}]
    with pytest.raises(FastNSTError, match="non-finite loss at step 7"):
        train(
            compose_train(
                *tiny(
                    folder, *base, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", steps=10
                ),
                run_dir=tmp_path / "resumed",
            ),
            callbacks=[PoisonBatch(7)],
        )


def test_divergence_guard_skips_the_update_of_a_non_finite_loss():
    from fastnst.callbacks import DivergenceGuard

    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    before = [p.detach().clone() for p in net.parameters()]

    class FakeTrainer:  # what the guard reads
        global_step, should_stop, callbacks = 4, False, []
        precision_plugin = object()

    guard, trainer = DivergenceGuard(check_every_n_steps=1), FakeTrainer()
    loss = net(torch.tensor([[float("nan"), 1.0]])).sum()
    guard.on_before_backward(trainer, net, loss)
    loss.backward()
    guard.on_before_optimizer_step(trainer, net, optimizer)
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert guard.diverged_at == 4 and trainer.should_stop
    restored = DivergenceGuard()
    restored.load_state_dict({**guard.state_dict(), "rollbacks": 2})
    assert restored.rollbacks == 2


def test_unwritable_run_directory_fails_before_training(
    compose_train, photo_folder, style_env, tmp_path
):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        run_dir = blocker / "run"  # a path below a regular file can never be created, even by root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        run_dir = locked / "run"
    with pytest.raises(FastNSTError, match="not writable"):
        train(compose_train(*tiny(photo_folder(4)), run_dir=run_dir))


def test_two_runs_never_share_a_run_directory(photo_folder, style_env, tmp_path):
    from fastnst.train import run_lock

    run_dir = tmp_path / "shared"
    run_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run_dir / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(FastNSTError, match="in use by another training process"):
            with run_lock(run_dir):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with run_lock(run_dir):  # a lock left by a dead process is taken over
        assert (run_dir / ".lock").read_text() == str(os.getpid())
    assert not (run_dir / ".lock").exists()
    shutil.rmtree(run_dir)


def test_sigterm_mid_folder_job_leaves_no_temp_file(tmp_path, model_file):
    """SIGTERM while a folder job writes: exit 143 with one line, every finished output whole,
    no hidden .tmp file beside them; the same command then finishes the job."""
    from tests.helpers import make_image

    photos = tmp_path / "photos"
    for i in range(60):
        make_image(photos / f"{i:02d}.png", size=(384, 288), seed=i)
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(REPO / "stylize.py"),
        f"model={model_file}",
        f"input={photos}",
        f"output={out}",
        "batch_size=1",
        "backend=torch",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120

    def finished() -> list[Path]:  # outputs in place (pathlib's glob also matches .hidden)
        return sorted(p for p in out.glob("*.png") if not p.name.startswith("."))

    while not (out.is_dir() and finished()) and proc.poll() is None:
        assert time.monotonic() < deadline, "no output within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 60 images: the signal came mid-job
    assert "fastnst: terminated (outputs already written are kept" in err
    assert "Traceback" not in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    done = finished()
    assert 0 < len(done) < 60
    for path in done:
        Image.open(path).load()  # every output there is whole
    finish = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    assert len(finished()) == 60 and len(list(out.iterdir())) == 60
