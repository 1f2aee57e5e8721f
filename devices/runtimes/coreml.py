"""Core ML runner for ``.mlpackage`` artifacts (macOS only).

Prediction goes through coremltools' ``MLModel.predict``, on the compute
units asked for: ``CPU_ONLY``, ``CPU_AND_GPU``, ``CPU_AND_NE`` or ``ALL``
(Core ML then picks per op). The package is compiled by Core ML when it
loads; that is the expensive ``activate`` step.

A classifier package (exported with ``--class-labels``) answers a label and a
label -> score dictionary; the runner turns the dictionary back into the
logits vector in label order, so parity compares like with like. An
image-input package takes 8-bit RGB pixels: the runner un-normalizes the
float tensor it is given with the model's mean/std and rounds to pixels.

:class:`CoreMLReferenceRunner` runs the same package through mobexport's MIL
reference interpreter (``devices/runtimes/coreml_mil``) on any host: the parity check
on Linux, and on macOS a second opinion that ``CoreMLRunner`` compares with
Core ML's own prediction when given one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np

from mobexport.errors import DeviceError, first_line

from ..input_shapes import AcceptedInputs
from .runner import Runner

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")


class CoreMLRunner(Runner):
    """Runs a Core ML package, one image per ``predict`` (the package's batch is 1)."""

    name = "coreml"

    def __init__(self, path: Path, accepted: AcceptedInputs | None = None, compute_units: str = "ALL",
                 image_input: dict | None = None, second_opinion: "CoreMLReferenceRunner | None" = None,
                 on_agreement: Callable[[dict], None] | None = None):
        self.path = Path(path)
        self.accepted = accepted
        self.compute_units = compute_units
        self.image_input = image_input
        self.model = None
        # The reference interpreter, run on every input alongside Core ML; their agreement goes to on_agreement.
        self.second_opinion = second_opinion
        self.on_agreement = on_agreement
        self._agreement: list[tuple[np.ndarray, np.ndarray]] = []

    def activate(self) -> None:
        if sys.platform != "darwin":
            raise DeviceError("Core ML prediction needs macOS", "run this artifact on a Mac (--device macos)")
        import coremltools as ct

        units = self.compute_units.upper()
        if units not in COMPUTE_UNITS:
            raise DeviceError(f"unknown Core ML compute units '{self.compute_units}'",
                              f"use one of {', '.join(COMPUTE_UNITS)}")
        try:
            self.model = ct.models.MLModel(str(self.path), compute_units=getattr(ct.ComputeUnit, units))
        except Exception as exc:
            raise DeviceError(f"Core ML could not load '{self.path.name}' ({first_line(exc, 200)})",
                              "re-export it, or raise --deployment-target to this Mac's macOS") from None
        spec = self.model.get_spec()
        description = spec.description
        self.input_name = description.input[0].name
        self.is_image = description.input[0].type.WhichOneof("Type") == "imageType"
        self.labels = _class_labels(spec)
        self.scores_name = description.predictedProbabilitiesName or None
        self.output_name = description.output[0].name
        if self.accepted is None:
            self.accepted = _accepted_from_spec(description.input[0])
        if self.is_image and self.image_input is None:
            metadata = dict(description.metadata.userDefined)
            self.image_input = {
                "mean": [float(v) for v in metadata.get("mobexport.mean", "0.485,0.456,0.406").split(",")],
                "std": [float(v) for v in metadata.get("mobexport.std", "0.229,0.224,0.225").split(",")],
            }

    def deactivate(self) -> None:
        if self.second_opinion is not None and self._agreement and self.on_agreement is not None:
            self.on_agreement(agreement(self._agreement))
        self._agreement = []
        self.model = None

    def _feed(self, sample: np.ndarray):
        if not self.is_image:
            return np.ascontiguousarray(sample[None], dtype=np.float32)
        from PIL import Image

        mean = np.asarray(self.image_input["mean"], dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.image_input["std"], dtype=np.float32).reshape(3, 1, 1)
        pixels = np.clip(np.rint((sample * std + mean) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(pixels.transpose(1, 2, 0), mode="RGB")

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            self.activate()
        self.accepted.check(x.shape, f"Core ML package '{self.path.name}'")
        rows = []
        for sample in np.asarray(x, dtype=np.float32):
            result = self.model.predict({self.input_name: self._feed(sample)})
            if self.labels is not None:
                scores = result[self.scores_name] if self.scores_name else next(
                    v for v in result.values() if isinstance(v, dict))
                rows.append(np.array([scores[label] for label in self.labels], dtype=np.float32))
            else:
                rows.append(np.asarray(result[self.output_name], dtype=np.float32).reshape(-1))
        out = np.stack(rows)
        if self.second_opinion is not None:
            self._agreement.append((out, self.second_opinion.infer(x)))
        return out

    def memory(self) -> dict:
        return {"compute_units": self.compute_units}


class CoreMLReferenceRunner(Runner):
    """Runs a Core ML package's MIL program through the reference interpreter, one image at a time.

    Works on any host and emulates the program's fp16 storage precision, not
    a device's accumulation order. An image-input package is fed the same
    8-bit pixels ``CoreMLRunner`` makes, as floats; a classifier answers its
    scores vector in label order.
    """

    name = "coreml-reference-interpreter"

    def __init__(self, path: Path, accepted: AcceptedInputs | None = None, image_input: dict | None = None,
                 interpreter=None):
        self.path = Path(path)
        self.accepted = accepted
        self.image_input = image_input
        self.interpreter = interpreter

    def activate(self) -> None:
        from .coreml_mil import MILInterpreter, load_program

        if self.interpreter is None:
            self.interpreter = MILInterpreter(load_program(self.path))
        self.interpreter.check_supported()
        (self.input_name,) = self.interpreter.input_names
        classify = [op for op in self.interpreter.operations if op.op_type == "classify"]
        # A classifier's outputs are (label, scores); the scores are the logits parity compares.
        self.output_name = classify[0].outputs[1].name if classify else self.interpreter.output_names[0]
        if self.accepted is None:
            import coremltools as ct

            spec = ct.models.MLModel(str(self.path), skip_model_load=True).get_spec()
            self.accepted = _accepted_from_spec(spec.description.input[0])

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self.interpreter is None:
            self.activate()
        self.accepted.check(x.shape, f"Core ML package '{self.path.name}'")
        rows = []
        for sample in np.asarray(x, dtype=np.float32):
            feed = sample[None]
            if self.image_input is not None:
                mean = np.asarray(self.image_input["mean"], dtype=np.float32).reshape(3, 1, 1)
                std = np.asarray(self.image_input["std"], dtype=np.float32).reshape(3, 1, 1)
                feed = np.clip(np.rint((sample * std + mean) * 255.0), 0, 255)[None].astype(np.float32)
            outputs, _ = self.interpreter.run({self.input_name: feed})
            rows.append(np.asarray(outputs[self.output_name], dtype=np.float32).reshape(-1))
        return np.stack(rows)

    def memory(self) -> dict:
        return {"runtime": self.name}


def agreement(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """How Core ML's outputs and the reference interpreter's agree: max abs difference, smallest cosine, top-1."""
    core = np.concatenate([p[0] for p in pairs]).astype(np.float64)
    ref = np.concatenate([p[1] for p in pairs]).astype(np.float64)
    cosine = np.sum(core * ref, axis=1) / np.maximum(np.linalg.norm(core, axis=1) * np.linalg.norm(ref, axis=1), 1e-30)
    return {"samples": len(core), "max_abs_difference": float(np.abs(core - ref).max()),
            "cosine": float(cosine.min()), "top1_agreement": float(np.mean(core.argmax(1) == ref.argmax(1)))}


def _class_labels(spec) -> list | None:
    """The classifier's labels in output order, or None for a plain model."""
    if spec.WhichOneof("Type") == "neuralNetworkClassifier":
        holder = spec.neuralNetworkClassifier
        field = holder.WhichOneof("ClassLabels")
        return list(getattr(holder, field).vector) if field else None
    return _classify_labels(spec)


def _classify_labels(spec) -> list | None:
    if spec.WhichOneof("Type") != "mlProgram" or not spec.description.predictedFeatureName:
        return None
    function = spec.mlProgram.functions["main"]
    for op in function.block_specializations[function.opset].operations:
        if op.type == "classify":
            # A list of scalar tensors, one per class: strings, or int64 labels.
            labels = []
            for item in op.inputs["classes"].arguments[0].value.immediateValue.list.values:
                tensor = item.immediateValue.tensor
                labels.extend(tensor.strings.values or tensor.longInts.values or tensor.ints.values)
            return labels
    return None


def _accepted_from_spec(feature) -> AcceptedInputs:
    """Sizes a package's input accepts, from its own description."""
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        image = feature.type.imageType
        sizes = sorted({int(s.height) for s in image.enumeratedSizes.sizes}) or [int(image.height)]
        if not image.enumeratedSizes.sizes and image.width != image.height:  # a static rectangular image
            return AcceptedInputs.static(int(image.height), width=int(image.width))
    else:
        array = feature.type.multiArrayType
        if array.WhichOneof("ShapeFlexibility") == "shapeRange":
            low, high = array.shapeRange.sizeRanges[-1].lowerBound, array.shapeRange.sizeRanges[-1].upperBound
            return AcceptedInputs(int(low), int(high), 1)
        if not array.enumeratedShapes.shapes and array.shape[-1] != array.shape[-2]:  # a static rectangular input
            return AcceptedInputs.static(int(array.shape[-2]), width=int(array.shape[-1]))
        sizes = sorted({int(s.shape[-1]) for s in array.enumeratedShapes.shapes}) or [int(array.shape[-1])]
    if len(sizes) == 1:
        return AcceptedInputs.static(sizes[0])
    steps = {b - a for a, b in zip(sizes, sizes[1:])}
    return AcceptedInputs(sizes[0], sizes[-1], steps.pop() if len(steps) == 1 else 1)


def open(path: Path, manifest: dict | None = None, device: str = "cpu") -> Runner:
    """A runner on ``device``: a compute-unit name, or "cpu" (this host: all units, Core ML's default).

    Off macOS (or with ``device="reference"``) the MIL reference interpreter.
    """
    details = (manifest or {}).get("target_details") or {}
    accepted = AcceptedInputs.from_manifest(manifest)
    if sys.platform != "darwin" or device == "reference":
        return CoreMLReferenceRunner(path, accepted=accepted, image_input=details.get("image_input"))
    return CoreMLRunner(path, accepted=accepted, compute_units=compute_units_for(device),
                        image_input=details.get("image_input"))


def compute_units_for(device: str) -> str:
    units = "ALL" if device in ("cpu", "local") else device.upper()
    if units not in COMPUTE_UNITS:
        raise DeviceError(f"unknown Core ML compute units '{device}'", f"use one of {', '.join(COMPUTE_UNITS)}")
    return units
