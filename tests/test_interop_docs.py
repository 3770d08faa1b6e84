"""README's Interoperability table lists exactly the deviation codes of the catalogue (gateway.envelope.deviations)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.envelope.deviations import DEVIATIONS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_deviation_code_and_no_other() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Interoperability\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| deviation |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", table, flags=re.MULTILINE)
    assert len(listed) == len(set(listed))
    assert set(listed) == set(DEVIATIONS)


def test_deviation_codes_are_stable_slugs() -> None:
    for code, what in DEVIATIONS.items():
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", code), code
        assert what.strip(), code
