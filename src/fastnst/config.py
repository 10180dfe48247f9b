"""Hydra/OmegaConf glue shared by the entry points: resolvers and the config directory."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "conf"

if not OmegaConf.has_resolver("fastnst_root"):
    OmegaConf.register_new_resolver("fastnst_root", lambda: str(REPO_ROOT))


def resolve_user_path(path) -> Path:
    """User paths are relative to the launch directory (Hydra 1.3 keeps the cwd; we never chdir)."""
    return Path(str(path)).expanduser().resolve()
