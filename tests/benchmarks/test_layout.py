"""Import direction of the benchmark packages: the compiler never imports benchmarks, product code never a study."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"mobexport": "mobexport", "models": "mobexport.models", "export": "mobexport.export",
            "kernels": "mobexport.kernels", "devices": "mobexport.devices", "benchmarks": "mobexport.benchmarks"}


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    return ".".join([PACKAGES[folder], *rest]).removesuffix(".__init__")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved), at any depth in the file."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["export", "models", "devices", "kernels"])
def test_the_compiler_and_runtimes_never_import_benchmarks(folder):
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.startswith("mobexport.benchmarks"))
                 for p in sources(folder)}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_product_code_never_imports_a_study():
    product = [p for p in sources("mobexport", "models", "export", "kernels", "devices", "benchmarks")
               if "studies" not in p.relative_to(ROOT).parts]
    offenders = {str(p.relative_to(ROOT)) for p in product
                 if any(m.startswith("mobexport.benchmarks.studies") for m in imported_modules(p))}
    assert offenders == set()


def test_the_resolver_sees_relative_imports():
    """The checks above would pass vacuously if relative imports were not followed."""
    assert "mobexport.benchmarks.sweep.run.run_sweep" in imported_modules(ROOT / "benchmarks" / "sweep" / "cli.py")
    assert "mobexport.benchmarks.results.records" in imported_modules(ROOT / "benchmarks" / "results" / "curves.py")
