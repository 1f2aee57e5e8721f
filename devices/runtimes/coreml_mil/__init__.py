"""A reference interpreter for Core ML ML programs (MIL), so Core ML parity is measured on any host.

``load_program`` reads a saved ``.mlpackage`` with coremltools' own reader;
``MILInterpreter`` runs it op by op with the MIL operator reference's
semantics (``ops.py``), fp16 storage emulated; ``layerwise`` names the first
op whose output departs from the PyTorch program's node of the same name.
"""

from .interpreter import EMULATION, NAME, LoadedProgram, MILInterpreter, UnsupportedProgramError, load_program
from .ops import OPS

__all__ = ["EMULATION", "NAME", "OPS", "LoadedProgram", "MILInterpreter", "UnsupportedProgramError", "load_program"]
