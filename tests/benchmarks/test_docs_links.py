"""Every image and relative link in the docs and the README points to a file in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # code blocks are not links
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)} links to files that are not in the repository: {missing}"


def test_benchmarking_doc_links_the_committed_profiles():
    text = (ROOT / "docs" / "benchmarking.md").read_text()
    assert "not yet backed by a per-op profile" not in text
    assert "measured/op_profile_mf294m_vs_mnv3l_224.md" in text
    assert "measured/op_profile_executorch_mf294m_vs_mnv3l_224.md" in text


def test_readme_test_time_is_a_measurement_with_its_machine():
    text = (ROOT / "README.md").read_text()
    assert "about 11 minutes" not in text
    section = " ".join(text[text.index("## Test"):text.index("## Layout")].split())  # lines rewrapped freely
    assert re.search(r"On the \d+-core CI machine \(\d{4}-\d\d-\d\d[^)]*\) the default run took \d+ min \d+ s", section)
    assert "removes the virtual environment" in section
