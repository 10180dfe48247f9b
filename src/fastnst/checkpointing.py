"""Lightning checkpoints that survive kills: written by atomic.atomic_torch_save (temp file,
fsync, rename)."""

from __future__ import annotations

from pytorch_lightning.plugins.io import TorchCheckpointIO

from fastnst.atomic import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with temp-file + rename writes."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)
