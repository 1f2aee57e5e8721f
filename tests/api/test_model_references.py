"""``--model`` as a reference: every bad one is one line, exit status 2, nothing written.

Most cases are refused before tracing; the untraceable model is traced (a
tiny one). A ``.pt2`` written by ``torch.export.save`` round-trips.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from mobexport.cli import main
from mobexport.models.references import ModelReferenceError, resolve

from .conftest import load_factory

BAD = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = self.conv(x)
            if y.sum() > 0:
                return y * 2
            return y

    class FixedSize(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 16 * 16, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    def branchy():
        return Branchy()

    def fixed_size():
        return FixedSize()

    def raises():
        raise ValueError("no weights for width 3\\nsecond line")

    def not_a_module():
        return 42
''')


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(BAD)
    (tmp_path / "broken.py").write_text("import a_package_that_is_not_there\n")
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    return path


def refuse(tmp_path, capsys, *argv) -> str:
    out = tmp_path / "out"
    status = main(["--target", "onnx", "--out", str(out), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert not out.exists() or not any(out.rglob("*.onnx")), "nothing may be written"
    return " ".join(err.split())


@pytest.mark.parametrize("argv, fragments", [
    (["--model", "{bad}:raises", "--resolution", "16"], ["raised ValueError: no weights for width 3", "factory"]),
    (["--model", "{bad}:not_a_module", "--resolution", "16"], ["returned int, not a torch.nn.Module"]),
    (["--model", "{bad}:missing", "--resolution", "16"], ["has no 'missing'", "fixed_size"]),
    (["--model", "{dir}/broken.py:build", "--resolution", "16"],
     ["ModuleNotFoundError", "a_package_that_is_not_there", "broken.py:1"]),
    (["--model", "no_such_package_xyz.models:build"], ["cannot import 'no_such_package_xyz.models'"]),
    (["--model", "{dir}/junk.pt2"], ["is not a program written by torch.export.save"]),
    (["--model", "{dir}/absent.py:build"], ["does not exist"]),
    (["--model", "{bad}:fixed_size"], ["does not say what input it takes", "--input-shape"]),
    (["--model", "{bad}:fixed_size", "--input-shape", "1x3x16"], ["--input-shape", "1x3x16", "N x C x H x W"]),
    (["--model", "{bad}:fixed_size", "--input-shape", "2x3x16x16"], ["batch-1 RGB", "1x3x16x16"]),
    (["--model", "{bad}:fixed_size", "--resolution", "32"], ["rejects input 1x3x32x32", "mat1 and mat2",
                                                             "bad.py:", "self.fc(x.flatten(1))"]),
    (["--model", "{bad}:branchy", "--resolution", "16"], ["torch.export cannot trace", "bad.py:", "if y.sum() > 0"]),
    (["--model", "{bad}:fixed_size", "--resolution", "16", "--num-classes", "3"], ["--num-classes", "model-kwargs"]),
    (["--model", "{bad}:fixed_size", "--resolution", "16", "--dynamic"], ["--resolution-range"]),
    (["--model", "{bad}:fixed_size", "--model-kwargs", "[1]"], ["not a JSON object"]),
    (["--model", "mobile_former_26m", "--resolution", "96x100"], ["96x100", "mobile_former_26m", "96x96"]),
    (["--model", "mobile_former_26m", "--resolution", "96x2000"], ["96x2000", "96x1024"]),
    (["--model", "mobile_former_26m", "--model-kwargs", '{"a": 1}'], ["--model-kwargs applies to a factory"]),
    (["--model", "mobile_former_26m", "--resolution", "0x96"], ["--resolution", "positive integer"]),
    (["--model", "mobile_former_26m", "--resolution-range", "512..128/32"], ["--resolution-range", "LOW <= HIGH"]),
    (["--model", "mobile_former_26m", "--mean", "0.5,0.5"], ["--mean", "three numbers"]),
    (["--model", "mobile_former_26m", "--std", "0,1,1"], ["--std", "three positive numbers"]),
])
def test_bad_model_references_are_one_line_exit_2_nothing_written(tmp_path, capsys, bad_file, argv, fragments):
    argv = [a.replace("{bad}", str(bad_file)).replace("{dir}", str(bad_file.parent)) for a in argv]
    line = refuse(tmp_path, capsys, *argv)
    for fragment in fragments:
        assert fragment in line, line


def test_python_objects_that_are_not_models_are_refused():
    with pytest.raises(ModelReferenceError, match="not int"):
        resolve(3)


def test_references_record_their_source(tmp_path):
    path = tmp_path / "net.py"
    path.write_text("import torch.nn as nn\ndef build(width=4):\n    return nn.Conv2d(3, width, 1)\n")
    ref = resolve(f"{path}:build", {"width": 2})
    assert ref.kind == "file" and ref.label == "build" and ref.source["kwargs"] == {"width": 2}
    assert ref.build().out_channels == 2
    assert resolve("mobile_former_26m").source == {"kind": "zoo", "name": "mobile_former_26m"}
    assert resolve(torch.nn.Conv2d(3, 4, 1)).label == "conv2d"


def test_pt2_round_trip(tmp_path, capsys):
    """torch.export.save, then mobexport --model prog.pt2 --target onnx: the input shape comes from the program."""
    model = load_factory("plain_cnn")().eval()
    program = torch.export.export(model, (torch.randn(1, 3, 32, 40),))
    torch.export.save(program, str(tmp_path / "prog.pt2"))
    out = tmp_path / "out"
    assert main(["--model", str(tmp_path / "prog.pt2"), "--target", "onnx", "--out", str(out), "--json",
                 "--parity-samples", "2"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["model"]["source"]["kind"] == "program" and len(manifest["model"]["source"]["sha256"]) == 64
    assert manifest["resolution"]["size"] == "32x40"
    assert all(p["passed"] for p in manifest["parity"])
    assert (out / "prog" / "onnx" / "model.onnx").is_file()
