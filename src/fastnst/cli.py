"""Thin @hydra.main entry points. Each calls a plain function that tests call directly.

User errors (FastNSTError) print one line and exit with code 2; `traceback=true` re-raises.
"""

from __future__ import annotations

import sys

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from fastnst.config import CONFIG_DIR
from fastnst.errors import FastNSTError

EXIT_USER_ERROR = 2


def run_reporting_errors(fn, cfg: DictConfig):
    """Run fn(cfg); a FastNSTError becomes one line on stderr and exit code 2."""
    try:
        return fn(cfg)
    except (FastNSTError, InstantiationException) as e:
        # hydra.utils.instantiate wraps errors raised in constructors: unwrap ours
        user_error = e if isinstance(e, FastNSTError) else e.__cause__
        if not isinstance(user_error, FastNSTError) or cfg.get("traceback", False):
            raise
        print(f"fastnst: error: {user_error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("fastnst: interrupted", file=sys.stderr)
        sys.exit(130)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="gatys")
def gatys_main(cfg: DictConfig) -> None:
    from fastnst.gatys import run_gatys

    run_reporting_errors(run_gatys, cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def train_main(cfg: DictConfig):
    from fastnst.train import train

    return run_reporting_errors(train, cfg)


# stylize/export take `model=<file>`; in conf/ `model` is a config group (the network presets),
# so their primary configs live in conf/inference/, a search path without that group.
INFERENCE_CONFIG_DIR = CONFIG_DIR / "inference"


@hydra.main(version_base="1.3", config_path=str(INFERENCE_CONFIG_DIR), config_name="stylize")
def stylize_main(cfg: DictConfig) -> None:
    from fastnst.stylize import stylize_cli

    run_reporting_errors(stylize_cli, cfg)


@hydra.main(version_base="1.3", config_path=str(INFERENCE_CONFIG_DIR), config_name="export")
def export_main(cfg: DictConfig) -> None:
    from fastnst.export import export_cli

    run_reporting_errors(export_cli, cfg)
