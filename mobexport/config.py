"""What one export asks for, as the CLI and the Python API both give it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobexport.errors import InvalidOptionError
from mobexport.shapes import Resolution, SizeRange, parse_channel_triple, parse_input_shape

DEFAULT_OUT_DIR = Path("mobexport-out")


@dataclass
class ExportConfig:
    """One export: model + target + options. ``None`` means "the target's default"."""

    model: str  # a zoo name, package.module:factory, path/to/file.py:factory or prog.pt2
    target: str
    resolution: int | str | Resolution | None = None  # 224 or "256x320"
    checkpoint: Path | None = None
    trust_checkpoint: bool = False
    num_classes: int | None = None
    out_dir: Path = DEFAULT_OUT_DIR
    dynamic: bool | None = None
    passes: str = "default"
    explain: bool = False
    verify_passes: bool = False
    quantize: str = "none"
    calib_dir: Path | None = None
    calib_samples: int = 128
    tolerance: float | None = None
    parity_samples: int = 8
    target_options: dict = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    # Replace an artifact of a different variant (resolution, quantization, ...) at artifact_dir().
    force: bool = False
    # The model-input side: what a model outside the zoo takes, and how it is built.
    input_shape: str | tuple | None = None  # "1x3x256x320"
    resolution_range: str | SizeRange | None = None  # "128..512/32": dynamic height and width
    mean: tuple | str | None = None  # calibration/parity image normalization (default: the model's, else ImageNet)
    std: tuple | str | None = None
    model_kwargs: dict | None = None  # keyword arguments of a factory reference
    model_ref: Any = None  # a resolved models.references.ModelReference (the Python API gives instances this way)
    model_spec: Any = None  # the ModelSpec the pipeline resolved: a zoo model's, or one made for a user model
    label: str | None = None  # the artifact's directory name under out_dir (default: from ``model``)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse out-of-range numbers and missing paths now, before any slow work (the CLI checks them too).

        Done here, not only in the CLI, so the Python API and ``bench`` get the same checks: a
        resolution of 0 is not "the model's default", a NaN tolerance is not a tolerance.
        """
        if self.resolution is not None:  # kept JSON-friendly (an int when square, as before; "HxW" otherwise)
            self.resolution = Resolution.of(self.resolution).to_json()
        if self.input_shape is not None:
            self.input_shape = parse_input_shape(self.input_shape)
            if self.resolution is not None and self.size != Resolution(*self.input_shape[2:]):
                raise InvalidOptionError(f"--resolution {self.resolution} contradicts --input-shape "
                                         f"{'x'.join(map(str, self.input_shape))}", "give one of them")
        if self.resolution_range is not None:
            self.resolution_range = SizeRange.parse(self.resolution_range)
            if self.dynamic is False:
                raise InvalidOptionError("--resolution-range makes height/width dynamic; --static contradicts it",
                                         "drop one of them")
        for option in ("mean", "std"):
            if getattr(self, option) is not None:
                setattr(self, option, parse_channel_triple(getattr(self, option), f"--{option}"))
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise InvalidOptionError(f"--model-kwargs must be a JSON object, not {type(self.model_kwargs).__name__}",
                                     "e.g. --model-kwargs '{\"num_classes\": 10}'")
        for option, value in (("--num-classes", self.num_classes),):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidOptionError(f"{option} must be a positive integer, not {value!r}",
                                         f"leave {option} out for the model's default")
        for option, value in (("--parity-samples", self.parity_samples), ("--calib-samples", self.calib_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"{option} must be at least 1, not {value!r}", f"e.g. {option} 8")
        if self.tolerance is not None:
            if not isinstance(self.tolerance, (int, float)) or not math.isfinite(self.tolerance) or self.tolerance < 0:
                raise InvalidOptionError(f"--tolerance must be a finite number >= 0, not {self.tolerance!r}",
                                         "e.g. --tolerance 1e-3, or leave it out for the target's bound")
        if self.calib_dir is not None and not Path(self.calib_dir).is_dir():
            what = "is not a directory" if Path(self.calib_dir).exists() else "does not exist"
            raise InvalidOptionError(f"--calib directory '{self.calib_dir}' {what}",
                                     "give a directory of calibration images")

    def artifact_dir(self) -> Path:
        """``OUT/MODEL/TARGET``: one artifact per model and target; another variant there needs ``force``."""
        return Path(self.out_dir) / self.model_label / self.target

    @property
    def size(self) -> Resolution | None:
        """The requested input height and width: ``--input-shape``'s, else ``--resolution``'s, else None."""
        if self.input_shape is not None:
            return Resolution(self.input_shape[2], self.input_shape[3])
        return None if self.resolution is None else Resolution.of(self.resolution)

    def spec(self):
        """The model's :class:`ModelSpec`: the one the pipeline resolved (user models too), else the zoo's."""
        if self.model_spec is not None:
            return self.model_spec
        from mobexport.models import get_spec  # imports torch

        return get_spec(self.model)

    @property
    def model_label(self) -> str:
        """The model's directory name: the zoo name, a factory's name, a ``.pt2`` file's stem."""
        return self.label or label_of(self.model)


def label_of(model: str) -> str:
    """``mobile_former_294m`` -> itself; ``pkg.mod:build`` / ``net.py:build`` -> ``build``; ``dir/prog.pt2`` -> ``prog``."""
    text = str(model)
    if text.endswith(".pt2"):
        text = Path(text).stem
    elif ":" in text:
        text = text.rpartition(":")[2]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:100] or "model"
