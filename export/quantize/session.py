"""One export's quantization step: what the pipeline calls, in order.

The session names no target: it asks the target for the quantizer of the
mode (``export/targets/<id>/quantizers.py``) and runs it at its stage.

``resolve_config`` checks the (target, mode) pair and folds what the mode
implies into the target options; ``QuantizationSession.start`` loads the
calibration set once (for calibrated quantizers); then

* ``quantize_program`` (before lowering): a ``program`` quantizer rewrites the
  torch program the target then lowers;
* ``quantize_artifact`` (after ``lower``, before the target's ``finish``): an
  ``artifact`` quantizer rewrites the file the target wrote;
* ``parity_inputs``: the images parity judges a calibrated artifact on
  (calibration-like ones, not noise: ranges fitted to real images clip noise);
* ``measure_accuracy``: float vs quantized on held-out or calibration-like
  images (:mod:`.report`).

Everything it learns goes to ``manifest()``, the manifest's ``quantization``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from mobexport.config import ExportConfig
from mobexport.errors import QuantizationError
from mobexport.models.spec import ModelSpec

from ..targets import get_target
from ..targets.base import Lowered, Target
from ..targets.options import option_classes_flags, refuse_foreign_options
from ..targets.quantizers import ARTIFACT, PROGRAM, QuantizeJob, Quantized, Quantizer
from ..trace import TracedProgram
from . import report, support
from .calibration import CalibrationSet, calibration_for

log = logging.getLogger(__name__)


def resolve_config(config: ExportConfig) -> ExportConfig:
    """Check ``--quantize`` for the target and fold what it implies into the options the target reads.

    A mode a target expresses as an option (fp16 as Core ML's or TensorRT's
    compute precision) sets that option; asking for another value of it at
    the same time (``--precision fp32``) is a contradiction, refused here.
    Calibrated int8 is exported at the calibrated resolution only (static
    shapes) unless ``--dynamic`` is given explicitly.
    """
    from ..targets import option_classes

    support.check_supported(config.target, config.quantize)
    refuse_foreign_options(config.target, config.target_options, option_classes())
    if config.quantize == "none":
        return config
    quantizer = get_target(config.target).quantizers[config.quantize]
    if quantizer.calibrated and config.dynamic is None:
        # Activation ranges are calibrated at one resolution: export that one unless --dynamic is asked for.
        config = dataclasses.replace(config, dynamic=False)
    flags = option_classes_flags(option_classes())
    for name, value in quantizer.implies.items():
        given = config.target_options.get(name)
        if given is not None and given != value:
            flag = flags[name].flag if name in flags else name
            raise QuantizationError(f"--quantize {config.quantize} contradicts {flag} {given}", "drop one of them")
    if quantizer.implies:
        config = dataclasses.replace(config, target_options={**config.target_options, **quantizer.implies})
    return config


@dataclasses.dataclass
class QuantizationSession:
    mode: str
    target: Target
    options: object  # the target's TargetOptions
    spec: ModelSpec
    resolution: int
    quantizer: Quantizer | None = None
    calibration: CalibrationSet | None = None
    facts: dict = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @classmethod
    def start(cls, config: ExportConfig, spec: ModelSpec, resolution: int,
              target: Target | None = None) -> "QuantizationSession":
        target = target or get_target(config.target)
        session = cls(config.quantize, target, target.options(config), spec, resolution)
        if not session.active:
            return session
        session.quantizer = target.quantizers[config.quantize]
        session.facts = {"mode": config.quantize, "how": session.quantizer.how}
        if session.quantizer.calibrated:
            session.calibration = calibration_for(config.calib_dir, spec, resolution, config.calib_samples)
            session.facts["calibration"] = session.calibration.to_dict()
            if session.calibration.synthetic:
                session.notes.append("int8 calibrated on synthetic noise (no --calib): accuracy on real images may "
                                     "be worse than reported here")
        elif config.calib_dir is not None:
            session.notes.append(f"--calib ignored: --quantize {config.quantize} on {config.target} needs no "
                                 "calibration")
        return session

    # ---------------------------------------------------------------- the quantizer, at its stage

    def quantize_program(self, traced: TracedProgram) -> TracedProgram:
        """Before lowering: a program quantizer's rewritten program, else ``traced`` as it is."""
        if not self._runs_at(PROGRAM):
            return traced
        return self._record(self.quantizer.run(self._job(traced))).traced

    def quantize_artifact(self, lowered: Lowered, float_program: TracedProgram) -> Lowered:
        """After ``lower``: an artifact quantizer's rewritten file, else ``lowered`` as it is."""
        if not self._runs_at(ARTIFACT):
            return lowered
        return self._record(self.quantizer.run(self._job(float_program, lowered))).lowered

    def _runs_at(self, stage: str) -> bool:
        return self.active and self.quantizer.stage == stage and self.quantizer.run is not None

    def _job(self, float_program: TracedProgram, lowered: Lowered | None = None) -> QuantizeJob:
        return QuantizeJob(self.mode, self.options, self.calibration, self._synthetic_calibration,
                           float_program, lowered)

    def _record(self, result: Quantized) -> Quantized:
        self.facts.update(result.facts)
        self.notes.extend(result.notes)
        return result

    # ---------------------------------------------------------------- parity and accuracy

    def parity_inputs(self, resolution: int, samples: int) -> tuple[np.ndarray, str] | None:
        """Calibration-distribution images for parity, or None where noise is the right input.

        An artifact calibrated on ``--calib`` images has activation ranges
        fitted to those images; random-normal inputs reach far outside them and
        clip, so parity on noise would judge a distribution nobody deploys on.
        Held-back images come first (the ranges were not fitted to them), then
        the calibration images; at another resolution they are resized
        bilinearly (a dynamic int8 export's second parity point).
        """
        if not self.active or self.calibration is None or self.calibration.synthetic:
            return None
        calib = self.calibration
        if calib.heldback is not None and len(calib.heldback):
            pool, source = calib.heldback, "calibration images held back from calibration"
        else:
            pool, source = calib.inputs, "the calibration images"
        x = np.ascontiguousarray(pool[:samples], dtype=np.float32)
        if resolution != calib.resolution:
            import torch

            x = torch.nn.functional.interpolate(torch.from_numpy(x), size=(resolution, resolution),
                                                mode="bilinear", align_corners=False).numpy()
            source += f", resized {calib.resolution} -> {resolution}"
        return x, source


    def measure_accuracy(self, float_fn, quantized_fn, checkpoint: Path | None) -> None:
        eval_set = report.evaluation_set(self.spec.name, self.resolution, checkpoint, self.calibration)
        if eval_set is None:
            # fp16 / weight-only without --calib and without a fixture: random inputs, as parity uses.
            eval_set = report.EvalSet(self._synthetic_inputs(32), None, "synthetic noise inputs")
        self.facts["accuracy"] = report.measure(float_fn, quantized_fn, eval_set)

    def accuracy_not_measured(self, why: str) -> None:
        self.facts["accuracy"] = {"not_measured": why}

    # ---------------------------------------------------------------- helpers

    def _synthetic_calibration(self) -> CalibrationSet:
        """A small synthetic set, for quantizers of uncalibrated modes that still need a few inputs."""
        if self.calibration is None:
            from .calibration import synthetic_calibration

            self.calibration = synthetic_calibration(self.spec, self.resolution, 8)
        return self.calibration

    def _synthetic_inputs(self, n: int):
        from .calibration import synthetic_calibration

        return synthetic_calibration(self.spec, self.resolution, n, seed=1).inputs

    def manifest(self) -> dict:
        return self.facts if self.active else {"mode": "none"}

