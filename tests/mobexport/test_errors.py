"""errors.first_line: the one way an exception becomes one line of a message or a record."""

from __future__ import annotations

from mobexport.errors import first_line


def test_first_line_keeps_the_first_line_cut_to_the_limit():
    exc = RuntimeError("  lowering failed: op aten::foo\nTraceback-like detail\nmore  ")
    assert first_line(exc) == "lowering failed: op aten::foo"
    assert first_line(RuntimeError("x" * 500)) == "x" * 300
    assert first_line(RuntimeError("x" * 500), 10) == "x" * 10


def test_first_line_names_the_type_when_asked_or_when_there_is_no_text():
    assert first_line(ValueError("bad\nworse"), with_type=True) == "ValueError: bad"
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert first_line(MemoryError(), with_type=True) == "MemoryError"
