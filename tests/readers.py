"""Reading generated outputs back as a finance office's software would (shared by tests)."""

from __future__ import annotations

from pathlib import Path


def docx_text(path: Path) -> str:
    """All paragraph and table-cell text of a .docx, one piece per line."""
    from docx import Document

    doc = Document(str(path))
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    return "\n".join(parts)
