"""The export flow: model -> traced program -> artifact with manifest.

``export_model`` is the one function the CLI calls for ``mobexport --model M
--target T``; each step is a function of its own module, and this file only
orders them, times them and records what they did in the manifest.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
import torch

from mobexport.config import ExportConfig
from mobexport.errors import InvalidOptionError, QuantizationError, ResolutionError, first_line
from mobexport.manifest import PARAMS_DEFINITION, RANDOM_WEIGHTS_NOTE, Manifest, sha256_tree, size_of, vcs_revision
from mobexport.models import create_model
from mobexport.models.checkpoint import load_checkpoint
from mobexport.models.references import (
    InputShapeError,
    ModelReference,
    ModelReferenceError,
    UntraceableModelError,
    check_zoo_resolution,
    eval_mode,
    traced_failure,
    user_spec,
)
from mobexport.models.references import resolve as resolve_reference
from mobexport.models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, ResolutionRange
from mobexport.shapes import Resolution, SizeRange

from . import parity
from .artifact import Artifact, check_destination, staging_directory
from .macs import count_macs
from .passes import resolve, rewrite
from .quantize.session import QuantizationSession, resolve_config
from .quantize.support import check_supported, precision_of
from .resources import as_resource_error
from .targets import get_target
from .targets.base import Target
from .trace import TracedProgram, example_input, trace
from .variant import check_replaceable, variant_of

StepCallback = Callable[[str], None]


# Steps ``export_model`` reports through ``on_step`` (parity once per resolution).
EXPORT_STEPS = ("build model", "trace", "rewrite", "count MACs", "quantize", "lower", "parity", "parity", "accuracy",
                "write")


def export_model(config: ExportConfig, on_step: StepCallback | None = None) -> Artifact:
    """Export one model to one target; returns the artifact, complete on disk.

    Running out of memory, disk space or the file-size limit anywhere in the
    export is one :class:`ResourceExhaustedError` line; the staging directory is
    gone by then, so nothing half-written is left.
    """
    try:
        return _export_model(config, on_step)
    except Exception as exc:  # MemoryError included; targets wrap what their converter raised: look through the chain
        error = as_resource_error(exc, f"the export of {config.model_label} to {config.target}")
        if error is None:
            raise
        raise error from None


def _export_model(config: ExportConfig, on_step: StepCallback | None) -> Artifact:
    step = on_step or (lambda name: None)
    ref, spec, size = model_inputs(config)
    config = dataclasses.replace(config, model_ref=ref, model_spec=spec,
                                 dynamic=True if config.resolution_range is not None else config.dynamic)
    target = get_target(config.target)
    target.require()
    check_compiler_options(config)
    config = resolve_config(config)
    target.check_config(config)
    if ref.is_zoo:
        dynamic = target.default_dynamic if config.dynamic is None else config.dynamic
    else:  # a user model is dynamic only over the range it was given
        dynamic = config.resolution_range is not None
    resolution = size.height
    if not size.square and config.quantize != "none":
        raise QuantizationError(f"--quantize {config.quantize} calibrates square images; {size} is not square",
                                "quantize at a square --resolution, or export this size without --quantize")
    variant = variant_of(config, size.to_json(), dynamic, config.num_classes or spec.num_classes)
    # Refusals that need no model: before any slow work.
    check_destination(config.artifact_dir())
    check_replaceable(config, variant)
    # Loads the calibration images now: a bad --calib fails before any slow work.
    quant = QuantizationSession.start(config, spec, resolution, target)
    timings: dict[str, float] = {}
    notes: list[str] = []

    step("build model")
    started = time.perf_counter()
    if ref.is_zoo:
        model = create_model(ref.spec.name, num_classes=config.num_classes, resolution=size.height)
    else:
        model = ref.build(num_classes=config.num_classes, resolution=size)
    checkpoint = {"sha256": "random-init"}
    if config.checkpoint is None:
        notes.append(RANDOM_WEIGHTS_NOTE)
    else:
        report = load_checkpoint(model, config.checkpoint, config.model_label, trust=config.trust_checkpoint)
        checkpoint = {"path": str(config.checkpoint), "sha256": report.sha256}
        notes.extend(report.notes)
    model = eval_mode(model)
    if not ref.is_zoo:
        check_user_input(model, ref, size)
    timings["build"] = time.perf_counter() - started

    step("trace")
    started = time.perf_counter()
    traced = trace(model, spec, size, dynamic=dynamic,
                   on_failure=None if ref.is_zoo else lambda exc: untraceable(ref, exc))
    if traced.fallback_reason:
        notes.append(f"exported static: dynamic height/width failed ({traced.fallback_reason})")
    timings["trace"] = time.perf_counter() - started

    step("rewrite")
    started = time.perf_counter()
    passes = resolve(config.passes, skip_in_default=target.slower_passes)
    traced, pass_results = rewrite(traced, passes, verify_resolutions=verify_resolutions(config, traced))
    timings["rewrite"] = time.perf_counter() - started

    step("count MACs")
    macs = count_macs(traced.program, size)

    with staging_directory(config.artifact_dir()) as staging:
        if quant.active:
            step("quantize")
        started = time.perf_counter()
        to_lower = quant.quantize_program(traced)
        quantize_s = time.perf_counter() - started
        step("lower")
        started = time.perf_counter()
        to_lower = target.prepare(to_lower, config)  # fused ops -> the target's form
        lowered = target.lower(to_lower, config, staging)
        timings["lower"] = time.perf_counter() - started
        started = time.perf_counter()
        lowered = quant.quantize_artifact(lowered, traced)
        if quant.active:
            timings["quantize"] = quantize_s + time.perf_counter() - started
        started = time.perf_counter()
        lowered = target.finish(lowered, config, staging)  # TensorRT builds its engine from the quantized ONNX
        timings["lower"] += time.perf_counter() - started
        traced = lowered.traced or to_lower
        notes.extend(lowered.notes)

        tolerance = tolerance_for(target, config)
        resolutions = [traced.size] + [r for r in [second_resolution(traced)] if r]
        runnable, why_not = lowered.can_run_here()
        reports: list[parity.ParityReport] = []
        started = time.perf_counter()
        if runnable:
            with lowered.open_for_parity() as runner:
                candidate, eager = every_output(runner), eager_fn(model)
                if candidate is runner.infer and len(flat_outputs(model, traced.size)) > 1:
                    eager = first_output(eager)
                    notes.append(f"parity compared the first output only: the {config.target} runner returns one")
                for res in resolutions:
                    step("parity")
                    images = quant.parity_inputs(res.height, config.parity_samples) if res.square else None
                    inputs, source = images if images else (None, parity.RANDOM_INPUTS)
                    reports.append(parity.measure(eager, candidate, res, tolerance,
                                                  config.parity_samples, inputs=inputs, inputs_source=source))
                if quant.active:
                    step("accuracy")
                    quant.measure_accuracy(first_output(eager_fn(model)), runner.infer, config.checkpoint)
        else:
            notes.append(f"parity not measured here: {why_not}")
            if quant.active:
                quant.accuracy_not_measured(why_not)
        timings["parity"] = time.perf_counter() - started
        parity.require(reports, f"{config.target} artifact of {config.model_label}",
                       explain=lowered.explain)

        step("write")
        manifest = Manifest(
            model=model_facts(spec, config, ref),
            target=config.target,
            artifact={
                "file": lowered.path.name,
                "kind": lowered.kind,
                "size_bytes": size_of(lowered.path),
                "sha256": sha256_tree(lowered.path),
            },
            resolution={
                "export": resolution,
                **({} if size.square else {"size": str(size), "height": size.height, "width": size.width}),
                "input_shape": list(traced.input_shape),
                "dynamic": traced.dynamic,
                "min": traced.min_resolution,
                "max": traced.max_resolution,
                "stride": traced.stride,
            },
            checkpoint=checkpoint,
            passes=[r.to_dict() for r in pass_results],
            quantization=quant.manifest(),
            parity=[r.to_dict() for r in reports],
            tolerance=tolerance.to_dict(),
            macs=without_params(macs.to_dict()),
            params=sum(p.numel() for p in model.parameters()),  # the model's, before folding
            params_definition=PARAMS_DEFINITION,
            random_weights=config.checkpoint is None,
            variant=variant,
            mobexport_revision=vcs_revision(),
            timings_s={k: round(v, 3) for k, v in timings.items()},
            target_details=readable_input_dims(lowered.details, traced),
            notes=notes + quant.notes,
            command=list(config.command),
        )
        manifest.write(staging)
    return Artifact.open(config.artifact_dir())


def without_params(macs: dict) -> dict:
    """The MAC count without its own (post-folding) parameter count: the manifest keeps one, ``params``."""
    return {k: v for k, v in macs.items() if k != "params"}


def readable_input_dims(details: dict, traced: TracedProgram) -> dict:
    """``details`` with the inputs' symbolic height/width (e.g. ``32*s38``) as what they accept.

    A static program's spatial dims become the export resolution; a dynamic
    one's say their range (``96..1024 step 32``) instead of the exporter's symbol.
    """
    inputs = details.get("inputs")
    if not isinstance(inputs, list):
        return details
    accepted = (f"{traced.min_resolution}..{traced.max_resolution} step {traced.stride}" if traced.dynamic
                else traced.resolution)
    readable = []
    for entry in inputs:
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if isinstance(shape, list) and len(shape) == 4:
            shape = shape[:2] + [accepted if isinstance(d, str) else d for d in shape[2:]]
            entry = {**entry, "shape": shape}
        readable.append(entry)
    return {**details, "inputs": readable}


def check_compiler_options(config: ExportConfig) -> None:
    """Refuse options this version cannot honour, rather than ignore them."""
    resolve(config.passes)
    check_supported(config.target, config.quantize)


def verify_resolutions(config: ExportConfig, traced: TracedProgram) -> list | None:
    """Resolutions the pass manager verifies each pass at, when asked to (ints when square, as before)."""
    if not config.verify_passes:
        return None
    sizes = sorted({traced.size, *(r for r in (second_resolution(traced),) if r)})
    return [s.height if s.square else s for s in sizes]


def second_resolution(traced: TracedProgram) -> Resolution | None:
    """Another size a dynamic artifact accepts (height and width moved by one step), for a second parity/verify point."""
    step = traced.stride * max(1, 64 // traced.stride)
    size = traced.size
    candidates = (Resolution(size.height - step, size.width - step), Resolution(size.height + step, size.width + step))
    return next((c for c in candidates if c.height > 0 and c.width > 0 and traced.accepts(c)), None)


def tolerance_for(target: Target, config: ExportConfig) -> parity.Tolerance:
    # A quantized artifact is held to its quantization's tolerance, whatever the target's own precision.
    base = parity.TOLERANCES[precision_of(config.quantize) or target.precision_for(config)]
    if config.tolerance is not None:
        base = dataclasses.replace(base, max_abs_error=config.tolerance, name=f"{base.name} (--tolerance)")
    return base


def eager_fn(model: torch.nn.Module) -> Callable[[np.ndarray], list[np.ndarray]]:
    """The model in PyTorch, returning every output tensor (flattened as ``torch.export`` orders them)."""
    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.detach().numpy() for t in flatten_outputs(model(torch.from_numpy(x)))]

    return run


def flatten_outputs(outputs) -> list[torch.Tensor]:
    """The tensors of a (nested) tuple/list/dict output, in pytree order (the exported program's output order)."""
    leaves, _ = torch.utils._pytree.tree_flatten(outputs)
    return [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]


def flat_outputs(model: torch.nn.Module, size: Resolution) -> list[torch.Tensor]:
    with torch.no_grad():
        return flatten_outputs(model(example_input(size)))


def first_output(fn: Callable[[np.ndarray], list[np.ndarray]]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: fn(x)[0]


def every_output(runner) -> Callable[[np.ndarray], object]:
    """The runner's call that returns every output, where it has one (else its first-output ``infer``)."""
    return getattr(runner, "infer_all", None) or runner.infer


def model_inputs(config: ExportConfig) -> tuple[ModelReference, ModelSpec, Resolution]:
    """The resolved model reference, its spec (made from the stated input for a user model) and the export size."""
    ref = config.model_ref if config.model_ref is not None else resolve_reference(
        config.model, config.model_kwargs, name=config.label)
    if ref.is_zoo:
        spec = ref.spec
        size = check_zoo_resolution(spec, config.size or Resolution.of(spec.default_resolution))
        if config.resolution_range is not None:
            spec = zoo_spec_over(spec, config.resolution_range)
        if config.mean is not None or config.std is not None:
            spec = dataclasses.replace(spec, mean=config.mean or spec.mean, std=config.std or spec.std)
        return ref, spec, size
    size = config.size
    if size is None:
        shape = ref.example_shape()
        if shape is None or len(shape) != 4:
            raise InputShapeError(f"{ref.describe()} does not say what input it takes",
                                  "give --input-shape 1x3xHxW, or --resolution H (square) or HxW")
        size = Resolution(shape[2], shape[3])
        config = dataclasses.replace(config, input_shape=shape)
    if config.input_shape is not None:
        batch, channels = config.input_shape[:2]
        if batch != 1 or channels != 3:
            raise InputShapeError(f"--input-shape {'x'.join(map(str, config.input_shape))}: mobexport exports "
                                  "batch-1 RGB image models (1x3xHxW)", f"use --input-shape 1x3x{size.height}x{size.width}")
    if config.num_classes is not None:
        raise InvalidOptionError(f"--num-classes applies to zoo models, not to {ref.describe()}",
                                 "give the class count to your factory: --model-kwargs '{\"num_classes\": 10}'")
    if config.dynamic and config.resolution_range is None:
        raise InvalidOptionError(f"--dynamic on {ref.describe()} needs the sizes it takes",
                                 "give --resolution-range LOW..HIGH/STEP, e.g. 128..512/32")
    spec = user_spec(ref, size, config.resolution_range, mean=config.mean or IMAGENET_MEAN,
                     std=config.std or IMAGENET_STD)
    return ref, spec, size


def zoo_spec_over(spec: ModelSpec, sizes: SizeRange) -> ModelSpec:
    """``spec`` with its dynamic range narrowed to ``--resolution-range`` (which must lie within the zoo's)."""
    zoo = spec.resolutions
    if sizes.min < zoo.min or sizes.max > zoo.max or sizes.stride % zoo.stride:
        raise ResolutionError(f"--resolution-range {sizes} is not within {spec.name}'s {zoo}",
                              f"give a range inside {zoo.min}..{zoo.max} with a step that is a multiple of {zoo.stride}")
    return dataclasses.replace(spec, resolutions=ResolutionRange(sizes.min, sizes.max, sizes.stride))


def check_user_input(model: torch.nn.Module, ref: ModelReference, size: Resolution) -> None:
    """Run a user model once on its stated input: a shape it rejects is a one-line error, not a trace failure."""
    try:
        outputs = flat_outputs(model, size)
    except Exception as exc:
        where = traced_failure(exc)
        raise InputShapeError(f"{ref.describe()} rejects input 1x3x{size.height}x{size.width}: "
                              f"{type(exc).__name__}: {first_line(exc)}" + (f" at {where}" if where else ""),
                              "give the input size the model takes with --input-shape or --resolution") from exc
    if not outputs:
        raise ModelReferenceError(f"{ref.describe()} returns no tensor", "its forward must return a tensor, "
                                  "or a tuple/list/dict of tensors")


def untraceable(ref: ModelReference, exc: BaseException) -> None:
    where = traced_failure(exc)
    raise UntraceableModelError(f"torch.export cannot trace {ref.describe()}"
                                + (f" at {where}" if where else "") + f": {first_line(exc)}",
                                "make that line traceable (no data-dependent Python control flow or .item()), "
                                "or export it yourself and pass the .pt2") from exc


def model_facts(spec: ModelSpec, config: ExportConfig, ref: ModelReference | None = None) -> dict:
    if ref is not None and not ref.is_zoo:
        return {"name": ref.label, "family": "user", "source": ref.source, "checkpoint_format": None,
                "reference_params": None, "reference_macs": None,
                "default_resolution": spec.default_resolution, "mean": list(spec.mean), "std": list(spec.std)}
    return {
        "name": spec.name,
        "source": {"kind": "zoo", "name": spec.name},
        "family": spec.family,
        "checkpoint_format": spec.checkpoint_format,
        "num_classes": config.num_classes or spec.num_classes,
        "reference_params": spec.reference_params,
        "reference_macs": spec.reference_macs,
        "default_resolution": spec.default_resolution,
        "mean": list(spec.mean),
        "std": list(spec.std),
    }
