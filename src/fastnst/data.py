"""Training photos for the feed-forward network: one LightningDataModule for three folder layouts.

- ``imagenet``: Kaggle imagenetmini-1000, ``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/<wnid>/*.JPEG``.
- ``flat``: one folder of images (e.g. video frames 268.jpg, 269.jpg ...); validation is a fixed
  seeded split.
- ``folder``: any folder, searched recursively; validation is a fixed seeded split.

Batches are ``{"image": (B, 3, S, S) float in [0, 1], "skipped": LongTensor scalar}``. A file that
cannot be decoded is warned about once (``UserWarning`` naming it) and dropped from its batch;
"skipped" counts the dropped files. If every file of a batch fails, the batch is empty
(``image.shape[0] == 0``): the LightningModule should skip it (return None from training_step).

CPU side (Dataset, in the workers): decode, resize the shorter side, crop. GPU side
(``on_after_batch_transfer``, training only): kornia random resized crop + horizontal flip.

``cache=True`` decodes every training image once into a uint8 memory-mapped array (see
DecodedCache) that later runs with the same files and sizes reuse; the random crops are then
cut from that array, exactly as they would be from the decoded files.

Under DDP each rank reads its share of every global batch (EpochSampler with rank/world), so
W ranks of batch B see exactly the images one process of batch W*B would see.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import kornia.augmentation as K
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fastnst.atomic import atomic_path, write_json
from fastnst.config import resolve_user_path
from fastnst.errors import FastNSTError, ImageError
from fastnst.images import center_square, find_images, is_image_file, open_rgb, pil_to_tensor

LAYOUTS = {
    "imagenet": "<root>/train/<class>/*.JPEG and <root>/val/<class>/*.JPEG (Kaggle imagenetmini-1000 layout)",
    "flat": "image files directly in <root> (e.g. frames 268.jpg, 269.jpg ...)",
    "folder": "image files anywhere under <root> (searched recursively)",
}

# Training images get their shorter side resized to this much above image_size, so the random
# crop has some room to move (and the GPU random resized crop sees a bit more context).
TRAIN_RESIZE_MARGIN = 1.15

# Training crops smaller than this fail in the transformer's reflection padding (it needs a few
# pixels per stage) and are padded anyway for the VGG's four poolings: a clear error instead.
MIN_IMAGE_SIZE = 16


def _seeded_rank(paths: Sequence[Path], root: Path, seed: int) -> list[Path]:
    """Paths ordered by a hash of (seed, relative path): a fixed pseudo-random order per file,
    so adding a file does not reshuffle which of the others land in the validation split."""

    def key(p: Path) -> str:
        return hashlib.sha1(f"{seed}:{p.relative_to(root).as_posix()}".encode()).hexdigest()

    return sorted(paths, key=key)


def split_train_val(paths: Sequence[Path], root: Path, fraction: float, seed: int):
    """Fixed seeded split -> (train, val), both sorted. At least one image of each when n >= 2
    and fraction > 0; val is empty when fraction == 0."""
    n = len(paths)
    n_val = round(n * fraction)
    if fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    ranked = _seeded_rank(paths, root, seed)
    return sorted(ranked[n_val:]), sorted(ranked[:n_val])


def spread_subset(paths: Sequence[Path], k: int | None) -> list[Path]:
    """k paths evenly spaced over a sorted list (spread over classes, deterministic)."""
    if k is None or k >= len(paths):
        return list(paths)
    return [paths[i * len(paths) // k] for i in range(k)]


def train_record_size(image_size: int) -> int:
    """Side of the square each training image is reduced to before its random crop."""
    return round(image_size * TRAIN_RESIZE_MARGIN)


def decode_train_record(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """One training image as the (M, M, 3) uint8 square the random crops are cut from: shorter
    side resized to M = round(1.15 S), then center-cropped. Both the direct path and the decoded
    cache use this, so they give identical crops. Raises ImageError naming the file."""
    m = train_record_size(image_size)
    return np.asarray(center_square(open_rgb(path), m), dtype=np.uint8)


def random_crop(record: np.ndarray, image_size: int, seed: int, code: int) -> torch.Tensor:
    """The S x S crop of a (M, M, 3) record for item `code`, from an RNG seeded by (seed, code)."""
    s = image_size
    rng = np.random.default_rng([seed, code])
    m_h, m_w = record.shape[:2]
    left, top = int(rng.integers(0, m_w - s + 1)), int(rng.integers(0, m_h - s + 1))
    crop = np.ascontiguousarray(record[top : top + s, left : left + s])
    return torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0)


class DecodedCache:
    """Training images decoded once: an (N, M, M, 3) uint8 .npy file, memory-mapped.

    The file name is a hash of the file list (paths, sizes, mtimes), the image size and the
    margin, so a later run with the same settings reuses it and any change builds a new one.
    A sidecar JSON records which files could not be decoded (their records are zeros and are
    skipped, like unreadable files on the direct path). Writes are atomic (temp + rename), so
    a killed build never leaves a half file that looks complete.
    """

    VERSION = 1

    def __init__(self, paths: Sequence[str], image_size: int, cache_dir: str | os.PathLike):
        self.paths = [str(p) for p in paths]
        self.image_size = int(image_size)
        self.record = train_record_size(self.image_size)
        self.dir = Path(cache_dir).expanduser().resolve()
        self.key = self._key()
        self.array_path = self.dir / f"{self.key}.npy"
        self.meta_path = self.dir / f"{self.key}.json"

    def _key(self) -> str:
        h = hashlib.sha1()
        h.update(
            json.dumps([self.VERSION, self.image_size, TRAIN_RESIZE_MARGIN, self.record]).encode()
        )
        for p in self.paths:
            try:
                st = os.stat(p)
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{p}\0missing\n".encode())
        return h.hexdigest()[:20]

    @property
    def exists(self) -> bool:
        return self.meta_path.is_file() and self.array_path.is_file()

    def build(self, workers: int | None = None) -> list[str]:
        """Decode every file into the array (threads: Pillow releases the GIL while decoding);
        returns the unreadable files' messages. A no-op when the cache already exists."""
        if self.exists:
            return self.load_meta()["errors"]
        self.dir.mkdir(parents=True, exist_ok=True)
        m, n = self.record, len(self.paths)
        ok = np.ones(n, dtype=bool)
        errors: list[str] = []
        with atomic_path(
            self.array_path
        ) as tmp:  # a killed build leaves no half-filled array behind
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, m, m, 3))

            def fill(i: int) -> str | None:
                try:
                    array[i] = decode_train_record(self.paths[i], self.image_size)
                    return None
                except ImageError as e:
                    ok[i] = False
                    return str(e)

            with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
                for message in pool.map(fill, range(n)):
                    if message is not None:
                        errors.append(message)
                        warnings.warn(
                            f"skipping unreadable training image: {message}", stacklevel=2
                        )
            array.flush()
        meta = {
            "version": self.VERSION,
            "image_size": self.image_size,
            "record": m,
            "paths": self.paths,
            "ok": ok.tolist(),
            "errors": errors,
        }
        write_json(self.meta_path, meta)  # last: its presence marks a complete cache
        return errors

    def load_meta(self) -> dict:
        return json.loads(self.meta_path.read_text())


class ImageFiles(Dataset):
    """Image files -> (3, S, S) tensors, or None for a file that cannot be decoded.

    train=True: the (M, M) square of decode_train_record (M = 1.15 S), then a random S x S crop.
    The crop is drawn from an RNG seeded by (seed, item code) -- see EpochSampler -- so it does
    not depend on worker processes or on what ran before: a resumed run sees exactly the same
    crops. With a DecodedCache the squares come from its memory-mapped array instead of the files.
    train=False: resize to S and center crop.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        image_size: int,
        train: bool,
        seed: int = 0,
        cache: DecodedCache | None = None,
    ):
        self.paths = [str(p) for p in paths]
        self.image_size = image_size
        self.train = train
        self.seed = seed
        self.cache = cache
        self._records: np.ndarray | None = None  # opened lazily in each worker process
        self._ok: np.ndarray | None = None
        # One flag per file in shared memory, so each bad file is warned about once in total,
        # not once per worker process or per epoch.
        self.warned = torch.zeros(len(self.paths), dtype=torch.uint8).share_memory_()

    def __getstate__(self):
        # never pickle the memory map into worker processes (that would copy the whole array)
        return {**self.__dict__, "_records": None, "_ok": None}

    def __len__(self) -> int:
        return len(self.paths)

    def _cached_record(self, index: int) -> np.ndarray | None:
        if self._records is None:
            self._records = np.load(self.cache.array_path, mmap_mode="r")
            self._ok = np.asarray(self.cache.load_meta()["ok"], dtype=bool)
        return self._records[index] if self._ok[index] else None

    def load(self, code: int) -> torch.Tensor:
        """Decode and crop one file (item code = epoch * len + index); raises ImageError naming it."""
        s = self.image_size
        index = code % len(self.paths)
        if self.train:
            if self.cache is not None:
                record = self._cached_record(index)
                if record is None:  # warned about when the cache was built
                    raise _CachedFailure(self.paths[index])
            else:
                record = decode_train_record(self.paths[index], s)
            return random_crop(record, s, self.seed, code)
        return pil_to_tensor(center_square(open_rgb(self.paths[index]), s))[0]

    def __getitem__(self, code: int) -> torch.Tensor | None:
        try:
            return self.load(code)
        except _CachedFailure:
            return None
        except ImageError as e:
            index = code % len(self.paths)
            if not self.warned[index]:
                self.warned[index] = 1
                warnings.warn(f"skipping unreadable training image: {e}", stacklevel=1)
            return None


class _CachedFailure(Exception):
    """A file the cache build could not decode (already warned about then)."""


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch (Lightning calls set_epoch), yielding item codes
    epoch * n + index so the dataset can seed each crop by (epoch, index).

    `skip_batches` makes the next epoch start that many batches in: a run resumed from a
    mid-epoch checkpoint then continues with exactly the batches the killed run would have seen.

    Under DDP (`world` > 1) every rank computes the same permutation and takes every world-th
    item from position `rank`: batch b of the W ranks together holds exactly batch b of a single
    process with batch size W * batch_size (so the global batch does not depend on W).
    """

    def __init__(self, n: int, seed: int, batch_size: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.batch_size = n, seed, batch_size
        self.rank, self.world = int(rank), int(world)
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        )
        order = torch.randperm(self.n, generator=generator).tolist()
        start, self.skip_batches = self.skip_batches * self.batch_size * self.world, 0
        # equal length on every rank (DDP ranks must run the same number of steps)
        per_rank = (self.n - start) // self.world
        for index in order[start + self.rank :: self.world][:per_rank]:
            yield self.epoch * self.n + index


def collate_images(samples: list[torch.Tensor | None], image_size: int) -> dict[str, torch.Tensor]:
    """Stack the decoded images, drop failed ones and count them in "skipped".
    If every file failed the batch is empty: image of shape (0, 3, S, S)."""
    images = [s for s in samples if s is not None]
    skipped = torch.tensor(len(samples) - len(images), dtype=torch.long)
    if not images:
        return {"image": torch.empty(0, 3, image_size, image_size), "skipped": skipped}
    return {"image": torch.stack(images), "skipped": skipped}


class StyleDataModule(pl.LightningDataModule):
    """Content photos for training a style network. Constructor args = conf/data/*.yaml keys."""

    def __init__(
        self,
        root: str,
        layout: str = "folder",
        name: str = "images",
        image_size: int = 256,
        batch_size: int = 4,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        val_size: int | None = 16,
        split_seed: int = 0,
        augment: bool = True,
        scale: Sequence[float] = (0.5, 1.0),
        max_train_images: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        cache: bool = False,
        cache_dir: str | None = None,
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise FastNSTError(
                f"data.layout={layout!r}: unknown layout (use one of {', '.join(LAYOUTS)})"
            )
        scale = tuple(float(v) for v in scale)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise FastNSTError(
                f"data.scale={list(scale)}: expected [low, high] with 0 < low <= high <= 1"
            )
        if not 0 <= val_fraction < 1:
            raise FastNSTError(f"data.val_fraction={val_fraction}: expected a fraction in [0, 1)")
        if image_size < MIN_IMAGE_SIZE:
            raise FastNSTError(
                f"data.image_size={image_size}: must be at least {MIN_IMAGE_SIZE} "
                "(the network's padding and the VGG's poolings need that many pixels)"
            )
        if batch_size < 1:
            raise FastNSTError(f"data.batch_size={batch_size}: must be at least 1")
        self.root = root
        self.layout = layout
        self.name = name
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.val_fraction = float(val_fraction)
        self.val_size = val_size
        self.split_seed = int(split_seed)
        self.augment = bool(augment)
        self.scale = scale
        self.max_train_images = max_train_images
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.cache = bool(cache)
        if self.cache and not cache_dir:
            raise FastNSTError(
                "data.cache=true needs data.cache_dir (a folder for the decoded images)"
            )
        self.cache_dir = cache_dir
        # Plain modules with no parameters; randomness comes from the global torch RNG, so the
        # crops are reproducible under seed_everything.
        self.gpu_augment = torch.nn.Sequential(
            K.RandomResizedCrop((self.image_size, self.image_size), scale=scale),
            K.RandomHorizontalFlip(),
        )
        self._restored_seed: int | None = None  # from a checkpoint (load_state_dict)
        self.train_set: ImageFiles | None = None
        self.val_set: ImageFiles | None = None

    # ---- discovery -------------------------------------------------------------------------

    def _no_images(self, folder: Path, problem: str) -> FastNSTError:
        return FastNSTError(f"{folder}: {problem}; expected {LAYOUTS[self.layout]}")

    def discover(self) -> tuple[list[Path], list[Path]]:
        """(train, val) file lists for the layout, before capping. Raises FastNSTError."""
        root = resolve_user_path(self.root)
        if not root.is_dir():
            raise self._no_images(
                root, "data folder not found" if not root.exists() else "not a folder"
            )
        if self.layout == "imagenet":
            found = {
                s: find_images(root / s) if (root / s).is_dir() else [] for s in ("train", "val")
            }
            missing = [s for s, paths in found.items() if not paths]
            if missing:
                raise self._no_images(root, f"no images found in {' and '.join(missing)}")
            return found["train"], found["val"]
        if self.layout == "flat":
            # Same rule as find_images, one level only: hidden files (editor/OS droppings) skipped.
            paths = sorted(
                p
                for p in root.iterdir()
                if p.is_file() and is_image_file(p) and not p.name.startswith(".")
            )
        else:
            paths = find_images(root)
        if not paths:
            raise self._no_images(root, "no images found")
        return split_train_val(paths, root, self.val_fraction, self.split_seed)

    def train_val_paths(self) -> tuple[list[Path], list[Path]]:
        """(train, val) file lists after capping; raises FastNSTError."""
        train, val = self.discover()
        if self.max_train_images is not None and self.max_train_images < len(train):
            # A seeded subset, not the first N sorted names (that would be only the first classes).
            root = resolve_user_path(self.root)
            train = sorted(_seeded_rank(train, root, self.split_seed)[: self.max_train_images])
        if len(train) < self.batch_size:
            raise FastNSTError(
                f"{resolve_user_path(self.root)}: only {len(train)} training images, "
                f"fewer than data.batch_size={self.batch_size}"
            )
        return train, val

    def decoded_cache(self, train: Sequence[Path]) -> DecodedCache:
        return DecodedCache(train, self.image_size, resolve_user_path(self.cache_dir))

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: the cache is built once,
        # not by every DDP rank at the same time.
        if self.cache:
            self.decoded_cache(self.train_val_paths()[0]).build()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return  # Lightning calls setup once per stage; the file lists never change.
        train, val = self.train_val_paths()
        cache = None
        if self.cache:
            cache = self.decoded_cache(train)
            errors = cache.build()  # reuses an existing cache (no decoding)
            if errors:
                warnings.warn(
                    f"{len(errors)} unreadable training image(s) left out of the decoded cache "
                    f"{cache.array_path} (listed in {cache.meta_path.name})",
                    stacklevel=2,
                )
        self.train_set = ImageFiles(
            train, self.image_size, train=True, seed=self.data_seed(), cache=cache
        )
        self.val_set = ImageFiles(spread_subset(val, self.val_size), self.image_size, train=False)

    @staticmethod
    def data_seed() -> int:
        """The run's seed (seed_everything sets PL_GLOBAL_SEED), else a fresh random one."""
        value = os.environ.get("PL_GLOBAL_SEED")
        return int(value) if value is not None else int(torch.randint(0, 2**31 - 1, ()).item())

    def _require_setup(self) -> tuple[ImageFiles, ImageFiles]:
        if self.train_set is None or self.val_set is None:
            raise RuntimeError("StyleDataModule: call setup() first")
        return self.train_set, self.val_set

    @property
    def num_train(self) -> int:
        return len(self._require_setup()[0])

    @property
    def num_val(self) -> int:
        return len(self._require_setup()[1])

    # ---- loaders ---------------------------------------------------------------------------

    def _loader(self, dataset: ImageFiles, train: bool) -> DataLoader:
        sampler = None
        if train:
            dataset.seed = self._shared_seed(dataset.seed)
            rank, world = self._rank_and_world()
            sampler = EpochSampler(
                len(dataset), dataset.seed, self.batch_size, rank=rank, world=world
            )
            sampler.skip_batches = self._batches_done_this_epoch()
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            collate_fn=partial(collate_images, image_size=self.image_size),
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def _shared_seed(self, drawn: int) -> int:
        """The data seed when the loader is made: the one a resumed checkpoint stored (see
        state_dict), else the run's seed if seed_everything was called (also after setup), else
        the one drawn at setup -- rank zero's under DDP, since every rank must shuffle the same
        way for the ranks to split each global batch."""
        value = os.environ.get("PL_GLOBAL_SEED")
        seed = int(value) if value is not None else drawn
        if self._restored_seed is not None:
            seed = self._restored_seed
        trainer = self.trainer
        if trainer is not None and getattr(trainer, "world_size", 1) > 1:
            seed = int(trainer.strategy.broadcast(seed, src=0))
        return seed

    # The data seed travels in the checkpoint: with `seed: null` a resumed run draws a new one,
    # and would then crop and shuffle differently from the run it continues.
    def state_dict(self) -> dict:
        return {"data_seed": self.train_set.seed} if self.train_set is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("data_seed") is not None:
            self._restored_seed = int(state_dict["data_seed"])
            if self.train_set is not None:
                self.train_set.seed = self._restored_seed

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))

    def _batches_done_this_epoch(self) -> int:
        """Batches of the current epoch already trained on when resuming (0 on a fresh run)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        # "processed", not "completed": a checkpoint written in on_train_batch_end has not yet
        # counted its last batch as completed
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        per_epoch = len(self._require_setup()[0]) // (self.batch_size * self._rank_and_world()[1])
        return done if 0 < done < per_epoch else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._require_setup()[0], train=True)

    def val_dataloader(self) -> DataLoader | list:
        val = self._require_setup()[1]
        return self._loader(val, train=False) if len(val) else []

    def val_images(self, n: int) -> torch.Tensor:
        """The first n validation photos (fewer if the split is smaller) as (n, 3, S, S), for
        image grids. Unreadable files are skipped (with the usual one warning)."""
        val = self._require_setup()[1]
        images = [t for t in (val[i] for i in range(min(n, len(val)))) if t is not None]
        if not images:
            return torch.empty(0, 3, self.image_size, self.image_size)
        return torch.stack(images)

    # ---- device-side augmentation ----------------------------------------------------------

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = self.trainer
        if not (self.augment and trainer is not None and trainer.training):
            return batch
        images = batch["image"]
        if images.shape[0] == 0:
            return batch
        # Seeded by (seed, step, rank) rather than drawn from the global RNG: a resumed run
        # augments its next batches exactly as the uninterrupted run would have, and DDP ranks
        # draw different crops.
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            step, rank = getattr(trainer, "global_step", 0), getattr(trainer, "global_rank", 0)
            torch.manual_seed(self.train_set.seed * 1_000_003 + step + 7_919 * rank)
            augmented = self.gpu_augment.to(images.device)(images).clamp_(0, 1)
        return {**batch, "image": augmented}
