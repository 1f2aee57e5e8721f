"""The README's Python API example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_api_example_runs(tmp_path):
    section = README.read_text().split("### Python API", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "mobexport.export(" in example and "mobexport.load(" in example
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "mobexport-out" / "sequential" / "onnx" / "manifest.json").is_file()


def test_import_mobexport_imports_no_torch():
    code = "import sys, mobexport; assert callable(mobexport.export); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
