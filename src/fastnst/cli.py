"""Thin @hydra.main entry points. Each calls a plain function that tests call directly.

User errors (FastNSTError) print one line and exit with code 2; `traceback=true` re-raises.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from fastnst.config import CONFIG_DIR
from fastnst.errors import FastNSTError

EXIT_USER_ERROR = 2


def run_reporting_errors(fn, cfg: DictConfig):
    """Run fn(cfg); a FastNSTError becomes one line on stderr and exit code 2."""
    try:
        return fn(cfg)
    except FastNSTError as e:
        if cfg.get("traceback", False):
            raise
        print(f"fastnst: error: {e}", file=sys.stderr)
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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="stylize")
def stylize_main(cfg: DictConfig) -> None:
    from fastnst.stylize import stylize_cli

    run_reporting_errors(stylize_cli, cfg)
