"""Options for PDF inputs, declared once for the commands that read documents page by page (docqa, embed)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

DOCUMENT = "Document"

PasswordEnv = Annotated[Optional[str], typer.Option(
    "--password-env", metavar="NAME", rich_help_panel=DOCUMENT,
    help="Read the password of encrypted PDFs from environment variable NAME.")]
MaxPages = Annotated[int, typer.Option(
    "--max-pages", min=1, metavar="N", rich_help_panel=DOCUMENT,
    help="Refuse documents longer than this unless --pages picks the pages.")]
