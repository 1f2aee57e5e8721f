"""Eager PyTorch runner: the zoo model itself, the baseline every artifact is compared with."""

from __future__ import annotations

import numpy as np

from .runner import Runner


class EagerTorchRunner(Runner):
    """Builds ``model`` from the zoo on ``activate`` and runs it under ``inference_mode``.

    ``threads`` > 0 sets ``torch.set_num_threads`` (intra-op threads).
    """

    name = "pytorch"

    def __init__(self, model: str, resolution: int, threads: int = 0, num_classes: int | None = None):
        self.model_name = model
        self.resolution = resolution
        self.threads = threads
        self.num_classes = num_classes
        self.module = None

    def activate(self) -> None:
        import torch

        from mobexport.models import create_model

        if self.threads > 0:
            torch.set_num_threads(self.threads)
        self.module = create_model(self.model_name, num_classes=self.num_classes, resolution=self.resolution).eval()

    def deactivate(self) -> None:
        self.module = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        if self.module is None:
            self.activate()
        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def open(path, manifest: dict | None = None, device: str = "cpu"):
    from mobexport.errors import DeviceError

    raise DeviceError("eager PyTorch has no artifact file to open", "build an EagerTorchRunner from the zoo model")
