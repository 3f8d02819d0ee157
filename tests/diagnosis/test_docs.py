"""docs/diagnosis.md holds the taxonomy table generated from the code, and every [diagnosis] threshold."""

from __future__ import annotations

from pathlib import Path

from ragtune.config import DiagnosisSection
from ragtune.diagnosis.taxonomy import taxonomy_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "diagnosis.md"


def test_taxonomy_table_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert taxonomy_markdown() in text, "regenerate the table from ragtune.diagnosis.taxonomy.taxonomy_markdown()"
    for name in DiagnosisSection.model_fields:
        if name not in ("primary_arm",):
            assert f"`{name}`" in text or name in text, name
