"""Hydra/OmegaConf glue shared by the entry points: resolvers, the config directory and the
data folder (`data_dir()`)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from fastnst.bundled import painting_path

REPO_ROOT = Path(__file__).resolve().parents[2]
# the configs ship inside the package (a wheel has no repo root); the repo's conf/ links here
CONFIG_DIR = Path(__file__).resolve().parent / "conf"
# src/fastnst in a source checkout (python train.py, an editable install), not site-packages
IN_CHECKOUT = (
    Path(__file__).resolve().parent.parent.name == "src"
    and (REPO_ROOT / "pyproject.toml").is_file()
)


def default_root() -> Path:
    """Where data/ and outputs/ are by default (paths.root_dir): the repo in a source checkout,
    else the current folder, so an installed `fastnst-train` writes under where it is run."""
    return REPO_ROOT if IN_CHECKOUT else Path.cwd()


DATA_ENV = "FASTNST_DATA"


def data_dir() -> Path:
    """The data folder (styles/, content/, imagenet-mini/, reference/ ...): $FASTNST_DATA when it
    is set and not empty, else data/ under default_root() (the repo in a source checkout, the
    current folder for an installed wheel). The configs' paths.data_dir is this function too
    (${fastnst_data_dir:}); a relative FASTNST_DATA is taken from the current folder."""
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser().absolute() if env else default_root() / "data"


if not OmegaConf.has_resolver("fastnst_root"):
    OmegaConf.register_new_resolver("fastnst_root", lambda: str(default_root()))
if not OmegaConf.has_resolver("fastnst_data_dir"):
    OmegaConf.register_new_resolver("fastnst_data_dir", lambda: str(data_dir()))
if not OmegaConf.has_resolver("first_set"):
    # ${first_set:${a},${b}}: the first argument that is not null (e.g. resume dir, else a new one)
    OmegaConf.register_new_resolver(
        "first_set", lambda *args: next((a for a in args if a is not None), None)
    )
if not OmegaConf.has_resolver("fastnst_painting"):
    # ${fastnst_painting:${paths.data_dir},wave}: the user's <data_dir>/styles/wave.jpg, else the
    # public-domain copy bundled in the package (fastnst/paintings/)
    OmegaConf.register_new_resolver("fastnst_painting", painting_path)
if not OmegaConf.has_resolver("fastnst_options"):
    # ${fastnst_options:inference/stylize} in a --help template: every key of that config with its
    # value and comment (fastnst.options_help), so the help cannot drift from the config
    def _options_help(name, _root_):
        from fastnst.options_help import help_resolver

        return help_resolver(CONFIG_DIR / f"{name}.yaml", _root_)

    OmegaConf.register_new_resolver("fastnst_options", _options_help)


def compose(
    config_name: str | None = "train",
    overrides=(),
    config_dir: str | os.PathLike | None = None,
    return_hydra_config: bool = False,
):
    """The config `python <entry>.py <overrides>` sees (Hydra's composition: defaults lists,
    groups, overrides), not resolved. `config_dir`: CONFIG_DIR, or CONFIG_DIR / "inference" for
    stylize / export / evaluate. The one place fastnst composes configs: it leaves Hydra's global
    state alone, so it works inside a running @hydra.main job as well as from a test or a script.
    Raises Hydra's own errors (a typo, an unknown group option); the entry points turn them into
    one line (fastnst.cli.check_overrides)."""
    from hydra import version
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.utils import setup_globals
    from hydra.types import RunMode
    from omegaconf import open_dict

    version.setbase("1.3")
    if not OmegaConf.has_resolver("now"):
        setup_globals()  # ${now:...}, ${hydra:...}
    config_dir = config_dir or CONFIG_DIR
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir)))
    cfg = loader.load_configuration(
        config_name=config_name,
        overrides=list(overrides),
        run_mode=RunMode.RUN,
        from_shell=False,
    )
    if not return_hydra_config and "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def preset_names(group: str, skip=()) -> list[str]:
    """The options of config group `group` (conf/<group>/*.yaml), sorted."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if p.stem not in skip)


def load_preset(group: str, name: str, paths=None, resolve: bool = True):
    """One option of a config group alone (conf/<group>/<name>.yaml, e.g. load_preset("loss",
    "stable")) as the entry points would compose it: its defaults list merged, `${paths.*}`
    resolved against conf/paths/default.yaml updated with `paths` (e.g. a run's cfg.paths).
    A plain-container DictConfig when `resolve`. An unknown name is one line (FastNSTError)
    listing the options."""
    from omegaconf import open_dict

    from fastnst.errors import FastNSTError

    if name not in preset_names(group) or os.sep in name:
        raise FastNSTError(
            f"unknown {group} preset {name!r}; choose from: {', '.join(preset_names(group))}"
        )
    with_paths = (CONFIG_DIR / "paths" / "default.yaml").is_file()
    cfg = compose(None, [f"+{group}={name}", *(["+paths=default"] if with_paths else [])])
    node = OmegaConf.select(cfg, group.replace("/", "."))
    with open_dict(cfg):
        cfg.paths = OmegaConf.merge(
            cfg.paths if with_paths else {"data_dir": str(data_dir())},
            OmegaConf.create(dict(paths or {})),
        )
    if not resolve:
        return node
    return OmegaConf.create(OmegaConf.to_container(node, resolve=True))


def group_options(*groups: str) -> str:
    """`  group: option, option` lines for the config groups an entry point uses (its --help);
    `style-multi` lists the group style without its option multi (gatys.py has no use for it)."""
    lines = []
    for spec in groups:
        group, *skip = spec.split("-")
        options = preset_names(group, skip)
        lines.append(f"  {group}: {', '.join(options)}")
    return "\n".join(lines)


if not OmegaConf.has_resolver("fastnst_groups"):
    OmegaConf.register_new_resolver("fastnst_groups", group_options)


def is_set(cfg, key: str) -> bool:
    """Whether option `key` holds a value (not null, empty or Hydra's mandatory `???`)."""
    if key not in cfg or OmegaConf.is_missing(cfg, key):
        return False
    value = cfg[key]
    return value is not None and value != "" and not (OmegaConf.is_list(value) and len(value) == 0)


def required(cfg, key: str, hint: str) -> str:
    """The value of a mandatory option; one line saying what to pass when it is unset."""
    if not is_set(cfg, key):
        from fastnst.errors import FastNSTError

        raise FastNSTError(f"{key}=... is required {hint}")
    return str(cfg[key])


def resolve_user_path(path) -> Path:
    """User paths are relative to the launch directory (Hydra 1.3 keeps the cwd; we never chdir).

    The folders are resolved, the last component is not: an output that is a symbolic link stays
    the link (the atomic writer then replaces the link itself, never the file it points to)."""
    path = Path(str(path)).expanduser()
    if path.name in ("", ".", ".."):
        return path.resolve()
    return path.parent.resolve() / path.name


# `_target_` paths that run configs saved by older versions name -> where the class lives now,
# so that a saved run still resumes (resume=) and evaluates after a class moves. Add a line here
# when a class a config builds moves (tests/test_legacy_fixtures.py resumes such a run).
MOVED_TARGETS: dict[str, str] = {}


def upgrade_saved_targets(cfg) -> list[str]:
    """Rewrite, in place, each `_target_` of a saved run config that names a moved class
    (MOVED_TARGETS); returns the rewrites as "old -> new"."""
    from omegaconf import DictConfig, ListConfig

    done: list[str] = []

    def walk(node):
        if isinstance(node, DictConfig):
            target = node.get("_target_") if "_target_" in node else None
            if isinstance(target, str) and target in MOVED_TARGETS:
                node["_target_"] = MOVED_TARGETS[target]
                done.append(f"{target} -> {MOVED_TARGETS[target]}")
            for key in node.keys():
                if not OmegaConf.is_interpolation(node, key):
                    walk(node.get(key))
        elif isinstance(node, ListConfig):
            for item in node:
                walk(item)

    walk(cfg)
    return done


def is_own_class(target) -> bool:
    """Whether a `_target_` string names a class defined in fastnst. The resolved object is
    checked, not the string: "fastnst.evaluate.os.system" starts with "fastnst." too."""
    import inspect

    from hydra._internal.utils import _locate

    if not isinstance(target, str) or not target.startswith("fastnst."):
        return False
    try:
        obj = _locate(target)
    except Exception:
        return False
    module = getattr(obj, "__module__", "") or ""
    return inspect.isclass(obj) and (module == "fastnst" or module.startswith("fastnst."))


def check_own_targets(cfg, sections, source) -> None:
    """Refuse a config (a run's config.yaml read by evaluate.py, compare_runs.py) whose `sections`
    hold a `_target_` other than one of fastnst's own classes: building it would call whatever
    the file names (os.system, ...)."""
    from omegaconf import DictConfig, ListConfig

    from fastnst.errors import FastNSTError

    def walk(node, key):
        if isinstance(node, DictConfig):
            if "_target_" in node and not is_own_class(node.get("_target_")):
                raise FastNSTError(
                    f"{source}: {key}._target_ is {node.get('_target_')!r}; only fastnst's own "
                    "classes are built from a run's config"
                )
            for k in node.keys():
                walk(node.get(k), f"{key}.{k}")
        elif isinstance(node, ListConfig):
            for i, item in enumerate(node):
                walk(item, f"{key}[{i}]")

    for section in sections:
        if section in cfg:
            walk(cfg.get(section), section)
