"""Run a script of scripts/ the way a user does: a separate Python process (no test imports a
script). `script_path("zoo_sheet")` finds scripts/<group>/zoo_sheet.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def all_scripts() -> list[Path]:
    """Every Python script under scripts/ (each group folder), sorted."""
    return sorted(p for p in SCRIPTS.rglob("*.py") if "__pycache__" not in p.parts)


def script_path(name: str) -> Path:
    found = [p for p in all_scripts() if p.stem == name]
    assert len(found) == 1, f"scripts/**/{name}.py: {found}"
    return found[0]


def run_script(name: str, *args, env: dict | None = None, cwd=None, timeout: int = 600):
    """(exit code, stdout, stderr) of `python scripts/<group>/<name>.py args...`."""
    proc = subprocess.run(
        [sys.executable, str(script_path(name)), *map(str, args)],
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr
