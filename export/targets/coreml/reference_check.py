"""The reference interpreter's part in a Core ML export: which package it checks, what it records, what it blames.

Kept per lowered package by the Core ML target: the saved program is read once
(again if the package changes on disk), the manifest's ``parity_runtime`` says
who measured parity and what the interpreter emulates, and a failing parity
is explained by the first MIL op departing from the converted PyTorch program.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

INPUT_NAME = "input"
FP16_SMALLEST_NORMAL = 2.0 ** -14  # 6.1e-5


class ReferenceCheck:
    """The MIL reference interpreter for one lowered package, and what it records in ``details``.

    The program is read when ``lower`` saves the package and read again if the
    package changes on disk afterwards (``--quantize int8-weights`` compresses
    it in place), so what is verified is what is shipped.
    """

    def __init__(self, path: Path, traced, precision: str, details: dict):
        self.path = Path(path)
        self.traced = traced
        self.precision = precision
        self.details = details
        self._interpreter = None
        self._fingerprint = None

    @classmethod
    def prepare(cls, path: Path, traced, precision: str, details: dict,
                notes: list[str]) -> "ReferenceCheck":
        """Load the saved program; say in ``details``/``notes`` who measures parity and what it emulates."""
        from mobexport.devices.runtimes.coreml_mil import EMULATION, NAME

        check = cls(path, traced, precision, details)
        interpreter = check.interpreter
        if interpreter.unsupported:
            notes.append(f"cannot verify: op {', '.join(interpreter.unsupported)} is not covered by the "
                         f"Core ML reference interpreter")
        elif sys.platform != "darwin":
            notes.append(f"Core ML parity measured by {NAME} (the saved MIL program run op by op here; it "
                         f"{EMULATION})")
        return check

    def _files(self) -> tuple:
        return tuple(sorted((str(f.relative_to(self.path)), f.stat().st_size, f.stat().st_mtime_ns)
                            for f in self.path.rglob("*") if f.is_file()))

    @property
    def interpreter(self):
        from mobexport.devices.runtimes.coreml_mil import EMULATION, NAME, MILInterpreter, load_program

        fingerprint = self._files()
        if self._interpreter is None or fingerprint != self._fingerprint:
            started = time.perf_counter()
            self._interpreter = MILInterpreter(load_program(self.path))
            self._fingerprint = fingerprint
            primary = sys.platform != "darwin"
            self.details["parity_runtime"] = {
                "name": NAME if primary else "coreml-mlmodel-predict",
                "second_opinion": None if primary else NAME,
                "reference_interpreter": {
                    "emulation": EMULATION,
                    "fp16_program": self._interpreter.fp16,
                    "unsupported_ops": self._interpreter.unsupported,
                    # Reading the saved program; running it counts under timings_s.parity.
                    "load_s": round(time.perf_counter() - started, 3),
                },
            }
        return self._interpreter

    def record_agreement(self, agreement: dict) -> None:
        """On macOS: how Core ML's own prediction and the reference interpreter agreed on the parity inputs."""
        from mobexport.devices.runtimes.coreml_mil import NAME

        self.details.setdefault("parity_runtime", {})[f"agreement_with_{NAME}"] = agreement

    def explain(self, report) -> str | None:
        """Why an fp16 program cannot match (logits below fp16's range), else the first departing op."""
        reference_scale = report.max_abs_error / report.relative_max_error if report.relative_max_error else None
        if self.precision == "fp16" and reference_scale is not None and reference_scale < FP16_SMALLEST_NORMAL:
            return (f"PyTorch's logits (max |logit| {reference_scale:.1e}) are below fp16's smallest normal "
                    f"{FP16_SMALLEST_NORMAL:.1e}, so an fp16 program flushes them (random-init weights?): "
                    "export with --precision fp32, or with a trained --checkpoint")
        return self.first_departure(report)

    def first_departure(self, report) -> str | None:
        from mobexport.export import parity
        from .layerwise import first_departure

        # The converter read the program after an empty decomposition table; its node names are those.
        program = self.traced.program
        with contextlib.suppress(Exception):
            program = program.run_decompositions({})
        inputs = parity.random_inputs(report.resolution, min(report.samples, 2))
        for x in inputs:
            found = first_departure(self.interpreter, program, x[None], INPUT_NAME, self.precision)
            if found is not None:
                return found.describe()
        return None
