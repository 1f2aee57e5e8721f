"""A probe of every numeric option of every command: any text gives a checked value or one line, exit 2.

Hypothesis feeds each option integers, floats (nan, inf, negative, huge), and
arbitrary text. Parsing must either accept a value that meets the option's
contract, or refuse with a single ``error: ... (see '... --help')`` line and
status 2: never a traceback, never an out-of-range value reaching the work.
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobexport.cli import export_parser
from mobexport.config import ExportConfig

# (command's parser factory, option, contract an accepted value must meet)
POSITIVE = lambda v: isinstance(v, int) and v >= 1  # noqa: E731
NONNEG = lambda v: isinstance(v, int) and v >= 0  # noqa: E731
NONNEG_LIST = lambda v: isinstance(v, list) and len(v) >= 1 and all(NONNEG(x) for x in v)  # noqa: E731
FINITE_NONNEG = lambda v: isinstance(v, float) and math.isfinite(v) and v >= 0  # noqa: E731
FINITE_POSITIVE = lambda v: isinstance(v, float) and math.isfinite(v) and v > 0  # noqa: E731
FRACTION = lambda v: isinstance(v, float) and 0 <= v < 1  # noqa: E731


def bench_parser():
    from mobexport.benchmarks.sweep.cli import parser

    return parser()


def regress_parser():
    from mobexport.benchmarks.regress.cli import parser

    return parser()


def profile_parser():
    from mobexport.benchmarks.profile.cli import parser

    return parser()


OPTIONS = [
    (export_parser, "--resolution", POSITIVE),
    (export_parser, "--num-classes", POSITIVE),
    (export_parser, "--tolerance", FINITE_NONNEG),
    (export_parser, "--parity-samples", POSITIVE),
    (export_parser, "--calib-samples", POSITIVE),
    (bench_parser, "--batch", POSITIVE),
    (bench_parser, "--threads", NONNEG_LIST),  # a threads axis: 1,4
    (bench_parser, "--min-time", FINITE_POSITIVE),
    (bench_parser, "--min-iters", POSITIVE),
    (bench_parser, "--max-iters", POSITIVE),
    (bench_parser, "--warmup-time", FINITE_NONNEG),
    (bench_parser, "--case-timeout", FINITE_POSITIVE),
    (bench_parser, "--export-jobs", POSITIVE),
    (bench_parser, "--cooldown-c", FINITE_POSITIVE),
    (bench_parser, "--cooldown-poll-s", FINITE_POSITIVE),
    (regress_parser, "--min-effect", FRACTION),
    (regress_parser, "--confidence", FRACTION),
    (regress_parser, "--resamples", POSITIVE),
    (profile_parser, "--runs", POSITIVE),
    (profile_parser, "--warmup", NONNEG),
    (profile_parser, "--threads", POSITIVE),
]

values = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e999", "0", "-0", "0.0", "", " ", "1,2", "10%", "0x10",
                     "1_000", "١٢"]),
    st.text(max_size=12),
)

REQUIRED = {export_parser: ["--model", "m", "--target", "onnx"]}


def parse(factory, option, text):
    """(namespace or None, status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return factory().parse_args([*REQUIRED.get(factory, []), f"{option}={text}"]), 0, err.getvalue()
        except SystemExit as exc:
            return None, exc.code, err.getvalue()


@pytest.mark.parametrize("factory, option, contract", OPTIONS, ids=[f"{f.__name__}{o}" for f, o, _ in OPTIONS])
@settings(max_examples=60, deadline=None)
@given(text=values)
def test_any_value_is_checked_or_refused_in_one_line(factory, option, contract, text):
    args, status, err = parse(factory, option, text)
    if args is None:
        lines = err.splitlines()
        assert status == 2 and len(lines) == 1, err
        assert lines[0].startswith("error: argument ") and "--help" in lines[0], err
        return
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    assert contract(value), f"{option}={text!r} accepted as {value!r}"
    if factory is export_parser:  # what the CLI accepted, the config accepts too
        ExportConfig(model="m", target="onnx", **{option.lstrip("-").replace("-", "_"): value})


@settings(max_examples=40, deadline=None)
@given(name=st.text(min_size=1, max_size=20).filter(lambda t: not t.startswith("-")))
def test_any_command_or_model_name_gets_one_line(name):
    """An unknown command or model name, whatever characters it holds, is one error line with exit 2."""
    from mobexport.cli import COMMANDS, main

    if name in COMMANDS or name == "help":
        return
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([name])
    assert status == 2 and len(err.getvalue().splitlines()) == 1, err.getvalue()
