"""Command-line parsing shared by every ``mobexport`` command.

:class:`ArgumentParser` turns a usage error into one line that names the
problem and points to ``--help`` (exit status 2), instead of argparse's usage
block. The ``type=`` functions below check every numeric and path option while
the command line is parsed, so bad input is refused before any slow work
(importing torch, tracing, exporting). They are cheap: no heavy imports here.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import NoReturn

from mobexport.errors import EXIT_USAGE


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: ``error: PROBLEM (see 'PROG --help')``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {printable_line(message)} (see '{self.prog} --help')\n")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]):
        # Python < 3.12.3 drops a lone '--' given as an option's value ('--runs=--') and hands the
        # option an empty list, unchecked by its type; refuse it like any other bad value.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, not '--'")
        return super()._get_values(action, arg_strings)


def printable_line(text: str) -> str:
    """``text`` on one line: a value the user typed may hold line breaks or control characters; escape them."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (resolutions, classes, samples, epochs, counts)."""
    value = _number(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def nonneg_int(text: str) -> int:
    """An integer >= 0 (thread counts where 0 means "the runtime's default", seeds)."""
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def finite_nonneg_float(text: str) -> float:
    """A finite number >= 0 (tolerances, seconds); refuses nan and inf."""
    value = _number(text, float, "a number")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts, durations that must elapse)."""
    value = _number(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


def csv_of(kind):
    """A comma-separated list whose items each pass ``kind`` (one of the functions above, or str)."""

    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} is an empty list")
        return [kind(item) for item in items]

    parse.__name__ = f"list of {getattr(kind, '__name__', 'value')}"
    return parse


def existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"directory {text!r} does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    return path


def existing_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    return path


def writable_dir(text: str) -> Path:
    """A directory that exists and is writable, or can be created: the nearest existing ancestor is checked."""
    path = Path(text).expanduser()
    problem = unwritable_reason(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return path


def unwritable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be (created and) written as a directory, or None if it can."""
    probe = path.absolute()
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe != path.absolute() and probe.exists() and not probe.is_dir():
        return f"cannot write '{path}': '{probe}' is a file, not a directory"
    if probe.exists() and not probe.is_dir():
        return f"cannot write '{path}': it is a file, not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"cannot write '{path}': no write permission on '{probe}'"
    return None


def add_verbosity_options(p: argparse.ArgumentParser) -> None:
    """``-v``/``-q``/``--debug``, the same on every command (read by :mod:`mobexport.logs`)."""
    group = p.add_argument_group("output verbosity")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more log output: -v shows warnings from torch and the converters, -vv debug logs")
    group.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    group.add_argument("--debug", action="store_true", help="show tracebacks and debug logs (same as -vv plus tracebacks)")



def _as_argument_error(parse):
    """An argparse ``type=`` from a parser in :mod:`mobexport.shapes`: its one-line problem, without the option name."""

    def convert(text: str):
        from mobexport.errors import InvalidOptionError

        try:
            return parse(text)
        except InvalidOptionError as exc:
            line = exc.one_line()
            raise argparse.ArgumentTypeError(line.split(" ", 1)[1] if line.startswith("--") else line) from None

    convert.__name__ = parse.__name__
    return convert


def _resolution(text: str) -> int | str:
    from mobexport.shapes import Resolution

    return Resolution.of(text).to_json()


def _input_shape(text: str) -> tuple[int, ...]:
    from mobexport.shapes import parse_input_shape

    return parse_input_shape(text)


def _resolution_range(text: str):
    from mobexport.shapes import SizeRange

    return SizeRange.parse(text)


resolution = _as_argument_error(_resolution)
resolution.__doc__ = "An input size: ``224`` (square) or ``256x320`` (height x width)."
input_shape = _as_argument_error(_input_shape)
input_shape.__doc__ = "An image batch shape ``1x3x256x320``."
resolution_range = _as_argument_error(_resolution_range)
resolution_range.__doc__ = "``128..512/32``: dynamic height and width over that range."


def channel_triple(option: str):
    """``--mean``/``--std``: three numbers, one per RGB channel (``0.5,0.5,0.5``)."""
    from mobexport.shapes import parse_channel_triple

    def parse(text: str):
        return parse_channel_triple(text, option)

    parse.__name__ = option.lstrip("-")
    return _as_argument_error(parse)


def json_object(text: str) -> dict:
    """``--model-kwargs '{"num_classes": 10}'``: a JSON object."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object, e.g. '{{\"num_classes\": 10}}'")
    return value
