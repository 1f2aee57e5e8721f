"""What one export asks for, as the CLI and the Python API both give it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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

    def artifact_dir(self) -> Path:
        """``OUT/MODEL/TARGET``: one artifact per model and target; another variant there needs ``force``."""
        return Path(self.out_dir) / self.model / self.target
