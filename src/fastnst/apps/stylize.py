"""`python stylize.py`: the Stylizer on image files, folders and videos (conf/inference/stylize.yaml)."""

from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fastnst import zoo
from fastnst.atomic import terminate_cleanly
from fastnst.config import is_set, required, resolve_user_path
from fastnst.errors import FastNSTError, refuse_input_as_output, refuse_to_overwrite
from fastnst.images import SAVE_FORMATS, check_output_path, find_images, save_image
from fastnst.preflight import ensure_writable
from fastnst.stylize import Stylizer


def _note(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"fastnst: {message}", file=sys.stderr)


def _default_output(src: Path) -> Path:
    if src.is_dir():
        return src.with_name(f"{src.name}_stylized")
    from fastnst.video import is_video_file

    out = src.with_name(f"{src.stem}_stylized{src.suffix}")
    # image formats we cannot write (tif, gif, ppm) become png, as in folders
    return out if is_video_file(src) else _image_output_name(out)


def _image_output_name(path: Path) -> Path:
    # formats we cannot write (tif, gif, ppm) become png
    return path if path.suffix.lower() in SAVE_FORMATS else path.with_suffix(".png")


def stylize_image_file(stylizer: Stylizer, src: Path, dst: Path, overwrite: bool = False) -> Path:
    """One image file -> one output file (`dst` checked by _check_output)."""
    return save_image(stylizer(src), dst, overwrite=overwrite)


def stylize_folder(
    stylizer: Stylizer, src: Path, dst: Path, overwrite: bool = False, progress: bool = True
) -> tuple[int, list[str]]:
    """Every image under `src` (recursively) -> the same relative path under `dst`.
    Unreadable files are reported and skipped; so are outputs that appeared while the job ran
    (another job writing into the same folder): kept, never replaced without `overwrite`.
    Returns (written, failure messages)."""
    from tqdm import tqdm

    from fastnst.errors import ImageError, OutputExistsError
    from fastnst.images import load_image
    from fastnst.memory import MemoryLimitError

    src, dst = src.resolve(), dst.resolve()
    if dst == src or src in dst.parents:
        raise FastNSTError(f"{dst}: output folder must not be the input folder or inside it")
    images = find_images(src)
    if not images:
        raise FastNSTError(f"{src}: no images found in this folder (searched recursively)")
    jobs, skipped, failures = [], 0, []
    for path in images:
        out = dst / _image_output_name(path.relative_to(src))
        link = _link_inside(dst, out)
        if link is not None:  # a planted subfolder link: never written through
            failures.append(f"{out}: not written: {link} is a symbolic link")
            _note(f"error: {failures[-1]}")
            continue
        if os.path.lexists(out) and not overwrite:
            skipped += 1
            continue
        jobs.append((path, out))
    if skipped:
        _note(f"{skipped} existing output(s) in {dst} kept (overwrite=true replaces them)")
    appeared: list[Path] = []  # outputs another job wrote meanwhile
    loaded: deque[Path] = deque()  # outputs of images read but not yet stylized, in order

    def readable():
        for path, out in jobs:
            if os.path.lexists(out) and not overwrite:  # written by another job meanwhile
                appeared.append(out)
                bar.update(1)
                continue
            try:
                image = load_image(path)
                stylizer.check_memory(*image.shape[-2:])  # too large alone: reported, skipped
            except (ImageError, MemoryLimitError) as e:
                failures.append(str(e) if isinstance(e, ImageError) else f"{path}: {e}")
                _note(f"error: {failures[-1]}")
                bar.update(1)
                continue
            loaded.append(out)
            yield image

    written = 0
    with tqdm(total=len(jobs), unit="img", disable=not progress, desc="stylize") as bar:
        # stylize_many reads ahead up to a batch; each result belongs to the oldest read image
        for result in stylizer.stylize_many(readable()):
            out = loaded.popleft()
            try:
                save_image(result, out, overwrite=overwrite)
                written += 1
            except OutputExistsError:  # appeared since it was checked: the other job's stays
                appeared.append(out)
            except ImageError as e:  # e.g. a full disk: report it, go on with the other images
                failures.append(str(e))
                _note(f"error: {e}")
            bar.update(1)
    if appeared:
        _note(
            f"{len(appeared)} output(s) appeared in {dst} while this job ran (another job?) and "
            f"were kept, not replaced (first: {appeared[0].name})"
        )
    return written, failures


def _link_inside(folder: Path, path: Path) -> Path | None:
    """The first subfolder between `folder` and the file `path` that is a symbolic link (an
    output written there would land wherever it points), else None."""
    current = folder
    for part in path.relative_to(folder).parts[:-1]:
        current = current / part
        if current.is_symlink():
            return current
    return None


def _model_argument(cfg: DictConfig):
    """model=<run dir | file> or, without it, style=<bundled style> (fastnst.zoo)."""
    if is_set(cfg, "model"):
        return zoo.resolve_model(
            cfg.model
        )  # style= then picks a style inside a multi-style network
    if not is_set(cfg, "style"):
        raise FastNSTError(
            "model=<run dir | model file> or style=<bundled style> is required "
            f"(bundled: {', '.join(zoo.bundled_styles()) or 'none'}; styles=list describes them)"
        )
    return zoo.bundled_network(str(cfg.style))


def _style_options(cfg: DictConfig) -> dict:
    """style=/mix= for a multi-style network given with model= (style= alone names a bundled network)."""
    mix = cfg.mix
    if mix is not None and not OmegaConf.is_dict(mix):
        raise FastNSTError(
            f"mix must be a mapping of style names to weights, e.g. 'mix={{starry_night: 0.7, wave: 0.3}}', "
            f"got mix={mix}"
        )
    has_model = is_set(cfg, "model")
    if mix is not None and not has_model:
        raise FastNSTError(
            "mix= blends the styles of a multi-style network: pass model=<run dir | file> too"
        )
    style = cfg.style if has_model else None
    return {
        "style": None if style is None else str(style),
        "mix": None if mix is None else OmegaConf.to_container(mix, resolve=True),
    }


def stylize_cli(cfg: DictConfig) -> None:
    """`python stylize.py model=... input=... output=...` (image, folder or video)."""
    from fastnst.video import check_temporal, is_video_file, stylize_video

    if cfg.styles is not None:
        if str(cfg.styles) != "list":
            raise FastNSTError(f"styles=list prints the bundled networks, got styles={cfg.styles}")
        print(zoo.listing())
        return
    style_options = _style_options(cfg)
    model = _model_argument(cfg)
    temporal = check_temporal(cfg.temporal, cfg.temporal_strength)
    src = resolve_user_path(required(cfg, "input", "(an image, a folder or a video)"))
    if not src.exists():
        raise FastNSTError(f"{src}: input not found")
    if temporal[0] and not is_video_file(src):
        raise FastNSTError(
            f"{src}: temporal={temporal[0]} smooths videos (.mp4, .webm, ...), not images or folders"
        )
    dst = resolve_user_path(cfg.output) if is_set(cfg, "output") else _default_output(src)
    overwrite = bool(cfg.overwrite)
    dst = _check_output(src, dst, str(cfg.output or "").endswith(("/", os.sep)), overwrite)
    stylizer = Stylizer.load(
        model,
        device=str(cfg.device),
        backend=str(cfg.backend),
        precision=str(cfg.precision),
        compile=bool(cfg.compile),
        trust_model_file=bool(cfg.trust_model_file),
        size=cfg.size,
        preserve_color=bool(cfg.preserve_color),
        strength=float(cfg.strength),
        tile=cfg.tile,
        max_memory_gb=cfg.max_memory_gb,
        stroke_scale=cfg.stroke_scale,
        batch_size=int(cfg.batch_size),
        **style_options,
    )
    # SIGTERM: no hidden temp file left behind; a folder job's finished outputs stay
    with terminate_cleanly("outputs already written are kept; run again to finish"):
        if src.is_dir():
            written, failures = stylize_folder(stylizer, src, dst, overwrite=overwrite)
            print(f"wrote {written} image(s) to {dst}")
            if failures:
                raise FastNSTError(
                    f"{len(failures)} of {written + len(failures)} image(s) failed "
                    f"(first: {failures[0]})"
                )
        elif is_video_file(src):
            frames = stylize_video(
                stylizer,
                src,
                dst,
                overwrite=overwrite,
                temporal=temporal[0],
                temporal_strength=temporal[1],
            )
            print(f"wrote {dst} ({frames} frames)")
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            print(f"wrote {stylize_image_file(stylizer, src, dst, overwrite=overwrite)}")


def _check_output(src: Path, dst: Path, into_folder: bool, overwrite: bool) -> Path:
    """Before the network loads: the output can be written, and a single output (an image or a
    video) is not there yet unless overwrite=true (a folder job keeps existing outputs and fills
    in the rest). Returns the output file (`output=<folder>/` holds <name>_stylized.<ext>)."""
    from fastnst.video import is_video_file

    if src.is_dir():
        ensure_writable(dst, "output folder", folder=True)
        return dst
    if into_folder:  # output=<folder>/: <folder>/<name>_stylized.<ext>
        dst = dst / _default_output(src).name
    elif dst.is_dir() and not is_video_file(src):  # an existing folder: the photo's own name in it
        dst = dst / _image_output_name(Path(src.name))
    refuse_input_as_output(dst, src, "input file")
    if not is_video_file(src):
        check_output_path(dst, overwrite)  # a known image extension
    refuse_to_overwrite(dst, overwrite)
    ensure_writable(dst)
    return dst
