"""The README's quick start, run as written: `make test-quickstart` (about 10 minutes: it trains
experiment=cpu_quick), so `make test` leaves it out.

Every fenced block right after a `<!-- quickstart -->` comment runs verbatim with bash, in order,
in a copy of the repository made the way a fresh clone of this working tree would look: the
tracked and the untracked-but-not-ignored files (a `git clone` would miss uncommitted edits),
nothing that .gitignore lists (no outputs/, no .venv). `make install` is replaced by a link to
this repo's .venv (installing again needs the package index and minutes), and the copy's src/
comes first on PYTHONPATH, so the code that runs is the copy's, as an editable install in the
clone would make it. Each block starts with the README's own `source .venv/bin/activate`, with
FASTNST_DATA set. A block marked `<!-- quickstart server=PORT -->` starts a server: it must
answer HTTP on that port, then it is stopped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- quickstart(?: server=(\d+))? -->\s*\n```bash\n(.*?)\n```", re.S)
SERVER_START_S = 300
BLOCK_TIMEOUT_S = 3600


def quickstart_blocks(readme: str) -> list[tuple[str, int | None]]:
    """(script, port or None) for each marked block, in README order."""
    return [(m.group(2), int(m.group(1)) if m.group(1) else None) for m in BLOCK.finditer(readme)]


def test_blocks_are_found():
    """The markers are there and cover the quick start's parts (a dropped marker would silently
    stop testing a block)."""
    blocks = quickstart_blocks((REPO / "README.md").read_text())
    text = "\n".join(script for script, _ in blocks)
    for command in (
        "stylize.py style=",
        "gatys.py",
        "app.py",
        "train.py experiment=cpu_quick",
        "tensorboard",
    ):
        assert command in text, f"no quickstart block runs {command}"
    assert sorted(port for _, port in blocks if port) == [6006, 7860]


def copy_working_tree(dest: Path) -> None:
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src, dst = REPO / rel, dest / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, dst)
    (dest / ".venv").symlink_to(REPO / ".venv")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def run_server(script: str, port: int, cwd: Path, env: dict) -> None:
    assert port_is_free(port), f"port {port} is already taken: the quickstart's server cannot start"
    log = cwd / f"server_{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not answers(port):
            assert proc.poll() is None, (
                f"the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, (
                f"nothing answers on port {port}:\n{log.read_text()[-3000:]}"
            )
            time.sleep(2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.quickstart
@pytest.mark.data
def test_readme_quickstart_runs_as_written(tmp_path, data_dir, request):
    if "quickstart" not in (request.config.getoption("markexpr") or "").replace(
        "not quickstart", ""
    ):
        pytest.skip("about 10 minutes: run it with `make test-quickstart` (-m quickstart)")
    clone = tmp_path / "fastnst"
    copy_working_tree(clone)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(FASTNST_DATA=str(data_dir), PYTHONPATH=str(clone / "src"))
    where = subprocess.run(
        [
            "bash",
            "-c",
            "source .venv/bin/activate && python -c 'import fastnst; print(fastnst.__file__)'",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(clone)), f"fastnst is imported from {where}, not from the copy"

    blocks = quickstart_blocks((clone / "README.md").read_text())
    for script, port in blocks:
        script = f"set -euo pipefail\nsource .venv/bin/activate\n{script}\n"
        if port:
            run_server(script, port, clone, env)
            continue
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        assert done.returncode == 0, (
            f"{script}\nexit {done.returncode}:\n{(done.stdout + done.stderr)[-4000:]}"
        )

    for made in (
        "chicago_scream.jpg",
        "chicago_starry.png",
        "chicago_starry.png.json",
        "outputs/wave_quick/model.pt",
        "chicago_wave.jpg",
    ):
        assert (clone / made).is_file(), f"the quick start did not write {made}"
