"""Thin @hydra.main entry points. Each calls a plain function that tests call directly.

User errors (FastNSTError) print one line and exit with code 2; `traceback=true` re-raises.
"""

from __future__ import annotations

import difflib
import logging
import sys
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from fastnst.accel.cpu_tuning import passive_openmp_waits
from fastnst.config import CONFIG_DIR, compose
from fastnst.errors import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    FastNSTError,
    print_error,
    user_error_in,
)
from fastnst.preflight import option_type_error


def run_reporting_errors(fn, cfg: DictConfig):
    """Run fn(cfg); a FastNSTError becomes one line on stderr and exit code 2."""
    try:
        return fn(cfg)
    except (FastNSTError, InstantiationException) as e:
        user_error = user_error_in(e)
        if not isinstance(user_error, FastNSTError) or cfg.traceback:
            raise
        _fail(user_error)
    except KeyboardInterrupt:
        print("fastnst: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def check_overrides(config_dir, config_name: str, args: list[str]) -> DictConfig | None:
    """Compose the config once before Hydra does, so that a typo in an override is one line
    naming the key (with a suggestion) and exit code 2, instead of Hydra's multi-line report;
    then the values' types and the `+key=` additions are checked."""
    if any(a.startswith("-") for a in args):
        return  # --help, --cfg, -m sweeps...: Hydra's own handling
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )

    try:
        cfg = compose(config_name, args, config_dir)
    except MissingConfigException as e:
        group = next(
            (o.split("=", 1) for o in args if "=" in o and f"'{o.split('=', 1)[0]}/" in str(e)),
            None,
        )
        if group:
            options = sorted(p.stem for p in (Path(config_dir) / group[0]).glob("*.yaml"))
            hint = difflib.get_close_matches(group[1], options, n=1)
            _fail(
                f"unknown {group[0]} '{group[1]}'"
                + (f" (did you mean '{hint[0]}'?)" if hint else "")
                + f"; choose from: {', '.join(options)}"
            )
        _fail(str(e).splitlines()[0])
    except (ConfigCompositionException, OverrideParseException) as e:
        key = next((o.split("=", 1)[0] for o in args if f"'{o.split('=', 1)[0]}'" in str(e)), None)
        if (
            key
            and "not in struct" in str(e.__cause__ or e)
            and not _is_option(config_dir, config_name, key)
        ):
            _fail(f"unknown option '{key}'" + _did_you_mean(config_dir, config_name, key))
        _fail(" ".join(str(e).split()))
    message = added_key_error(config_dir, config_name, args)
    if message is None:
        try:
            message = option_type_error(config_dir, config_name, args)  # trainer.max_steps=abc
        except Exception:  # the check must never block a command Hydra accepted
            message = None
    if message:
        _fail(message)
    return cfg


def _is_option(config_dir, config_name: str, key: str) -> bool:
    """Whether `key` is in the composed config (a mapping assigned new keys fails as "not in
    struct" too; Hydra's own message then says how to add them)."""
    try:
        base = compose(config_name, [], config_dir)
    except Exception:
        return False
    return OmegaConf.select(base, key.lstrip("+~"), default="<absent>") != "<absent>"


def _did_you_mean(config_dir, config_name: str, key: str) -> str:
    """` (did you mean 'trainer.max_steps'?)` for an option `key` that is not in the config."""
    parent, _, leaf = key.lstrip("+~").rpartition(".")
    try:
        base = compose(config_name, [], config_dir)
        section = OmegaConf.select(base, parent) if parent else base
    except Exception:
        return ""
    known = [str(k) for k in section] if isinstance(section, DictConfig) else []
    hint = difflib.get_close_matches(leaf, known, n=1)
    return f" (did you mean '{(parent + '.') if parent else ''}{hint[0]}'?)" if hint else ""


def added_key_error(config_dir, config_name: str, args: list[str]) -> str | None:
    """`+key=value` (or `++key=value`) adds a key the config does not have. That is refused (one line) unless the
    program can read it: a keyword argument of the class or function its section builds
    (`+trainer.max_time=...` reaches pytorch_lightning.Trainer), a key inside a free-form mapping
    (a null or {} default, e.g. system.compile's torch.compile kwargs), or hydra's own settings.
    Elsewhere the value would be ignored without a word (`+strenght=0.1`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    overrides = OverridesParser.create().parse_overrides(args)
    added = [
        o
        for o in overrides
        if o.type in (OverrideType.ADD, OverrideType.FORCE_ADD)
        and o.package is None
        and not o.key_or_group.startswith("hydra.")
        and o.key_or_group != "hydra"
        and not (Path(config_dir) / o.key_or_group).is_dir()  # +experiment=..., a group
    ]
    if not added:
        return None
    base = compose(config_name, [o.input_line for o in overrides if o not in added], config_dir)
    for override in added:
        key = override.key_or_group
        parent, _, leaf = key.rpartition(".")
        section = OmegaConf.select(base, parent, default=None) if parent else base
        if isinstance(section, DictConfig) and (leaf in section or _reads_any_key(section, leaf)):
            continue  # a key the config has (++key=...), or one its section's class takes
        if section is None and parent and _has_null_parent(base, parent):
            continue  # +system.scheduler.name=cosine: a null (free-form) section
        program = "app.py" if config_name == "app" else f"{config_name}.py"
        return (
            f"unknown key '{key}': {override.input_line} adds an option {program} never reads"
            + _did_you_mean(config_dir, config_name, key)
        )
    return None


def _has_null_parent(cfg: DictConfig, key: str) -> bool:
    """Whether the deepest existing node on `key`'s path is null (a free-form option)."""
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        path = ".".join(parts[:i])
        if OmegaConf.select(cfg, path, default="<absent>") != "<absent>":
            return OmegaConf.select(cfg, path) is None
    return False


def _reads_any_key(section: DictConfig, leaf: str) -> bool:
    """Whether a key `leaf` added to `section` reaches code: the section has no keys of its own
    (free-form), is a collection of objects (each entry has a `_target_`), or names a
    `_target_` whose signature takes `leaf` (or **kwargs)."""
    import inspect

    if len(section) == 0:
        return True
    from fastnst.vgg import LAYER_NAMES

    if leaf in LAYER_NAMES and all(str(k) in LAYER_NAMES for k in section):
        return True  # a weight per VGG19 layer (loss.content_layers, loss.style_layers)
    entries = OmegaConf.to_container(section, resolve=False).values()  # `???` left as is
    if all(isinstance(v, dict) and "_target_" in v for v in entries):
        return True  # a collection of objects (callbacks, logger): every entry is built
    target = section.get("_target_") if "_target_" in section else None
    if not isinstance(target, str) or "${" in target:
        return False
    try:
        from hydra._internal.utils import _locate

        obj = _locate(target)
        params = inspect.signature(obj).parameters
    except Exception:  # an unimportable target: Hydra will say so when it builds it
        return True
    return leaf in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _fail(message: object):
    print_error(message)
    sys.exit(EXIT_USER_ERROR)


def _entry(hydra_main, config_dir, config_name: str, before=None):
    """The console entry point: check the overrides, then hand over to @hydra.main."""

    def main():
        if before is not None:
            before()
        check_overrides(config_dir, config_name, sys.argv[1:])
        return hydra_main()

    main.__name__ = hydra_main.__name__.lstrip("_")
    return main


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="gatys")
def _gatys_main(cfg: DictConfig) -> None:
    from fastnst.apps.gatys import run_gatys

    run_reporting_errors(run_gatys, cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _train_main(cfg: DictConfig):
    from fastnst.train import train

    if cfg.get("resume"):
        cfg = _resumed(cfg)
    return run_reporting_errors(train, cfg)


def _resumed(cfg: DictConfig) -> DictConfig:
    """resume=<run dir>: the run's own config, with the command line's safe changes."""
    from hydra.core.hydra_config import HydraConfig
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    from fastnst.resume import resume_config

    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
    try:
        resumed, changes = resume_config(cfg.resume, overrides)
    except FastNSTError as e:
        _fail(str(e))
    if rank_zero_only.rank == 0:  # logged: on the console and in the run's train.log
        logging.getLogger("fastnst.train").info(
            "resuming %s with its saved config%s",
            resumed.run_dir,
            f"; changed {', '.join(changes)}" if changes else "",
        )
    return resumed


def _train_checks(args: list[str], cfg: DictConfig | None) -> None:
    """Before Hydra creates the run directory: the output root must be creatable, and a
    resumed run must exist (Hydra would create it) and take the overrides given with it."""
    from fastnst.preflight import check_train_setup, ensure_writable
    from fastnst.resume import resume_config

    if cfg is None:
        return  # --help, -m ...: Hydra's own handling
    try:
        if cfg.get("resume"):
            cfg, _ = resume_config(cfg.resume, [a for a in args if not a.startswith("resume=")])
            sys.argv.append("hydra.output_subdir=null")  # keep the run's own .hydra/ as it was
        else:
            ensure_writable(Path(str(cfg.paths.output_root)), "paths.output_root", folder=True)
        check_train_setup(cfg)  # the precision, the photo folder: before Lightning starts
    except FastNSTError as e:
        _fail(str(e))


# train options that moved (to conf/callbacks/default.yaml): the old names still work on the
# command line, with a note
RENAMED_TRAIN_OPTIONS = {
    "system.log_images_every_n_steps": "callbacks.images.every_n_steps",
    "system.num_log_images": "callbacks.images.num_images",
    "system.divergence": "callbacks.divergence",
}


def renamed_overrides(
    args: list[str], renamed: dict[str, str] = RENAMED_TRAIN_OPTIONS
) -> list[str]:
    """`args` with each override of an old option name (or of a key below it) under its new name."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        bare = key.lstrip("+~")
        prefix = key[: len(key) - len(bare)]
        old = next((o for o in renamed if bare == o or bare.startswith(o + ".")), None)
        if old is not None:
            new = renamed[old] + bare[len(old) :]
            print(f"fastnst: note: {bare} is now {new}", file=sys.stderr)
            arg = prefix + new + sep + value
        out.append(arg)
    return out


def train_main():
    """`python train.py ...`: check the overrides, the output folder and a resume, then Hydra."""
    sys.argv[1:] = renamed_overrides(sys.argv[1:])
    args = sys.argv[1:]
    _train_checks(args, check_overrides(CONFIG_DIR, "train", args))
    return _train_main()


# stylize/export take `model=<file>`; in conf/ `model` is a config group (the network presets),
# so their primary configs live in conf/inference/, a search path without that group.
INFERENCE_CONFIG_DIR = CONFIG_DIR / "inference"


@hydra.main(version_base="1.3", config_path=str(INFERENCE_CONFIG_DIR), config_name="stylize")
def _stylize_main(cfg: DictConfig) -> None:
    from fastnst.apps.stylize import stylize_cli

    run_reporting_errors(stylize_cli, cfg)


@hydra.main(version_base="1.3", config_path=str(INFERENCE_CONFIG_DIR), config_name="export")
def _export_main(cfg: DictConfig) -> None:
    from fastnst.apps.export import export_cli

    run_reporting_errors(export_cli, cfg)


gatys_main = _entry(_gatys_main, CONFIG_DIR, "gatys", before=passive_openmp_waits)
stylize_main = _entry(_stylize_main, INFERENCE_CONFIG_DIR, "stylize", before=passive_openmp_waits)
export_main = _entry(_export_main, INFERENCE_CONFIG_DIR, "export")


@hydra.main(version_base="1.3", config_path=str(INFERENCE_CONFIG_DIR), config_name="evaluate")
def _evaluate_main(cfg: DictConfig) -> None:
    from fastnst.apps.evaluate import evaluate_cli

    run_reporting_errors(evaluate_cli, cfg)


evaluate_main = _entry(_evaluate_main, INFERENCE_CONFIG_DIR, "evaluate")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="app")
def _app_main(cfg: DictConfig) -> None:
    from fastnst.apps.web import app_cli

    run_reporting_errors(app_cli, cfg)


app_main = _entry(_app_main, CONFIG_DIR, "app", before=passive_openmp_waits)
