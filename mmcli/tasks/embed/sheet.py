"""A contact sheet: the matches of a search as thumbnails in a grid, each captioned with rank and score."""

from __future__ import annotations

from pathlib import Path

TILE = 192
CAPTION = 34
COLUMNS = 5


def contact_sheet(folder: Path, matches: list[dict]) -> bytes:
    """PNG bytes of the matches' thumbnails (from the index's thumbs/), blank tiles where none exists."""
    import io

    from PIL import Image, ImageDraw, UnidentifiedImageError

    columns = max(1, min(COLUMNS, len(matches)))
    rows = max(1, -(-len(matches) // columns))
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, match in enumerate(matches):
        x, y = (n % columns) * TILE, (n // columns) * (TILE + CAPTION)
        thumb = match.get("thumbnail")
        if thumb:
            try:
                with Image.open(folder / thumb) as image:
                    image = image.convert("RGB")
                    image.thumbnail((TILE, TILE))
                    sheet.paste(image, (x + (TILE - image.width) // 2, y + (TILE - image.height) // 2))
            except (OSError, UnidentifiedImageError):
                pass  # the thumbnail went missing: leave the tile blank
        name = Path(str(match["source"])).name + (f" p.{match['page']}" if match.get("page") else "")
        draw.text((x + 4, y + TILE + 2), f"#{match['rank']}  {match['score']:.3f}", fill="black")
        draw.text((x + 4, y + TILE + 17), name[:30], fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()
