"""The docs name the code as it is: every source path a document mentions
exists, and docs/ARCHITECTURE.md covers every module of the crate and the
package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
DOCS = [
    ROOT / "README.md",
    ARCHITECTURE,
    *sorted((ROOT / "specs").glob("*.md")),
    *sorted((ROOT / "specs").glob("*.yaml")),
]
# A path in backticks (or bare) that starts at one of the tree's top folders
# and names a source file.
PATH = re.compile(
    r"(?<![\w/.])((?:rust|python/cra|tests|benches|node)/[\w/.-]*\.(?:rs|py|pyi|mjs|js))(?!\w)"
)


def _mentioned(doc: Path) -> list[str]:
    return sorted(set(PATH.findall(doc.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = [p for p in _mentioned(doc) if not (ROOT / p).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"


def _modules() -> list[str]:
    """Every Rust and Python module, as `folder/file` below rust/ and python/cra/."""
    rust = [
        p.relative_to(ROOT / "rust").as_posix()
        for p in (ROOT / "rust").rglob("*.rs")
        if "tests" not in p.relative_to(ROOT / "rust").parts
    ]
    python = [
        p.relative_to(ROOT / "python" / "cra").as_posix()
        for p in (ROOT / "python" / "cra").rglob("*.py")
        if "examples" not in p.parts
    ]
    return sorted(rust) + sorted(python)


def test_architecture_covers_every_module() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    missing = [
        m
        for m in _modules()
        if not re.search(r"(?<![\w./-])(?:rust/|python/cra/)?" + re.escape(m) + r"(?!\w)", text)
    ]
    assert not missing, f"docs/ARCHITECTURE.md does not mention: {missing}"
