"""`resume=<run dir>`: continue a run with the run's own saved config.

The command line of a resume is not the run's recipe: the run directory's resolved
`config.yaml` is. Overrides given with `resume=` are applied only where they cannot change what
the checkpoint holds or the data order (the number of steps, logging, checkpoint frequency...);
one that would change the network, the loss or the data is refused, since the checkpoint could
not be loaded into it, or the run would silently become another recipe. An override whose value
is the run's own value is no change, so the original command line plus `resume=` works too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fastnst.config import compose, upgrade_saved_targets
from fastnst.errors import FastNSTError

# keys (or their parents) an override may change when resuming
SAFE_ON_RESUME = (
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.max_time",
    "trainer.val_check_interval",
    "trainer.limit_val_batches",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.accelerator",
    "trainer.precision",
    "trainer.benchmark",
    "callbacks.last_checkpoint.every_n_steps",
    "callbacks.last_checkpoint.every_minutes",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.cache",
    "data.cache_dir",
    "callbacks.images",
    "callbacks.divergence",
    "system.compile",
    "system.channels_last",
    "compile",
    "export",
    "evaluate",
    "traceback",
)
# keys that say where the run is, not what it is: never compared
_IGNORED = ("resume", "run_dir", "ckpt_path")
# keys train() derives from others (multistyle.expand_multi_style: style.members from style.names):
# never asked for on a command line, so never compared (the keys they come from are)
_DERIVED = ("style.members", "system.style.members")
_DELETED = object()


def resume_config(run_dir: str | Path, overrides: list[str] = ()) -> tuple[DictConfig, list[str]]:
    """The config to resume `run_dir` with, and the changes `overrides` made to it
    ("key: old -> new"). Raises FastNSTError for a missing run directory or an unsafe override."""
    run_dir = Path(str(run_dir)).expanduser().resolve()
    if not run_dir.is_dir():
        raise FastNSTError(f"{run_dir}: resume: no such run directory")
    cfg = saved_config(run_dir)
    changes = []
    for key, value in sorted(requested_changes(list(overrides)).items()):
        current = OmegaConf.select(cfg, key, default=_DELETED)
        if value is _DELETED and current is _DELETED or value == _plain(current):
            continue
        if value is _DELETED or not _is_safe(key):
            shown = "(removed)" if value is _DELETED else _show(value)
            raise FastNSTError(
                f"resume: {key} cannot change in a run (it is {_show(current)}, asked {shown}): it shapes the "
                f"network, loss or data. Allowed with resume=: trainer.max_steps, logging, checkpoint and "
                f"worker settings. Start a new run from its checkpoint with ckpt_path={run_dir}/checkpoints/last.ckpt"
            )
        OmegaConf.update(cfg, key, value, force_add=True)
        changes.append(f"{key}: {_show(current)} -> {_show(value)}")
    return cfg, changes


def saved_config(run_dir: Path) -> DictConfig:
    """The run's resolved config.yaml (or Hydra's .hydra/config.yaml), pointing at `run_dir`
    even when the directory was moved since."""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            cfg = OmegaConf.load(path)
            break
    else:
        raise FastNSTError(
            f"{run_dir}: resume: not a run directory (no config.yaml or .hydra/config.yaml)"
        )
    saved_dir = OmegaConf.to_container(cfg, resolve=False).get("run_dir")
    if saved_dir and "${" in str(
        saved_dir
    ):  # .hydra/config.yaml: not resolved, nothing to relocate
        saved_dir = None
    upgrade_saved_targets(cfg)  # a class that moved since the run was saved
    cfg.run_dir = str(run_dir)
    cfg.resume = str(run_dir)
    container = OmegaConf.to_container(cfg, resolve=True)
    if saved_dir and str(saved_dir) != str(run_dir):
        container = _relocated(container, str(saved_dir), str(run_dir))
    return OmegaConf.create(container)


def requested_changes(overrides: list[str]) -> dict[str, Any]:
    """{dotted key: value} for every leaf the overrides set: leaves that differ from the defaults,
    plus every leaf under a key or group named explicitly (an override back to a default value
    still counts). A leaf the overrides delete maps to _DELETED."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    if not overrides:
        return {}
    named = [
        o.key_or_group.split("@")[0].replace("/", ".")
        for o in OverridesParser.create().parse_overrides(overrides)
    ]
    base, asked = _leaves(_compose([])), _leaves(_compose(overrides))
    changes = {
        k: v
        for k, v in asked.items()
        if base.get(k, _DELETED) != v or any(k == n or k.startswith(n + ".") for n in named)
    }
    changes.update({k: _DELETED for k in base.keys() - asked.keys()})
    return {
        k: v for k, v in changes.items() if k.split(".")[0] not in _IGNORED and not _is_derived(k)
    }


def _compose(overrides: list[str]) -> DictConfig:
    return compose("train", overrides)


def _leaves(cfg: DictConfig) -> dict[str, Any]:
    """Dotted key -> resolved value, with user paths made absolute as train() stores them."""
    from fastnst.train import absolute_user_paths

    container = OmegaConf.to_container(cfg, resolve=False)
    container["run_dir"] = "<run_dir>"  # needs Hydra's runtime; paths below it are the same in both
    cfg = OmegaConf.create(container)
    absolute_user_paths(cfg)
    flat: dict[str, Any] = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "")
    return flat


def _is_derived(key: str) -> bool:
    return any(key == derived or key.startswith(derived + ".") for derived in _DERIVED)


def _is_safe(key: str) -> bool:
    return any(key == safe or key.startswith(safe + ".") for safe in SAFE_ON_RESUME)


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _show(value) -> str:
    return "(not set)" if value is _DELETED else str(_plain(value))


def _relocated(node, old: str, new: str):
    """Paths inside the run directory follow it when it was moved (checkpoints, logs)."""
    if isinstance(node, dict):
        return {k: _relocated(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_relocated(v, old, new) for v in node]
    if isinstance(node, str) and (node == old or node.startswith(old + "/")):
        return new + node[len(old) :]
    return node


__all__ = ["resume_config", "saved_config", "requested_changes", "SAFE_ON_RESUME"]
