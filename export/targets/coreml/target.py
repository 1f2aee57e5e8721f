"""Core ML target: an ``.mlpackage`` ML program, converted by coremltools.

fp16 compute by default (``--precision fp32`` for full precision), inputs and
outputs kept fp32 so callers feed the same arrays as to every other target.
``--deployment-target`` sets the minimum OS (iOS16 default; ML programs need
iOS15 / macOS12 or later).

Flexible sizes (``--dynamic``) use *enumerated* shapes, one per resolution in
the model's range: Core ML compiles a plan for each listed shape ahead of time
and can keep all of them on the Neural Engine, whereas a range-shaped input
(``RangeDim``) is planned at run time and mostly runs on CPU/GPU only. Apple's
flexible-input guide recommends enumerated shapes for speed; the limit is 128
shapes, past which we fall back to a range and say so.

``--image-input`` takes an RGB image instead of a tensor, with the model's
normalization baked in: Core ML's image preprocessing computes
``pixel * scale + bias[c]`` with one scalar scale, so scale and bias carry
``1/(255*s)`` and ``-mean[c]/s`` for the mean std ``s``, and a per-channel
``s/std[c]`` multiply is prepended to the network when the stds differ
(exact: ``(pixel/255 - mean[c]) / std[c]``). ``--class-labels FILE`` makes
it a classifier (a label plus a label->score dictionary of the raw logits).

The saved package is re-loaded without compiling and its structure is
checked (model type, input/output names, shapes and flexible sizes,
deployment target); the MIL program's op histogram goes into the manifest.
Core ML itself predicts only on macOS. Everywhere, parity is measured by
mobexport's MIL reference interpreter (``coreml_mil``), which reads the saved
program with coremltools' reader and runs it op by op with fp16 storage
emulated; on macOS ``MLModel.predict`` stays the primary check and the
interpreter's outputs are compared with it. A program with an op the
interpreter lacks is reported "cannot verify: op X", never passed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections import Counter
from pathlib import Path

from mobexport.config import ExportConfig
from mobexport.devices.runtimes import COREML
from mobexport.devices.runtimes.coreml import CoreMLReferenceRunner, CoreMLRunner
from mobexport.errors import ExportError, TargetOptionError, first_line
from mobexport.kernels.lowering import decomposition_table, prepare_fused_ops

from .reference_check import ReferenceCheck
from ..base import Lowered, Target
from .options import CoreMLOptions
from .quantizers import QUANTIZERS
from ...trace import TracedProgram, example_input

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
LABEL_NAME = "classLabel"
MAX_ENUMERATED_SHAPES = 128
# ML programs exist from iOS15 / macOS12 / watchOS8 / tvOS15 on.
MIN_MLPROGRAM_SPEC = 6
log = logging.getLogger(__name__)


class CoreMLTarget(Target):
    name = "coreml"
    extra = "coreml"
    file_name = "model.mlpackage"
    requires = (("coremltools", "coremltools"),)
    default_dynamic = False
    options_class = CoreMLOptions
    quantizers = QUANTIZERS

    def check_config(self, config: ExportConfig) -> None:
        options = self.options(config)
        _, target = deployment_target(options.deployment_target)
        if options.class_labels is not None:
            read_class_labels(Path(options.class_labels), config.num_classes or config.spec().num_classes)
        if config.quantize == "int8":
            from mobexport.export.quantize.coreml_compress import check_host

            check_host("int8", int(target))

    def precision_for(self, config: ExportConfig) -> str:
        return self.options(config).compute_precision

    def prepare(self, traced: TracedProgram, config: ExportConfig) -> TracedProgram:
        """Fused ops as plain ATen ops: MIL has them (a registered torch op would add nothing measurable)."""
        return prepare_fused_ops(traced, decomposition_table("plain"))

    def lower(self, traced: TracedProgram, config: ExportConfig, out_dir: Path) -> Lowered:
        import coremltools as ct
        import numpy as np

        options = self.options(config)
        spec = config.spec()
        num_classes = config.num_classes or spec.num_classes
        target_name, target = deployment_target(options.deployment_target)
        precision = options.compute_precision
        labels_path = options.class_labels
        labels = read_class_labels(Path(labels_path), num_classes) if labels_path else None
        image_input = bool(options.image_input)
        notes: list[str] = []

        shape, flexible = input_shape(traced)
        if flexible.get("kind") == "range":
            notes.append(flexible["why"])
        program = traced.program
        details: dict = {"format": "mlprogram", "deployment_target": target_name, "compute_precision": precision,
                         "flexible_shapes": flexible}
        if image_input:
            preprocessing = image_preprocessing(spec.mean, spec.std)
            details["image_input"] = preprocessing
            if preprocessing["channel_factors"] is not None:
                program = with_channel_factors(traced, preprocessing["channel_factors"])
            inputs = [ct.ImageType(name=INPUT_NAME, shape=shape, scale=preprocessing["scale"],
                                   bias=preprocessing["bias"], color_layout=ct.colorlayout.RGB)]
        else:
            inputs = [ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)]
        try:
            with warnings.catch_warnings(), _quiet_coremltools():
                warnings.simplefilter("ignore")
                # coremltools reads the ATen dialect; an empty table keeps ops whole (no core-ATen split).
                program = program.run_decompositions({})
                mlmodel = ct.convert(
                    program,
                    inputs=inputs,
                    outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                    classifier_config=ct.ClassifierConfig(labels, predicted_feature_name=LABEL_NAME) if labels else None,
                    convert_to="mlprogram",
                    compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                    minimum_deployment_target=target,
                    skip_model_load=True,
                )
        except Exception as exc:
            raise ExportError(f"Core ML conversion failed: {first_line(exc)}",
                              "run with --debug for the full trace") from exc
        mlmodel.short_description = f"{spec.name} exported by mobexport"
        mlmodel.user_defined_metadata["mobexport.model"] = spec.name
        mlmodel.user_defined_metadata["mobexport.mean"] = ",".join(f"{v:g}" for v in spec.mean)
        mlmodel.user_defined_metadata["mobexport.std"] = ",".join(f"{v:g}" for v in spec.std)
        path = Path(out_dir) / self.file_name
        mlmodel.save(str(path))

        structure = describe_mlpackage(path)
        check_structure(structure, traced, num_classes, labels is not None, image_input, int(target), precision)
        details.update(structure)
        reference = ReferenceCheck.prepare(path, traced, precision, details, notes)
        if labels:
            details["class_labels"] = {"file": str(labels_path), "count": len(labels)}
        return Lowered(path=path, kind=COREML, details=details, notes=notes,
                       runnable=lambda: reference_runnable(reference, image_input),
                       parity_runner=lambda: parity_runner(reference, image_input, details),
                       explain=lambda report: explain_with(reference, report))

    def can_run_here(self) -> tuple[bool, str]:
        """Core ML itself predicts on macOS only (a lowered package can still be checked by the interpreter)."""
        return (True, "") if sys.platform == "darwin" else (False, "Core ML prediction needs macOS")


def reference_runnable(reference: ReferenceCheck, image_input: bool) -> tuple[bool, str]:
    """Whether parity can be measured here for a just-lowered package, and why not."""
    if image_input:
        return False, ("an image-input model takes 8-bit pixels, not the float tensors parity compares; "
                       "export without --image-input to measure parity")
    if sys.platform == "darwin":
        return True, ""
    unsupported = reference.interpreter.unsupported
    if unsupported:
        return False, (f"cannot verify: op {', '.join(unsupported)} is not covered "
                       "by the Core ML reference interpreter, and Core ML prediction needs macOS")
    return True, ""


def parity_runner(reference: ReferenceCheck, image_input: bool, details: dict):
    """Off macOS the MIL reference interpreter already loaded; on macOS Core ML, with the interpreter alongside."""
    accepted = None
    if sys.platform != "darwin":
        return CoreMLReferenceRunner(reference.path, accepted=accepted, image_input=details.get("image_input"),
                                     interpreter=reference.interpreter)
    second = None
    if not reference.interpreter.unsupported and not image_input:
        second = CoreMLReferenceRunner(reference.path, accepted=accepted, interpreter=reference.interpreter)
    return CoreMLRunner(reference.path, accepted=accepted, compute_units="ALL", image_input=details.get("image_input"),
                        second_opinion=second, on_agreement=reference.record_agreement if second else None)


def explain_with(reference: ReferenceCheck, report) -> str | None:
    """The first MIL op whose output departs from the PyTorch program's node, for a failing parity report."""
    if reference.interpreter.unsupported:
        return None
    return reference.explain(report)


def deployment_target(name: str):
    """(canonical name, ``ct.target`` member) for e.g. ``ios16`` or ``macOS13``."""
    import coremltools as ct

    members = {key.lower(): (key, member) for key, member in ct.target.__members__.items()}
    found = members.get(str(name).lower())
    usable = [key for key, member in ct.target.__members__.items() if int(member) >= MIN_MLPROGRAM_SPEC]
    if found is None:
        raise TargetOptionError(f"unknown Core ML deployment target '{name}'", f"use one of: {', '.join(usable)}")
    if int(found[1]) < MIN_MLPROGRAM_SPEC:
        raise TargetOptionError(f"deployment target {found[0]} predates Core ML ML programs",
                                "use iOS15 / macOS12 or later, e.g. --deployment-target iOS16")
    return found


def read_class_labels(path: Path, num_classes: int) -> list[str]:
    """One label per non-empty line; exactly one per class."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetOptionError(f"cannot read class labels from '{path}' ({getattr(exc, 'strerror', None) or exc})",
                                "pass a UTF-8 text file with one label per line") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if len(labels) != num_classes:
        raise TargetOptionError(f"'{path}' has {len(labels)} labels but the model has {num_classes} classes",
                                "give one label per line, one line per class")
    if len(set(labels)) != len(labels):
        duplicate = next(label for label, n in Counter(labels).items() if n > 1)
        raise TargetOptionError(f"'{path}' lists the label '{duplicate}' more than once", "labels must be unique")
    return labels


def input_shape(traced: TracedProgram):
    """The converter's input shape and a description of its flexibility."""
    import coremltools as ct

    if not traced.dynamic:
        return traced.input_shape, {"kind": "static", "sizes": [traced.size.to_json()]}
    sizes = list(range(traced.min_resolution, traced.max_resolution + 1, traced.stride))
    if len(sizes) <= MAX_ENUMERATED_SHAPES:
        enumerated = [(1, 3, s, s) for s in sizes]
        if traced.input_shape not in enumerated:  # a rectangular default is one of the shapes too
            enumerated.append(traced.input_shape)
        shapes = ct.EnumeratedShapes(shapes=enumerated, default=traced.input_shape)
        return shapes, {
            "kind": "enumerated", "sizes": sizes,
            "why": "enumerated shapes are compiled per shape ahead of time and can stay on the Neural Engine; "
                   "a range-shaped input is planned at run time and mostly runs on CPU/GPU",
        }
    height = ct.RangeDim(lower_bound=traced.min_resolution, upper_bound=traced.max_resolution,
                         default=traced.size.height)
    width = ct.RangeDim(lower_bound=traced.min_resolution, upper_bound=traced.max_resolution,
                        default=traced.size.width)
    return (1, 3, height, width), {
        "kind": "range", "min": traced.min_resolution, "max": traced.max_resolution,
        "why": f"{len(sizes)} sizes exceed Core ML's {MAX_ENUMERATED_SHAPES} enumerated shapes: "
               "using a range input, which may not run on the Neural Engine",
    }


def image_preprocessing(mean, std) -> dict:
    """Core ML image scale/bias for ``(pixel/255 - mean) / std``, plus any per-channel residual."""
    s = sum(std) / len(std)
    factors = [s / c for c in std]
    uniform = all(abs(f - 1.0) < 1e-9 for f in factors)
    return {
        "color_layout": "RGB",
        "scale": 1.0 / (255.0 * s),
        "bias": [-m / s for m in mean],
        "channel_factors": None if uniform else factors,
        "mean": list(mean),
        "std": list(std),
    }


def with_channel_factors(traced: TracedProgram, factors: list[float]):
    """``traced``'s program with ``x * factors[c]`` prepended, re-exported with the same shapes."""
    import torch
    from torch.export import Dim

    class ChannelFactors(torch.nn.Module):
        def __init__(self, body: torch.nn.Module):
            super().__init__()
            self.body = body
            self.register_buffer("factors", torch.tensor(factors, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x):
            return self.body(x * self.factors)

    module = ChannelFactors(traced.program.module())  # an unlifted program refuses .train()/.eval()
    dynamic_shapes = None
    if traced.dynamic:
        low, high = max(1, traced.min_resolution // traced.stride), traced.max_resolution // traced.stride
        h, w = Dim("h_blocks", min=low, max=high), Dim("w_blocks", min=low, max=high)
        dynamic_shapes = {"x": {2: traced.stride * h, 3: traced.stride * w}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(module, (example_input(traced.size),), dynamic_shapes=dynamic_shapes,
                                       strict=False)
    except Exception as exc:
        raise ExportError(f"could not prepend the image normalization: {first_line(exc, 200)}",
                          "export without --image-input and normalize in the app") from exc


def _feature(description) -> dict:
    """Name, kind and shape facts of one Core ML feature description."""
    kind = description.type.WhichOneof("Type")
    out: dict = {"name": description.name, "type": kind}
    if kind == "multiArrayType":
        array = description.type.multiArrayType
        out["shape"] = [int(d) for d in array.shape]
        out["dtype"] = type(array).ArrayDataType.Name(array.dataType)
        if array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            out["enumerated"] = [[int(d) for d in s.shape] for s in array.enumeratedShapes.shapes]
        elif array.WhichOneof("ShapeFlexibility") == "shapeRange":
            out["range"] = [[int(r.lowerBound), int(r.upperBound)] for r in array.shapeRange.sizeRanges]
    elif kind == "imageType":
        image = description.type.imageType
        out["shape"] = [int(image.height), int(image.width)]
        out["color_space"] = type(image).ColorSpace.Name(image.colorSpace)
        if image.WhichOneof("SizeFlexibility") == "enumeratedSizes":
            out["enumerated"] = [[int(s.height), int(s.width)] for s in image.enumeratedSizes.sizes]
        elif image.WhichOneof("SizeFlexibility") == "imageSizeRange":
            r = image.imageSizeRange
            out["range"] = [[int(r.heightRange.lowerBound), int(r.heightRange.upperBound)],
                            [int(r.widthRange.lowerBound), int(r.widthRange.upperBound)]]
    return out


def _count_ops(block, histogram: Counter) -> None:
    for op in block.operations:
        histogram[op.type] += 1
        for inner in op.blocks:
            _count_ops(inner, histogram)


def describe_mlpackage(path: Path) -> dict:
    """Re-load a saved package (without compiling it) and describe its structure."""
    import coremltools as ct

    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as exc:
        raise ExportError(f"the saved Core ML package does not load back: {first_line(exc, 200)}",
                          "run with --debug for the full trace") from exc
    facts: dict = {
        "specification_version": int(spec.specificationVersion),
        "model_type": spec.WhichOneof("Type"),
        "inputs": [_feature(f) for f in spec.description.input],
        "outputs": [_feature(f) for f in spec.description.output],
    }
    if spec.description.predictedFeatureName:
        facts["predicted_feature"] = spec.description.predictedFeatureName
    if spec.WhichOneof("Type") == "mlProgram":
        function = spec.mlProgram.functions["main"]
        histogram: Counter = Counter()
        _count_ops(function.block_specializations[function.opset], histogram)
        facts["mil_opset"] = function.opset
        facts["mil_ops"] = sum(histogram.values())
        facts["op_histogram"] = dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0])))
    return facts


def check_structure(facts: dict, traced: TracedProgram, num_classes: int, classifier: bool, image_input: bool,
                    min_spec: int, precision: str) -> None:
    """Raise :class:`ExportError` if the re-loaded package is not what was asked for."""
    problems: list[str] = []
    if facts["model_type"] != "mlProgram":
        problems.append(f"model type is {facts['model_type']}, not mlProgram")
    if facts["specification_version"] < min_spec:
        problems.append(f"specification version {facts['specification_version']} < deployment target's {min_spec}")
    inputs = {f["name"]: f for f in facts["inputs"]}
    feature = inputs.get(INPUT_NAME)
    expected_sizes = list(range(traced.min_resolution, traced.max_resolution + 1, traced.stride)) \
        if traced.dynamic else [traced.resolution]
    if feature is None or len(inputs) != 1:
        problems.append(f"inputs are {sorted(inputs)}, expected ['{INPUT_NAME}']")
    else:
        want = "imageType" if image_input else "multiArrayType"
        if feature["type"] != want:
            problems.append(f"input is {feature['type']}, expected {want}")
        default = feature["shape"][-2:]
        if default != [traced.size.height, traced.size.width]:
            problems.append(f"input default size {default} != {traced.size}")
        if "enumerated" in feature:
            got = sorted({s[-1] for s in feature["enumerated"] if s[-1] == s[-2]})
            if got != expected_sizes:
                problems.append(f"enumerated sizes {got} != {expected_sizes}")
        elif traced.dynamic and "range" not in feature:
            problems.append("a dynamic export has no flexible input size")
    outputs = {f["name"]: f for f in facts["outputs"]}
    if classifier:
        if LABEL_NAME not in outputs or facts.get("predicted_feature") != LABEL_NAME:
            problems.append(f"classifier has no '{LABEL_NAME}' output")
    else:
        logits = outputs.get(OUTPUT_NAME)
        if logits is None or logits["type"] != "multiArrayType":
            problems.append(f"no '{OUTPUT_NAME}' tensor output")
        elif logits["shape"][-1] != num_classes:
            problems.append(f"'{OUTPUT_NAME}' has {logits['shape'][-1]} classes, expected {num_classes}")
    histogram = facts.get("op_histogram", {})
    if not any(op.startswith("conv") or op in ("linear", "matmul") for op in histogram):
        problems.append("the MIL program has no conv/linear/matmul op")
    if precision == "fp16" and "cast" not in histogram:
        problems.append("fp16 compute asked but the program casts nothing to fp16")
    if problems:
        raise ExportError(f"the saved Core ML package failed its structural check: {'; '.join(problems)}",
                          "run with --debug and report it")


class _quiet_coremltools:
    """coremltools logs warnings and draws tqdm bars on stderr: keep both out of our output (unless --debug)."""

    def __enter__(self):
        self.logger = logging.getLogger("coremltools")
        self.level = self.logger.level
        self.redirect = None
        if not log.isEnabledFor(logging.DEBUG):
            self.logger.setLevel(logging.ERROR)
            self.redirect = contextlib.redirect_stderr(io.StringIO())
            self.redirect.__enter__()
        return self

    def __exit__(self, *exc):
        if self.redirect is not None:
            self.redirect.__exit__(*exc)
        self.logger.setLevel(self.level)
