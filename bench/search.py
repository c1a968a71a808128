"""Search speed of the local index: 100,000 random 1024-dimensional vectors, brute force with numpy.

    python bench/search.py [--rows N] [--dims D] [--queries Q] [-k K]

Builds an index with mmcli's own writer in a temporary folder, opens it with mmcli's reader
(vectors memory-mapped), and times mmcli's search beside a plain in-memory numpy search of the
same matrix. Prints the time to open the index, the milliseconds per query and queries per second.
Target: at most 50 ms a query on this machine, the index loaded with numpy memory-mapping.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_MS = 50.0


def build(folder: Path, rows: int, dims: int) -> None:
    """An index of `rows` random unit vectors, written as mmcli embed --index writes one."""
    import numpy as np

    from mmcli.tasks.embed.index import Index, normalized_rows, save

    vectors = normalized_rows(np.random.default_rng(0).standard_normal((rows, dims), dtype=np.float32))
    entries = [{"source": f"img{i:06d}.jpg", "path": f"/photos/img{i:06d}.jpg", "page": None, "kind": "image",
                "sha256": "", "thumbnail": None} for i in range(rows)]
    save(Index(folder, "bench-model", "plain", dims, entries, vectors))


def main() -> int:
    """Run the benchmark; exit 1 when the median query is over the target."""
    import numpy as np

    from mmcli.tasks.embed.index import open_index, search

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmcli-bench-index-") as tmp:
        folder = Path(tmp) / "idx"
        started = time.perf_counter()
        build(folder, args.rows, args.dims)
        vectors_file = folder / json.loads((folder / "index.json").read_text())["vectors"]
        print(f"built {args.rows:,} x {args.dims} index in {time.perf_counter() - started:.2f} s "
              f"({vectors_file.stat().st_size / 1e6:.0f} MB)")
        started = time.perf_counter()
        index = open_index(folder)
        load_s = time.perf_counter() - started
        print(f"open index (json + vectors mmap_mode='r'): {load_s * 1000:.1f} ms, "
              f"vectors are {type(index.vectors).__name__}")
        queries = np.random.default_rng(1).standard_normal((args.queries, args.dims)).astype(np.float32)
        first = time.perf_counter()
        search(index, queries[0].tolist(), args.k)  # the first query pages the matrix in from the file
        print(f"first query (cold pages): {(time.perf_counter() - first) * 1000:.1f} ms")
        mmcli_ms = _time(lambda q: search(index, q.tolist(), args.k), queries)
        matrix = np.load(vectors_file)
        numpy_ms = _time(lambda q: np.argsort(-(matrix @ (q / np.linalg.norm(q))))[:args.k], queries)
    print(f"mmcli search:        median {mmcli_ms:.1f} ms/query, {1000 / mmcli_ms:.0f} queries/s")
    print(f"numpy argsort (ref): median {numpy_ms:.1f} ms/query, {1000 / numpy_ms:.0f} queries/s")
    ok = mmcli_ms <= TARGET_MS
    print(f"target <= {TARGET_MS:.0f} ms/query: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def _time(search_one, queries) -> float:
    times = []
    for q in queries:
        started = time.perf_counter()
        search_one(q)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
