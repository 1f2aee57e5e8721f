"""The Python API: ``mobexport.export``, ``mobexport.bench`` and ``mobexport.load``.

The same options, with the same names and defaults, as the command line
(``--input-shape`` is ``input_shape=``, ``--backend`` is ``backend=``), and the
same :class:`~mobexport.errors.MobexportError` types. ``model`` is anything
``--model`` takes (a zoo name, ``package.module:factory``,
``path/to/file.py:factory``, a ``.pt2`` file) or, from Python, an
``nn.Module`` instance or a ``torch.export.ExportedProgram``::

    import mobexport
    artifact = mobexport.export(MyNet(), "onnx", resolution="256x320", out="out")
    with mobexport.load(artifact.directory) as model:
        logits = model(images)                # numpy in, numpy out
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mobexport.config import DEFAULT_OUT_DIR, ExportConfig
from mobexport.errors import BenchmarkError, TargetOptionError

# The command line's target options and defaults (``mobexport export --help``, "target options").
TARGET_OPTION_DEFAULTS: dict[str, Any] = {
    "backend": "xnnpack",
    "precision": None,
    "deployment_target": "iOS16",
    "image_input": False,
    "class_labels": None,
    "build_engine": True,
    "int8_activations": "int8",
}


def target_options(options: dict) -> dict:
    """The CLI's target options with ``options`` over its defaults; an unknown name is refused in one line."""
    unknown = sorted(set(options) - set(TARGET_OPTION_DEFAULTS))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(TARGET_OPTION_DEFAULTS), n=1)
        raise TargetOptionError(f"unknown target option {unknown[0]!r}",
                                f"did you mean {close[0]!r}?" if close
                                else f"known: {', '.join(TARGET_OPTION_DEFAULTS)}")
    merged = {**TARGET_OPTION_DEFAULTS, **options}
    if isinstance(merged["build_engine"], str):  # the CLI spells it yes/no
        merged["build_engine"] = merged["build_engine"] == "yes"
    if merged["class_labels"] is not None:
        merged["class_labels"] = Path(merged["class_labels"])
    return merged


def export(
    model,
    target: str,
    *,
    input_shape: str | Sequence[int] | None = None,
    resolution: int | str | tuple[int, int] | None = None,
    resolution_range: str | tuple[int, int, int] | None = None,
    checkpoint: str | Path | None = None,
    trust_checkpoint: bool = False,
    num_classes: int | None = None,
    model_kwargs: dict | None = None,
    name: str | None = None,
    passes: str = "default",
    quantize: str = "none",
    calib: str | Path | None = None,
    calib_samples: int = 128,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dynamic: bool | None = None,
    tolerance: float | None = None,
    parity_samples: int = 8,
    explain: bool = False,
    verify_passes: bool = False,
    force: bool = False,
    out: str | Path = DEFAULT_OUT_DIR,
    **target_opts,
):
    """Export ``model`` to ``target`` with measured parity; returns the :class:`Artifact` (complete on disk).

    The artifact goes to ``out/NAME/TARGET`` where NAME is the zoo name, the
    factory's name, the ``.pt2`` file's stem, or (an instance) ``name`` or its
    class name in snake case. ``target_opts`` are the CLI's target options:
    ``backend``, ``precision``, ``deployment_target``, ``image_input``,
    ``class_labels``, ``build_engine``, ``int8_activations``.
    """
    from mobexport.models.references import resolve

    model_arg = model if isinstance(model, (str, Path)) else None
    ref = resolve(model, model_kwargs, name=name)
    config = ExportConfig(
        model=str(model_arg) if model_arg is not None else ref.label,
        target=target,
        resolution=resolution,
        input_shape=input_shape,
        resolution_range=resolution_range,
        checkpoint=Path(checkpoint) if checkpoint is not None else None,
        trust_checkpoint=trust_checkpoint,
        num_classes=num_classes,
        model_kwargs=model_kwargs,
        out_dir=Path(out),
        dynamic=dynamic,
        passes=passes,
        explain=explain,
        verify_passes=verify_passes,
        quantize=quantize,
        calib_dir=Path(calib) if calib is not None else None,
        calib_samples=calib_samples,
        mean=mean,
        std=std,
        tolerance=tolerance,
        parity_samples=parity_samples,
        target_options=target_options(target_opts),
        force=force,
        model_ref=ref,
        label=ref.label,
    )
    from mobexport.export.pipeline import export_model

    return export_model(config)


@dataclass
class LoadedArtifact:
    """An artifact opened to run: its directory, manifest and a runner (``model(x)`` -> outputs).

    ``model(x)`` returns one array for a one-output model, else a list (in the
    flattened order of the model's outputs) where the target's runner can give
    every output. Use it as a context manager, or call :meth:`close`.
    """

    artifact: Any
    runner: Any

    @property
    def manifest(self):
        return self.artifact.manifest

    @property
    def directory(self) -> Path:
        return self.artifact.directory

    @property
    def path(self) -> Path:
        return self.artifact.path

    def __call__(self, x: np.ndarray):
        x = np.ascontiguousarray(x, dtype=np.float32)
        infer_all = getattr(self.runner, "infer_all", None)
        if infer_all is None:
            return self.runner.infer(x)
        outputs = infer_all(x)
        return outputs[0] if len(outputs) == 1 else outputs

    def close(self) -> None:
        self.runner.__exit__(None, None, None)

    def __enter__(self) -> "LoadedArtifact":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(artifact_dir: str | Path, device: str = "cpu") -> LoadedArtifact:
    """Open the artifact in ``artifact_dir`` (its directory, manifest.json or main file), ready to run here."""
    import dataclasses

    from mobexport.devices.runtimes import open_runner
    from mobexport.export.artifact import Artifact

    artifact = Artifact.open(Path(artifact_dir))
    # The runtime is chosen by the artifact kind the manifest records; one that cannot run here says why.
    runner = open_runner(artifact.path, dataclasses.asdict(artifact.manifest), device=device)
    runner.__enter__()
    return LoadedArtifact(artifact, runner)


def bench(
    models: Iterable,
    targets: Iterable[str],
    resolutions: Iterable[int | str],
    device: str = "local",
    *,
    out: str | Path = "bench-out",
    baseline: str | None = None,
    quantize: str = "none",
    passes: str = "default",
    batch: int = 1,
    threads: int = 0,
    seed: int | None = 0,
    min_time: float | None = None,
    min_iters: int | None = None,
    max_iters: int | None = None,
    warmup_time: float | None = None,
    cluster: str | None = None,
    artifact_store: str | Path | None = None,
):
    """A resolution sweep, as ``mobexport bench`` runs it: records, curves.csv, summary.md and plots in ``out``.

    ``cluster`` (``"ray"``, ``"ray://HOST:PORT"`` or ``"HOST:PORT"``) runs it on a Ray
    cluster as ``bench --cluster`` does; ``device`` then lists cluster devices
    (``"adb:SERIAL,local:HOST"``) and ``artifact_store`` is the shared export store.

    ``models`` are zoo names or model references (``file.py:factory``, ...; each
    exported at every size in ``resolutions``); a resolution list may mix square
    and ``HxW`` sizes. Returns the sweep's
    :class:`BenchRecord` list (every record in ``out/results.jsonl``).
    """
    from mobexport.benchmarks.sweep.cli import DEFAULT_BASELINE, write_outputs
    from mobexport.benchmarks.sweep.plan import SweepPlan
    from mobexport.benchmarks.results.records import read_records
    from mobexport.benchmarks.sweep.run import RESULTS_NAME, run_sweep
    from mobexport.consoles import stderr_console
    from mobexport.devices.measure import MeasurePolicy
    from mobexport.devices.registry import DeviceOptions, get_device
    from mobexport.shapes import Resolution

    models = [str(m) for m in models]
    sizes = [Resolution.of(r).to_json() for r in resolutions]
    if not models or not list(targets) or not sizes:
        raise BenchmarkError("a sweep needs at least one model, target and resolution",
                             "e.g. mobexport.bench(['mobile_former_26m'], ['onnx'], [96, 128])")
    defaults = MeasurePolicy()
    policy = MeasurePolicy(
        min_time_s=defaults.min_time_s if min_time is None else float(min_time),
        min_iters=defaults.min_iters if min_iters is None else int(min_iters),
        max_iters=defaults.max_iters if max_iters is None else int(max_iters),
        warmup_time_s=defaults.warmup_time_s if warmup_time is None else float(warmup_time),
    )
    if baseline is None and DEFAULT_BASELINE in models:
        baseline = DEFAULT_BASELINE
    plan = SweepPlan(models=models, targets=list(targets), resolutions=sizes, baseline=baseline, quantize=quantize,
                     passes=passes, batch=batch, threads=threads, seed=seed)
    if cluster is not None:  # Ray is imported only here
        from mobexport.benchmarks.cluster.bench import run_on_cluster

        run_on_cluster(cluster, plan, policy, DeviceOptions(), device, "mobexport bench", Path(out),
                       Path(artifact_store) if artifact_store is not None else None)
        return read_records(Path(out) / RESULTS_NAME)
    dev = get_device(device, DeviceOptions())
    dev.require()
    plan.device = dev.name
    plan.validate()
    out_dir = Path(out)
    console = stderr_console()
    with dev:
        try:
            run_sweep(plan, dev, out_dir, policy, console=console)
        finally:
            write_outputs(out_dir, plan.baseline, "mobexport bench", policy, console)
    return read_records(out_dir / RESULTS_NAME)
