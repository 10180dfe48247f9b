#!/usr/bin/env bash
# CI: build the wheel, install it into a new venv (no repo on its path) and run one command of
# each fastnst-* entry point from an empty folder: configs, paintings and networks must come from
# the package alone, and outputs must land under the current folder.
# Needs FASTNST_DATA (photos are copied from it; the commands themselves run without it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=${FASTNST_DATA:?set FASTNST_DATA to the data folder (content/, imagenet-mini/)}
work=$(mktemp -d "${TMPDIR:-/tmp}/fastnst-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
current="setup"
trap 'echo "wheel check: FAILED at: $current" >&2' ERR
step() { current=$*; printf '== %s (%ds)\n' "$*" $((SECONDS - start)); }
fail() { echo "wheel check: FAILED: $*" >&2; exit 1; }
expect() { [ -e "$1" ] || fail "$current: $1 was not written"; }

step "build the wheel"
# from a copy of the tracked and not-ignored files: a build in the tree would leave build/ there
mkdir "$work/src"
(cd "$repo" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) |
  tar -xf - -C "$work/src"
"$repo/.venv/bin/python" -m pip wheel --no-deps -q -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/fastnst-*.whl)

step "install $(basename "$wheel") into a new venv"
# the same pip configuration (index, cache) as make install; --no-compile: imports compile lazily
"${PY:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-compile "$wheel"

step "run from an empty folder"
mkdir -p "$work/empty/photos"
cd "$work/empty"
cp "$data/content/chicago.jpg" photo.jpg
find "$data/imagenet-mini/val" -name '*.JPEG' | sort | sed -n '1,10p' | xargs -I{} cp {} photos/  # sed reads to the end: head would SIGPIPE sort (exit 141 under pipefail)
export PATH="$work/venv/bin:$PATH"
unset FASTNST_DATA PYTHONPATH
where=$(python -c 'import fastnst, os; print(os.path.realpath(fastnst.__file__))')
case $where in "$work/venv/"*) ;; *) fail "fastnst imported from $where, not the new venv" ;; esac

step "fastnst-stylize"
fastnst-stylize style=the_scream input=photo.jpg
expect photo_stylized.jpg
fastnst-stylize style=udnie input=photo.jpg output=photo_udnie.jpg
expect photo_udnie.jpg
fastnst-stylize model=six_styles "mix={udnie: 0.5, wave: 0.5}" input=photo.jpg output=photo_blend.jpg
expect photo_blend.jpg

step "fastnst-train"
fastnst-train experiment=cpu_quick style=wave trainer.max_steps=5 data=folder data.root=photos
model=$(ls outputs/wave/folder/*/*/model.pt | head -n 1)
expect "$model"
run=$(dirname "$model")

step "fastnst-gatys"
fastnst-gatys style=wave content=photo.jpg output=gatys.png size=64 iterations=5 progress=false
expect gatys.png

step "fastnst-export"
fastnst-export model="$model" format=torchscript output=model.ts
expect model.ts

step "fastnst-evaluate"
fastnst-evaluate run="$run" photos=photos num_photos=2 size=64 gatys_iterations=2
expect "$run/eval.json"
expect outputs/.cache/gatys

step "fastnst-app"
# the web app itself needs the [app] extra (Gradio); its composed config must load from the package
fastnst-app --cfg job | grep -q '^port: ' || fail "fastnst-app --cfg job printed no port:"

step "nothing written outside the folder"
found=$(find "$work/venv" -type d -name outputs | head -n 3)
[ -z "$found" ] || fail "written into the venv: $found"

echo "wheel check: passed in $((SECONDS - start)) s"
