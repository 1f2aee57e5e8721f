"""One export's quantization step: what the pipeline calls, in order.

``QuantizationSession.start`` checks the (target, mode) pair and the host,
loads the calibration set once; then, depending on where the target's
quantization happens:

* ``quantize_program`` (before lowering): ExecuTorch's PT2E flow rewrites the
  torch program the target then lowers;
* ``quantize_artifact`` (after lowering): ONNX and Core ML rewrite the file the
  target wrote; TensorRT quantizes its ONNX inside ``lower`` (the engine is
  built from it) and hands its facts back in ``Lowered.details``;
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

from ..targets.base import Lowered
from ..trace import TracedProgram
from . import report, sizes, support
from .calibration import CalibrationSet, calibration_for

log = logging.getLogger(__name__)
NEEDS_CALIBRATION = {("onnx", "int8"), ("executorch", "int8"), ("tensorrt", "int8"), ("coreml", "int8"),
                     ("litert", "int8")}


def resolve_config(config: ExportConfig) -> ExportConfig:
    """Check ``--quantize`` for the target and fold it into the options the target reads.

    Core ML and TensorRT express fp16 as their compute precision; asking for
    fp16 together with ``--precision fp32`` is a contradiction, refused here.
    Static int8 is exported at the calibrated resolution only (static shapes)
    unless ``--dynamic`` is given explicitly.
    """
    support.check_supported(config.target, config.quantize)
    if config.target_options.get("int8_activations", "int8") == "uint8" and (
            config.target, config.quantize) != ("onnx", "int8"):
        raise QuantizationError("--int8-activations uint8 applies to --target onnx --quantize int8 only",
                                "drop --int8-activations (TensorRT needs symmetric int8; other targets pick their own)")
    if (config.target, config.quantize) in NEEDS_CALIBRATION and config.dynamic is None:
        # Activation ranges are calibrated at one resolution: export that one unless --dynamic is asked for.
        config = dataclasses.replace(config, dynamic=False)
    precision = config.target_options.get("precision")
    if config.target in ("coreml", "tensorrt") and config.quantize == "fp16":
        if precision == "fp32":
            raise QuantizationError("--quantize fp16 contradicts --precision fp32", "drop one of them")
        return dataclasses.replace(config, target_options={**config.target_options, "precision": "fp16"})
    if config.target == "coreml" and config.quantize == "int8":
        from ..targets.coreml.target import deployment_target
        from .coreml_compress import check_host

        check_host("int8", int(deployment_target(config.target_options.get("deployment_target") or "iOS16")[1]))
    return config


@dataclasses.dataclass
class QuantizationSession:
    mode: str
    target: str
    spec: ModelSpec
    resolution: int
    calibration: CalibrationSet | None = None
    unsigned_activations: bool = False  # ONNX static int8: U8S8 instead of S8S8
    facts: dict = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @classmethod
    def start(cls, config: ExportConfig, spec: ModelSpec, resolution: int) -> "QuantizationSession":
        session = cls(config.quantize, config.target, spec, resolution,
                      unsigned_activations=config.target_options.get("int8_activations") == "uint8")
        if not session.active:
            return session
        session.facts = {"mode": config.quantize, "how": support.describe(config.target, config.quantize)}
        if (config.target, config.quantize) in NEEDS_CALIBRATION:
            session.calibration = calibration_for(config.calib_dir, spec, resolution, config.calib_samples)
            session.facts["calibration"] = session.calibration.to_dict()
            if session.calibration.synthetic:
                session.notes.append("int8 calibrated on synthetic noise (no --calib): accuracy on real images may "
                                     "be worse than reported here")
        elif config.calib_dir is not None:
            session.notes.append(f"--calib ignored: --quantize {config.quantize} on {config.target} needs no "
                                 "calibration")
        return session

    # ---------------------------------------------------------------- before lowering

    def quantize_program(self, traced: TracedProgram) -> TracedProgram:
        if not self.active or self.target != "executorch":
            return traced
        from .pt2e_xnnpack import quantize_program

        result = quantize_program(traced, self.mode, self._calibration_or_synthetic())
        self._record_layers(result.float_layers, result.sensitivity if self.mode == "int8" else None,
                            result.float_island)
        self.facts["scheme"] = result.scheme
        self.facts["weights"] = sizes.comparison(sizes.program_weight_bytes(traced.program),
                                                 sizes.program_weight_bytes(result.traced.program),
                                                 "constants of the float vs the quantized exported program")
        self.notes.extend(result.notes)
        return result.traced

    # ---------------------------------------------------------------- after lowering

    def quantize_artifact(self, lowered: Lowered, float_program: TracedProgram) -> Lowered:
        if not self.active:
            return lowered
        if self.target == "onnx":
            return self._quantize_onnx(lowered)
        if self.target == "coreml":
            return self._quantize_coreml(lowered, float_program)
        if self.target == "litert":
            return self._quantize_litert(lowered)
        if self.target == "tensorrt":
            facts = lowered.details.pop("quantization", {})
            self.facts.update(facts)
        return lowered

    def _quantize_onnx(self, lowered: Lowered) -> Lowered:
        from .onnx_fp16 import convert_fp16
        from .onnx_static import quantize_int8
        from .onnx_weights import quantize_weights

        float_path = Path(lowered.path)
        staged = float_path.with_name(f".{float_path.stem}.{self.mode}.onnx")
        fp32_bytes = sizes.onnx_weight_bytes(float_path)
        if self.mode == "fp16":
            self.facts["scheme"] = convert_fp16(float_path, staged)
        elif self.mode == "int8-weights":
            result = quantize_weights(float_path, staged)
            self.facts["scheme"] = {**result.scheme, "quantized_weights": len(result.quantized)}
        else:
            result = quantize_int8(float_path, staged, self._calibration_or_synthetic(),
                                   unsigned_activations=self.unsigned_activations)
            self.facts["scheme"] = result.scheme
            self._record_layers(result.float_layers, result.sensitivity, result.float_island)
        staged.replace(float_path)
        self.facts["weights"] = sizes.comparison(fp32_bytes, sizes.onnx_weight_bytes(float_path),
                                                 "initializers of the fp32 vs the quantized ONNX file")
        from ..targets.onnx.target import describe_onnx

        return dataclasses.replace(lowered, details=describe_onnx(float_path))

    def _quantize_litert(self, lowered: Lowered) -> Lowered:
        from ..targets.litert.target import delegate_coverage
        from .litert_quantize import quantize_litert

        float_path = Path(lowered.path)
        staged = float_path.with_name(f".{float_path.stem}.{self.mode}.tflite")
        fp32_bytes = float_path.stat().st_size
        self.facts["scheme"] = quantize_litert(float_path, staged, self.mode, self._calibration_or_synthetic()
                                               if self.mode == "int8" else None)
        staged.replace(float_path)
        self.facts["weights"] = sizes.comparison(fp32_bytes, float_path.stat().st_size,
                                                 "the fp32 vs the quantized .tflite file")
        return dataclasses.replace(lowered, details={**lowered.details, **delegate_coverage(float_path)})

    def _quantize_coreml(self, lowered: Lowered, float_program: TracedProgram) -> Lowered:
        fp32_bytes = sizes.program_weight_bytes(float_program.program)
        if self.mode != "fp16":
            from .coreml_compress import compress

            self.facts["scheme"] = compress(Path(lowered.path), self.mode, self.calibration)
        else:
            self.facts["scheme"] = {"weights": "fp16", "activations": "fp16", "tool": "coremltools compute_precision"}
        self.facts["weights"] = sizes.comparison(fp32_bytes, sizes.mlpackage_weight_bytes(lowered.path),
                                                 "float program constants vs the package's weight files")
        return lowered

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

    def _calibration_or_synthetic(self) -> CalibrationSet:
        if self.calibration is None:
            from .calibration import synthetic_calibration

            self.calibration = synthetic_calibration(self.spec, self.resolution, 8)
        return self.calibration

    def _synthetic_inputs(self, n: int):
        from .calibration import synthetic_calibration

        return synthetic_calibration(self.spec, self.resolution, n, seed=1).inputs

    def _record_layers(self, float_layers, sensitivity: dict | None, island: list[str] | None = None) -> None:
        self.facts["float_layers"] = [layer.to_dict() for layer in float_layers]
        if island:
            # Everything left float so that the layers above compute on float tensors (see onnx_static).
            self.facts["float_nodes"] = island
        if sensitivity is not None:
            self.facts["sensitivity"] = sensitivity

    def manifest(self) -> dict:
        return self.facts if self.active else {"mode": "none"}

