"""The structure the code promises (docs/development.md "Layout"): imports flow one way, each
concept lives in one module, every default is stated once, and the docs name what exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "fastnst"


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(SRC).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """fastnst modules `path` imports, at module level or inside functions (a lazy import is
    still a dependency)."""
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "fastnst"
        ):
            for (
                alias
            ) in node.names:  # `from fastnst import zoo` depends on fastnst.zoo, not on the package
                sub = f"{node.module}.{alias.name}"
                deps.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.split(".")[0] == "fastnst")
    return {d for d in deps if d in MODULES and d != "fastnst"} - {module_name(path)}


GRAPH = {name: imports_of(path) for name, path in MODULES.items() if name != "fastnst"}


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name):
        state[name] = 1
        stack.append(name)
        for dep in sorted(GRAPH.get(name, ())):
            if state.get(dep) == 1:
                found.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_entry_point_glue_is_imported_only_from_above():
    """fastnst.apps (CLIs, the web app) and fastnst.cli sit on top: no library module imports them."""
    for name, deps in GRAPH.items():
        if name == "fastnst.cli" or name.startswith("fastnst.apps"):
            continue
        upward = {d for d in deps if d == "fastnst.cli" or d.startswith("fastnst.apps")}
        assert not upward, f"{name} imports the entry-point glue {upward}"


def test_network_files_are_known_in_one_place():
    """Stylizer.load hands a model argument to runners.open_network, which asks formats what the
    file holds and returns the runner. formats and runners depend only downward; export.py only
    writes; artifacts is a re-export shim for older imports."""
    from fastnst import artifacts, runners, stylize

    assert "fastnst.runners" in GRAPH["fastnst.stylize"]
    for name in ("fastnst.formats", "fastnst.runners"):
        assert not GRAPH[name] & {
            "fastnst.stylize",
            "fastnst.train",
            "fastnst.module",
            "fastnst.artifacts",
        }
    assert "fastnst.runners" not in GRAPH["fastnst.export"]
    assert "open_network(" in Path(stylize.__file__).read_text()
    for runner in ("TorchRunner", "OnnxRunner", "ScriptRunner"):
        assert getattr(artifacts, runner) is getattr(runners, runner)
        for name, path in MODULES.items():  # defined once
            if name != "fastnst.runners":
                assert f"class {runner}" not in path.read_text(), f"{name} defines {runner} again"
    export_source = (PACKAGE / "export.py").read_text()
    assert (
        "torch.load(" not in export_source and "def load_network" not in export_source
    )  # export.py only writes
    for name, path in MODULES.items():  # only formats reads network files
        if name not in ("fastnst.formats", "fastnst.zoo", "fastnst.export"):
            source = path.read_text()
            assert "torch.jit.load(" not in source, f"{name} calls torch.jit.load"


# the modules that may call torch.load / torch.jit.load, and what they read with it
LOADERS = {
    "fastnst.formats": "network files of every kind (the one reader)",
    "fastnst.export": "the TorchScript file it has just written (its parity check)",
    "fastnst.vgg": "the VGG weights of the loss network (not a network file of fastnst)",
    "fastnst.callbacks": "the running training's own last checkpoint (divergence rollback)",
}


def test_only_the_format_module_reads_network_files():
    """Every other module (the zoo's listing, the runners, the CLIs, the scripts' library code)
    asks fastnst.formats; a new torch.load elsewhere is a second reader to keep safe."""
    offenders = []
    for name, path in MODULES.items():
        source = re.sub(r"(?m)^\s*#.*$", "", path.read_text())
        source = re.sub(r'"""[\s\S]*?"""', "", source)  # docstrings may name the calls
        if name not in LOADERS and re.search(r"torch\.(jit\.)?load\(", source):
            offenders.append(name)
    assert not offenders, f"read network files outside fastnst.formats: {offenders}"
    assert "torch.load(" not in (PACKAGE / "zoo" / "__init__.py").read_text()


def test_no_test_imports_a_script():
    """Tests import the package (a script's logic lives there) or run a script as a program."""
    scripts = {p.stem for p in (REPO / "scripts").rglob("*.py")}
    offenders = []
    for path in sorted((REPO / "tests").glob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module.split(".")[0]]
            else:
                continue
            offenders += [f"{path.name} imports {n}" for n in names if n in scripts]
        if re.search(r"spec_from_file_location\([^)]*scripts", text, re.S):
            offenders.append(f"{path.name} loads a script as a module")
    assert not offenders, offenders


def _yaml_keys() -> set[str]:
    keys: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(str(k))
                walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in (REPO / "conf").rglob("*.yaml"):
        walk(yaml.safe_load(path.read_text()) or {})
    return keys


CONFIG_RECEIVER = r"\b(cfg|config|trainer_cfg|\w+_cfg|hparams(?:\.\w+)?)"
# cfg.get("key", <default>) and cfg.get("key") or <default>: both state a default in code
CONFIG_GETS = (
    re.compile(CONFIG_RECEIVER + r"\.get\(\s*[\"'](\w+)[\"']\s*,\s*([^)]+)\)"),
    re.compile(CONFIG_RECEIVER + r"\.get\(\s*[\"'](\w+)[\"']\s*\)\s+or\s+([^\s,)]+)"),
)


def test_no_config_default_written_twice():
    """`cfg.get("key", <default>)` or `cfg.get("key") or <default>` for a key a YAML file
    defines states its default a second time (and the two drift apart): the YAML is the one
    place, code reads `cfg.key`. The library and the scripts alike."""
    keys = _yaml_keys()
    offenders = []
    for path in [*MODULES.values(), *sorted((REPO / "scripts").rglob("*.py"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pattern in CONFIG_GETS:
                for match in pattern.finditer(line):
                    if match.group(2) in keys:
                        offenders.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    assert not offenders, "\n".join(offenders)


def test_the_default_check_catches_both_idioms():
    lines = ['x = cfg.get("max_steps", 5)', 'y = trainer_cfg.get("max_steps") or -1']
    assert all(any(p.search(line) for p in CONFIG_GETS) for line in lines)
    assert not any(p.search('cfg.get("max_steps")') for p in CONFIG_GETS)


def test_stylizer_defaults_match_the_stylize_config():
    """The Python API and `python stylize.py` default alike (conf/inference/stylize.yaml)."""
    import inspect

    from fastnst.stylize import Stylizer

    cfg = yaml.safe_load((REPO / "conf" / "inference" / "stylize.yaml").read_text())
    params = {
        **inspect.signature(Stylizer.__init__).parameters,
        **inspect.signature(Stylizer.load).parameters,
    }
    shared = [k for k in cfg if k in params and params[k].default is not inspect.Parameter.empty]
    assert {"batch_size", "strength", "size", "tile", "device", "backend", "precision"} <= set(
        shared
    )
    for key in shared:
        assert params[key].default == cfg[key], (
            f"{key}: Stylizer says {params[key].default!r}, the YAML {cfg[key]!r}"
        )


def _layout_block() -> str:
    page = (REPO / "docs" / "development.md").read_text()
    return page.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_readme_layout_lists_every_module():
    layout = _layout_block()
    missing = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py" and rel.parent == Path("."):
            continue
        shown = rel.parent.as_posix() + "/" if rel.name == "__init__.py" else rel.name
        if not re.search(rf"(?<![\w.]){re.escape(shown)}", layout):
            missing.append(rel.as_posix())
    assert not missing, f"docs/development.md Layout does not list: {missing}"


FILE_REFERENCE = re.compile(
    r"(?<![\w./-])((?:scripts|tests|conf|docs|src)/[\w./-]*\w\.(?:py|yaml|md|sh))"
)


@pytest.mark.parametrize("root", ["src", "scripts", "conf"])
def test_docs_cite_files_that_exist(root):
    missing = []
    for path in (REPO / root).rglob("*"):
        if path.suffix not in (".py", ".yaml", ".sh") or "__pycache__" in path.parts:
            continue
        for cited in FILE_REFERENCE.findall(path.read_text()):
            if not (REPO / cited).exists():
                missing.append(f"{path.relative_to(REPO)} cites {cited}")
    assert not missing, "\n".join(missing)


def test_cpu_fast_paths_are_opt_in():
    """fastnst.accel is opted into by the runners and the Lightning module; the network itself
    is plain PyTorch and never reaches for a fast path."""
    assert not {d for d in GRAPH["fastnst.transformer"] if d.startswith("fastnst.accel")}
    transformer_source = (PACKAGE / "transformer.py").read_text()
    assert "fastconv" not in transformer_source and "fused" not in transformer_source
    for name, deps in GRAPH.items():
        if name.startswith("fastnst.accel"):
            assert not deps & {
                "fastnst.stylize",
                "fastnst.tiling",
                "fastnst.export",
                "fastnst.module",
                "fastnst.artifacts",
                "fastnst.runners",
                "fastnst.formats",
            }, f"{name} imports {deps}"
    assert (
        "accel" in (PACKAGE / "runners.py").read_text()
        and "accel" in (PACKAGE / "module.py").read_text()
    )


def test_inference_and_gatys_do_not_load_lightning():
    """Lightning is for training: loading it costs the Gatys CLI and the Stylizer start-up time and
    ~100 MB of memory (bench_gatys' peak RSS grew 14% when an import chain pulled it in)."""
    import subprocess
    import sys

    code = (
        "import sys, fastnst.apps.gatys, fastnst.apps.stylize, fastnst.apps.export, fastnst.stylize; "
        "print(sorted(m for m in ('pytorch_lightning', 'lightning_fabric') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
