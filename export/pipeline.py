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
from mobexport.kernels import prepare_for_target
from mobexport.manifest import PARAMS_DEFINITION, RANDOM_WEIGHTS_NOTE, Manifest, sha256_tree, size_of, vcs_revision
from mobexport.models import create_model, get_spec
from mobexport.models.checkpoint import load_checkpoint
from mobexport.models.spec import ModelSpec

from . import parity
from .artifact import Artifact, check_destination, staging_directory
from .macs import count_macs
from .passes import resolve, rewrite
from .quantize.session import QuantizationSession, resolve_config
from .quantize.support import check_supported, precision_of
from .resources import as_resource_error
from .target import Target, get_target
from .trace import TracedProgram, trace
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
        error = as_resource_error(exc, f"the export of {config.model} to {config.target}")
        if error is None:
            raise
        raise error from None


def _export_model(config: ExportConfig, on_step: StepCallback | None) -> Artifact:
    step = on_step or (lambda name: None)
    spec = get_spec(config.model)
    target = get_target(config.target)
    target.require()
    check_compiler_options(config)
    config = resolve_config(config)
    target.check_config(config)
    resolution = spec.check_resolution(spec.default_resolution if config.resolution is None else config.resolution)
    dynamic = target.default_dynamic if config.dynamic is None else config.dynamic
    variant = variant_of(config, resolution, dynamic, config.num_classes or spec.num_classes)
    # Refusals that need no model: before any slow work.
    check_destination(config.artifact_dir())
    check_replaceable(config, variant)
    # Loads the calibration images now: a bad --calib fails before any slow work.
    quant = QuantizationSession.start(config, spec, resolution)
    timings: dict[str, float] = {}
    notes: list[str] = []

    step("build model")
    started = time.perf_counter()
    model = create_model(config.model, num_classes=config.num_classes, resolution=resolution)
    checkpoint = {"sha256": "random-init"}
    if config.checkpoint is None:
        notes.append(RANDOM_WEIGHTS_NOTE)
    else:
        report = load_checkpoint(model, config.checkpoint, config.model, trust=config.trust_checkpoint)
        checkpoint = {"path": str(config.checkpoint), "sha256": report.sha256}
        notes.extend(report.notes)
    model.eval()
    timings["build"] = time.perf_counter() - started

    step("trace")
    started = time.perf_counter()
    traced = trace(model, spec, resolution, dynamic=dynamic)
    if traced.fallback_reason:
        notes.append(f"exported static: dynamic height/width failed ({traced.fallback_reason})")
    timings["trace"] = time.perf_counter() - started

    step("rewrite")
    started = time.perf_counter()
    traced, pass_results = rewrite(traced, resolve(config.passes), verify_resolutions=verify_resolutions(config, traced))
    timings["rewrite"] = time.perf_counter() - started

    step("count MACs")
    macs = count_macs(traced.program, resolution)

    with staging_directory(config.artifact_dir()) as staging:
        if quant.active:
            step("quantize")
        started = time.perf_counter()
        to_lower = quant.quantize_program(traced)
        quantize_s = time.perf_counter() - started
        step("lower")
        started = time.perf_counter()
        to_lower = prepare_for_target(to_lower, config.target, config.target_options)  # fused ops -> target's form
        lowered = target.lower(to_lower, config, staging)
        timings["lower"] = time.perf_counter() - started
        started = time.perf_counter()
        lowered = quant.quantize_artifact(lowered, traced)
        if quant.active:
            timings["quantize"] = quantize_s + time.perf_counter() - started
        traced = lowered.traced or to_lower
        notes.extend(lowered.notes)

        tolerance = tolerance_for(target, config)
        resolutions = [resolution] + [r for r in [second_resolution(traced)] if r]
        runnable, why_not = target.can_run_here_for(config)
        reports: list[parity.ParityReport] = []
        started = time.perf_counter()
        if runnable:
            with target.load(lowered.path, device="cpu") as runner:
                for res in resolutions:
                    step("parity")
                    images = quant.parity_inputs(res, config.parity_samples)
                    inputs, source = images if images else (None, parity.RANDOM_INPUTS)
                    reports.append(parity.measure(eager_fn(model), runner.infer, res, tolerance,
                                                  config.parity_samples, inputs=inputs, inputs_source=source))
                if quant.active:
                    step("accuracy")
                    quant.measure_accuracy(eager_fn(model), runner.infer, config.checkpoint)
        else:
            notes.append(f"parity not measured here: {why_not}")
            if quant.active:
                quant.accuracy_not_measured(why_not)
        timings["parity"] = time.perf_counter() - started
        parity.require(reports, f"{config.target} artifact of {config.model}",
                       explain=getattr(target, "explain_parity_failure", None))

        step("write")
        manifest = Manifest(
            model=model_facts(spec, config),
            target=config.target,
            artifact={
                "file": lowered.path.name,
                "size_bytes": size_of(lowered.path),
                "sha256": sha256_tree(lowered.path),
            },
            resolution={
                "export": resolution,
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


def verify_resolutions(config: ExportConfig, traced: TracedProgram) -> list[int] | None:
    """Resolutions the pass manager verifies each pass at, when asked to."""
    if not config.verify_passes:
        return None
    return sorted({traced.resolution, *(r for r in (second_resolution(traced),) if r)})


def second_resolution(traced: TracedProgram) -> int | None:
    """Another resolution a dynamic artifact accepts, for a second parity/verify point."""
    step = traced.stride * max(1, 64 // traced.stride)
    return next((c for c in (traced.resolution - step, traced.resolution + step) if traced.accepts(c)), None)


def tolerance_for(target: Target, config: ExportConfig) -> parity.Tolerance:
    # A quantized artifact is held to its quantization's tolerance, whatever the target's own precision.
    base = parity.TOLERANCES[precision_of(config.quantize) or target.precision_for(config)]
    if config.tolerance is not None:
        base = dataclasses.replace(base, max_abs_error=config.tolerance, name=f"{base.name} (--tolerance)")
    return base


def eager_fn(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run


def model_facts(spec: ModelSpec, config: ExportConfig) -> dict:
    return {
        "name": spec.name,
        "family": spec.family,
        "checkpoint_format": spec.checkpoint_format,
        "num_classes": config.num_classes or spec.num_classes,
        "reference_params": spec.reference_params,
        "reference_macs": spec.reference_macs,
        "default_resolution": spec.default_resolution,
        "mean": list(spec.mean),
        "std": list(spec.std),
    }
