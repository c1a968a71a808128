"""`mmcli search`: the nearest images and pages in a local index to a text or an image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..options import EMBEDDING_PARAMETERS, ONE_SERVER, with_options

if TYPE_CHECKING:
    from mmcli.settings import CommonOptions

SEARCH = "Search"

HELP = """Search an index built by mmcli embed --index for the images and pages nearest to a text or an image.

The query is embedded by the same endpoint, model and preset as the index (a query from another model is refused), then compared with every vector in the index by cosine similarity: exact, and fast enough for hundreds of thousands of vectors."""

EPILOG = """Examples:

  mmcli search "a red car" --index photos.idx

  mmcli search --image query.jpg --index photos.idx -k 10 --json

  mmcli search "a signed contract" --index docs.idx --open"""


@with_options(*EMBEDDING_PARAMETERS, helps={**ONE_SERVER,
    "json_output": "Print one JSON object (query, index, model, matches with rank, score, source, page) "
                   "instead of a table."})
def search(
    query: Annotated[Optional[str], typer.Argument(metavar="QUERY", show_default=False,
                                                   help="The text to search for.")] = None,
    index: Annotated[Path, typer.Option("--index", metavar="DIR", rich_help_panel=SEARCH,
                                        help="The index folder (from mmcli embed --index DIR).")] = ...,
    image: Annotated[Optional[str], typer.Option(
        "--image", metavar="IMAGE", rich_help_panel=SEARCH,
        help="Search with this image instead of a text (path, URL, data URL or -).")] = None,
    top_k: Annotated[int, typer.Option("-k", "--top-k", min=1, metavar="K", rich_help_panel=SEARCH,
                                       help="How many matches to show.")] = 5,
    open_sheet: Annotated[bool, typer.Option(
        "--open", rich_help_panel=SEARCH,
        help="Write a contact sheet of the matches to DIR/matches.png (replaced by each search).")] = False,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", metavar="NAME", rich_help_panel=SEARCH,
        help="Must match the index's preset. [default: the index's]")] = None,
    opts: "CommonOptions" = None,
) -> None:
    """Search a local index with a text or an image."""
    from ..output.show_search import SearchArgs, run_search

    run_search(SearchArgs(query=query, index=index, image=image, top_k=top_k, open_sheet=open_sheet,
                          preset=preset), opts)
