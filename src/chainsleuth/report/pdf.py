"""PDF from a static HTML page with WeasyPrint (needs Pango: ``make sysdeps``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ChainsleuthError


class PdfError(ChainsleuthError):
    """WeasyPrint or its system libraries are missing, or the file cannot be written."""


def html_to_pdf(html: str, path: str | Path) -> Path:
    """Render ``html`` (a static page: no scripts, charts as inline SVG) to ``path``."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: Pango/GObject libraries not found
        raise PdfError(f"PDF output needs WeasyPrint and Pango (run `make sysdeps`): {exc}") from None
    out = Path(path)
    # WeasyPrint logs every unsupported CSS property at WARNING; they are cosmetic here
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    try:
        HTML(string=html, base_url=str(out.parent.resolve())).write_pdf(out)
    except OSError as exc:
        raise PdfError(f"cannot write {out}: {exc}") from None
    return out
