"""``mobexport devices``."""

from __future__ import annotations

import json

from mobexport.cli import main


def test_lists_devices_and_reasons(phones, capsys):
    emulated = phones.add()
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for fragment in ("local", "available", f"adb:{emulated.serial}", "Pixel 8", "cuda", "macos:ALL", "unavailable"):
        assert fragment in out


def test_json_listing(phones, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["devices", "--json"]) == 0
    rows = {r["device"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["local"]["available"] and rows["local"]["info"]["cores"] >= 1
    assert rows["adb"]["available"] is False and "adb not found on PATH" in rows["adb"]["detail"]
