"""Shared fixtures: a tiny book (one chapter) copied into a temporary folder."""

import shutil
from pathlib import Path

import pytest

TINYBOOK = Path(__file__).parent / "data" / "tinybook"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    """A copy of the tiny book with the real book's config and back matter (runs land in tmp_path)."""
    root = tmp_path / "book_root"
    shutil.copytree(TINYBOOK, root)
    for name in ("_config.yml", "references.bib"):
        shutil.copy(REPO / name, root / name)
    for name in ("reproducibility.md", "references.md"):
        shutil.copy(REPO / "book" / name, root / "book" / name)
    return root
