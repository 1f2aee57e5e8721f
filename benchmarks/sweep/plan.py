"""What a sweep will measure: models x targets x resolutions (x thread counts), checked up front.

Every mistake that would make a whole sweep useless (an unknown model, a
resolution a model refuses, a target that is not installed, a quantization
mode the pipeline cannot do) is refused before the first export, with the
usual one-line error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mobexport.config import ExportConfig
from mobexport.devices.device import EAGER
from mobexport.errors import BenchmarkError

from mobexport.benchmarks.results.records import CaseKey


@dataclass
class SweepPlan:
    models: list[str]
    targets: list[str]
    resolutions: list[int | str]  # square sizes and "HxW" sizes, mixed
    device: str = "local"
    quantize: str = "none"
    passes: str = "default"
    batch: int = 1
    threads: int | list[int] = 0  # one count, or the threads axis (e.g. [1, 4])
    baseline: str | None = None
    seed: int | None = 0          # case order shuffle; None keeps the listed order
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        from mobexport.benchmarks.sweep.artifacts import DEFAULT_TARGET_OPTIONS
        from mobexport.export.pipeline import check_compiler_options
        from mobexport.export.targets import get_target
        from mobexport.models import get_spec  # imports torch: only once the cheap checks have passed

        if not self.models or not self.targets or not self.resolutions:
            raise BenchmarkError("a sweep needs at least one model, target and resolution",
                                 "give --models, --targets and --resolutions, or --suite NAME")
        if self.batch < 1:
            raise BenchmarkError(f"--batch {self.batch} is not a batch size", "use --batch 1 or more")
        for threads in self.thread_counts:
            if threads < 0:
                raise BenchmarkError(f"--threads {threads} is negative", "use 0 for the runtime's default")
        from mobexport.models.references import check_zoo_resolution
        from mobexport.shapes import Resolution

        for name in self.models:
            if ":" in name or name.endswith(".pt2"):
                continue  # a model reference: its export checks the sizes it takes
            spec = get_spec(name)
            for resolution in self.resolutions:
                check_zoo_resolution(spec, Resolution.of(resolution))
        for target in self.targets:
            if target == EAGER:
                continue
            if self.batch != 1:
                raise BenchmarkError(f"--batch {self.batch} with --targets {target}: a sweep exports static "
                                     "artifacts for batch 1", f"use --batch 1, or --targets {EAGER} for batches")
            config = ExportConfig(model=self.models[0], target=target, passes=self.passes, quantize=self.quantize,
                                  dynamic=False, target_options=dict(DEFAULT_TARGET_OPTIONS))
            exporter = get_target(target)
            exporter.require()
            exporter.check_config(config)
            check_compiler_options(config)
        if self.baseline is not None and self.baseline not in self.models:
            raise BenchmarkError(f"baseline '{self.baseline}' is not one of the swept models",
                                 f"add it to --models or choose one of: {', '.join(self.models)}")

    @property
    def thread_counts(self) -> list[int]:
        """The threads axis: each count once, in the order given."""
        counts = self.threads if isinstance(self.threads, (list, tuple)) else [self.threads]
        return list(dict.fromkeys(int(t) for t in counts))

    def cases(self) -> list[CaseKey]:
        """Every case, shuffled with ``seed`` (drift and heat then spread over all models)."""
        keys = [
            CaseKey(model=m, target=t, quantization=self.quantize if t != EAGER else "none",
                    passes=self.passes if t != EAGER else "none", device=self.device, resolution=r,
                    batch=self.batch, threads=n)
            for m in self.models for t in self.targets for r in self.resolutions for n in self.thread_counts
        ]
        if self.seed is not None:
            random.Random(self.seed).shuffle(keys)
        return keys
