"""Which input sizes an artifact accepts, checked before a runtime sees them.

A static artifact takes exactly one height/width (and one batch size); a
dynamic one takes ``min..max`` in steps of ``stride``. Runtimes report a
wrong size in their own words ("error 0x10", a failed resize, a crash), so a
runner checks the input first and raises a one-line :class:`ResolutionError`
that names what the artifact does accept.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobexport.errors import ResolutionError


@dataclass(frozen=True)
class AcceptedInputs:
    """Spatial sizes ``min..max`` step ``stride`` for height and width each; ``batch`` None = any.

    A static artifact of a rectangular input has ``min == max`` = its height and ``width`` its width.
    """

    min: int
    max: int
    stride: int = 1
    batch: int | None = 1
    width: int | None = None  # static only: the width when it differs from the height

    @classmethod
    def static(cls, size: int, batch: int | None = 1, width: int | None = None) -> "AcceptedInputs":
        return cls(size, size, 1, batch, None if width in (None, size) else width)

    @classmethod
    def from_manifest(cls, manifest: dict | None, batch: int | None = 1) -> "AcceptedInputs | None":
        """What the manifest's ``resolution`` section says, or None without one."""
        res = (manifest or {}).get("resolution")
        if not res:
            return None
        if res.get("dynamic"):
            return cls(int(res["min"]), int(res["max"]), int(res["stride"]), batch)
        return cls.static(int(res.get("height") or res["export"]), batch, width=res.get("width"))

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def accepts(self, height: int, width: int) -> bool:
        if self.width is not None:
            return height == self.min and width == self.width

        def ok(size: int) -> bool:
            return self.min <= size <= self.max and (size - self.min) % self.stride == 0

        return ok(height) and ok(width)

    def describe(self) -> str:
        if not self.dynamic:
            return f"{self.min}x{self.width or self.min} only (a static artifact)"
        return f"{self.min}..{self.max} step {self.stride}"

    def check(self, shape: tuple[int, ...], what: str = "this artifact") -> None:
        """Raise :class:`ResolutionError` unless ``shape`` ([N, 3, H, W]) is accepted."""
        if len(shape) != 4 or shape[1] != 3:
            raise ResolutionError(f"{what} takes [N, 3, H, W] images, got shape {tuple(shape)}")
        n, _, h, w = (int(s) for s in shape)
        if not self.accepts(h, w):
            wanted = h if h == w else f"{h}x{w}"
            hint = (f"re-export it with --resolution {wanted}, or with --dynamic" if not self.dynamic
                    else f"use a size in {self.describe()}")
            raise ResolutionError(f"{what} accepts {self.describe()}, got {h}x{w}", hint)
        if self.batch is not None and n != self.batch:
            raise ResolutionError(f"{what} takes batch {self.batch}, got {n}", f"feed {self.batch} image(s) per call")
