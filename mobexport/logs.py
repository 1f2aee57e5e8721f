"""The one logging setup of every ``mobexport`` command.

``setup(verbosity)`` is called once, by :func:`mobexport.cli.main`, before a
command runs. It decides what reaches the user's terminal:

* ``-q`` (-1): errors only.
* default (0): mobexport's warnings; third-party noise (torch, torchao,
  coremltools, executorch, onnxscript ... "Failed to load", "has not been
  tested", deprecation warnings) is dropped.
* ``-v`` (1): mobexport's info, and the third-party warnings.
* ``-vv`` / ``--debug`` (2): debug logs of mobexport, third-party info.

Python ``warnings`` go through logging (``logging.captureWarnings``), so they
obey the same levels. torch installs its own handler and levels when it is
imported; a one-shot import hook puts ours back right after, wherever in a
command torch happens to be imported first.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2

# Loggers of the libraries mobexport drives. Their warnings at import time and
# during conversion are about their own environment, not the user's command.
THIRD_PARTY = ("torch", "torchao", "coremltools", "executorch", "onnx", "onnxscript", "onnxruntime", "onnx_ir",
               "matplotlib", "PIL", "sklearn", "numba", "urllib3", "py.warnings",
               "litert_torch", "ai_edge_litert", "ai_edge_quantizer", "absl", "jax", "transformers")

_OURS = ("mobexport", "__main__")
_verbosity = NORMAL
_configured = False


def verbosity_of(verbose: int = 0, quiet: bool = False, debug: bool = False) -> int:
    """The verbosity the ``-v``/``-q``/``--debug`` options ask for."""
    if debug:
        return DEBUG
    if quiet:
        return QUIET
    return min(verbose, DEBUG)


def verbosity_from_argv(argv: list[str]) -> int:
    """Read ``-v``/``-vv``/``-q``/``--debug`` from a raw command line (before ``--``), for the dispatcher."""
    verbose, quiet, debug = 0, False, False
    for arg in argv:
        if arg == "--":
            break
        if arg == "--debug":
            debug = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg == "--verbose":
            verbose += 1
        elif len(arg) > 1 and arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) == {"v"}:
            verbose += len(arg) - 1
    return verbosity_of(verbose, quiet, debug)


def current_verbosity() -> int:
    return _verbosity


def _levels(verbosity: int) -> tuple[int, int]:
    """(level of mobexport's loggers, level of third-party loggers)."""
    return {
        QUIET: (logging.ERROR, logging.ERROR),
        NORMAL: (logging.WARNING, logging.ERROR),
        VERBOSE: (logging.INFO, logging.WARNING),
        DEBUG: (logging.DEBUG, logging.INFO),
    }[max(QUIET, min(verbosity, DEBUG))]


def setup(verbosity: int = NORMAL) -> None:
    """Configure logging for a command run at ``verbosity``; call again to change it."""
    global _verbosity, _configured
    from rich.logging import RichHandler

    from mobexport.consoles import stderr_console

    _verbosity = verbosity
    ours, theirs = _levels(verbosity)
    console = stderr_console()
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_time=False, show_path=verbosity >= DEBUG,
                                               markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # a log file or a pipe: plain lines, not padded to a width
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=theirs, handlers=[handler], force=True)
    logging.captureWarnings(True)
    for name in _OURS:
        logging.getLogger(name).setLevel(ours)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(theirs)
    _configured = True
    if "torch" in sys.modules:
        _tame_torch()
    else:
        _install_torch_hook()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (redirections and test captures swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def ensure_setup(debug: bool = False) -> None:
    """For a command entered directly (not through :func:`mobexport.cli.main`): set up once, never lower it."""
    if not _configured or (debug and _verbosity < DEBUG):
        setup(DEBUG if debug else _verbosity)


def _tame_torch() -> None:
    """Undo torch's own log handler and levels (set when it is imported) so ours decide."""
    _, theirs = _levels(_verbosity)
    torch_logger = logging.getLogger("torch")
    for handler in list(torch_logger.handlers):
        torch_logger.removeHandler(handler)
    torch_logger.propagate = True
    torch_logger.setLevel(theirs)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("torch.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)  # inherit from "torch"
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


class _AfterTorchImport(importlib.abc.MetaPathFinder):
    """Finds ``torch`` like the normal finders do, and runs :func:`_tame_torch` once it has executed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch":
            return None
        _remove_torch_hook()
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _tame_torch()

        spec.loader.exec_module = exec_module
        return spec


def _install_torch_hook() -> None:
    if not any(isinstance(finder, _AfterTorchImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterTorchImport())


def _remove_torch_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterTorchImport)]
