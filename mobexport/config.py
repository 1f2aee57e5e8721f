"""What one export asks for, as the CLI and the Python API both give it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mobexport.errors import InvalidOptionError

DEFAULT_OUT_DIR = Path("mobexport-out")


@dataclass
class ExportConfig:
    """One export: model + target + options. ``None`` means "the target's default"."""

    model: str
    target: str
    resolution: int | None = None
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse out-of-range numbers and missing paths now, before any slow work (the CLI checks them too).

        Done here, not only in the CLI, so the Python API and ``bench`` get the same checks: a
        resolution of 0 is not "the model's default", a NaN tolerance is not a tolerance.
        """
        for option, value in (("--resolution", self.resolution), ("--num-classes", self.num_classes)):
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
        return Path(self.out_dir) / self.model / self.target
