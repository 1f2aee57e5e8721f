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
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mobexport.errors import DeviceError

from .input_shapes import AcceptedInputs
from .runner import Runner

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")


class CoreMLRunner(Runner):
    """Runs a Core ML package, one image per ``predict`` (the package's batch is 1)."""

    name = "coreml"

    def __init__(self, path: Path, accepted: AcceptedInputs | None = None, compute_units: str = "ALL",
                 image_input: dict | None = None):
        self.path = Path(path)
        self.accepted = accepted
        self.compute_units = compute_units
        self.image_input = image_input
        self.model = None

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
            raise DeviceError(f"Core ML could not load '{self.path.name}' ({str(exc).strip()[:200]})",
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
        return np.stack(rows)

    def memory(self) -> dict:
        return {"compute_units": self.compute_units}


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
    else:
        array = feature.type.multiArrayType
        if array.WhichOneof("ShapeFlexibility") == "shapeRange":
            low, high = array.shapeRange.sizeRanges[-1].lowerBound, array.shapeRange.sizeRanges[-1].upperBound
            return AcceptedInputs(int(low), int(high), 1)
        sizes = sorted({int(s.shape[-1]) for s in array.enumeratedShapes.shapes}) or [int(array.shape[-1])]
    if len(sizes) == 1:
        return AcceptedInputs.static(sizes[0])
    steps = {b - a for a, b in zip(sizes, sizes[1:])}
    return AcceptedInputs(sizes[0], sizes[-1], steps.pop() if len(steps) == 1 else 1)
