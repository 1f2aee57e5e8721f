"""Input sizes as users type them: ``224``, ``256x320``, ``1x3x256x320``, ``128..512/32``.

Plain values and parsers, no torch: the command line checks them before any
slow import, and the Python API takes the same spellings (or ints and tuples).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mobexport.errors import InvalidOptionError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_NOT_A_SIZE = "must be a positive integer (square) or HEIGHTxWIDTH of positive integers"


@dataclass(frozen=True, order=True)
class Resolution:
    """An image's height and width. Square sizes print as one number, others as ``HxW``."""

    height: int
    width: int

    @classmethod
    def of(cls, value: "Resolution | int | str | tuple | list") -> "Resolution":
        """A resolution from ``224``, ``"224"``, ``"256x320"``, ``(256, 320)`` or a Resolution."""
        if isinstance(value, Resolution):
            return value
        if isinstance(value, bool):
            raise InvalidOptionError(f"--resolution {value!r} {_NOT_A_SIZE}", "e.g. --resolution 224 or 256x320")
        if isinstance(value, int):
            return cls._checked(value, value, str(value))
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return cls._checked(int(value[0]), int(value[1]), f"{value[0]}x{value[1]}")
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", value)
            if match:
                h = int(match.group(1))
                return cls._checked(h, int(match.group(2)) if match.group(2) else h, value.strip())
        raise InvalidOptionError(f"--resolution {value!r} {_NOT_A_SIZE}",
                                 "give one number for square images (224) or HEIGHTxWIDTH (256x320)")

    @classmethod
    def _checked(cls, height: int, width: int, typed: str) -> "Resolution":
        if height < 1 or width < 1:
            raise InvalidOptionError(f"--resolution {typed} {_NOT_A_SIZE}", "e.g. --resolution 224 or 256x320")
        return cls(height, width)

    @property
    def square(self) -> bool:
        return self.height == self.width

    def input_shape(self, batch: int = 1, channels: int = 3) -> tuple[int, int, int, int]:
        return (batch, channels, self.height, self.width)

    def to_json(self) -> int | str:
        """What records and manifests store: an int when square (as before), ``"HxW"`` otherwise."""
        return self.height if self.square else f"{self.height}x{self.width}"

    def __str__(self) -> str:
        return str(self.height) if self.square else f"{self.height}x{self.width}"


def parse_input_shape(text: "str | tuple | list") -> tuple[int, ...]:
    """``1x3x256x320`` (or a tuple) -> ``(1, 3, 256, 320)``: an image batch, NCHW, every dim positive."""
    if isinstance(text, (tuple, list)):
        dims = tuple(text)
        typed = "x".join(str(d) for d in dims)
    else:
        typed = str(text).strip()
        parts = re.split(r"\s*[xX,]\s*", typed)
        dims = tuple(int(p) if p.isdigit() else p for p in parts)
    if len(dims) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise InvalidOptionError(f"--input-shape {typed!r} is not an image batch shape",
                                 "give N x C x H x W with positive numbers, e.g. --input-shape 1x3x256x320")
    return dims


@dataclass(frozen=True)
class SizeRange:
    """``--resolution-range LOW..HIGH/STEP``: height and width each dynamic over that range."""

    min: int
    max: int
    stride: int

    @classmethod
    def parse(cls, value: "SizeRange | str | tuple") -> "SizeRange":
        if isinstance(value, SizeRange):
            return value
        if isinstance(value, (tuple, list)) and len(value) == 3:
            low, high, stride = value
            typed = f"{low}..{high}/{stride}"
        else:
            typed = str(value).strip()
            match = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)\s*(?:/\s*(\d+))?", typed)
            if not match:
                raise InvalidOptionError(f"--resolution-range {typed!r} is not LOW..HIGH/STEP",
                                         "e.g. --resolution-range 128..512/32")
            low, high, stride = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
        if not (isinstance(low, int) and isinstance(high, int) and isinstance(stride, int)) \
                or stride < 1 or low < 1 or high < low or low % stride or high % stride:
            raise InvalidOptionError(f"--resolution-range {typed} needs 1 <= LOW <= HIGH, both multiples of STEP",
                                     "e.g. --resolution-range 128..512/32")
        return cls(low, high, stride)

    def __contains__(self, size: int) -> bool:
        return self.min <= size <= self.max and size % self.stride == 0

    def __str__(self) -> str:
        return f"{self.min}..{self.max}/{self.stride}"


def parse_channel_triple(value: "str | tuple | list", option: str) -> tuple[float, float, float]:
    """``--mean 0.5,0.5,0.5`` -> three finite floats (``--std`` also refuses 0)."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    else:
        parts = list(value)
    try:
        numbers = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != 3 or not all(math.isfinite(n) for n in numbers) \
            or (option == "--std" and not all(n > 0 for n in numbers)):
        what = "three positive numbers" if option == "--std" else "three numbers"
        raise InvalidOptionError(f"{option} {value!r} is not {what} (one per RGB channel)",
                                 f"e.g. {option} {','.join(map(str, IMAGENET_STD if option == '--std' else IMAGENET_MEAN))}")
    return numbers


def side(value: "Resolution | int | str") -> float:
    """A size's position on a resolution axis: the side of the square with as many pixels (``sqrt(H*W)``).

    Sweeps may mix square and ``HxW`` sizes; curves, sorting and crossovers use
    this one number, and the axis labels say which size each point is.
    """
    size = Resolution.of(value)
    return size.height if size.square else math.sqrt(size.height * size.width)
