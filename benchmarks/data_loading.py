"""Reading a local split: ``datasets.load_dataset("json", data_files=...)`` against the project's
:func:`~unlearn_bench.data.source.read_file` (``Dataset.from_json``/``from_parquet``).

``load_dataset`` first sends a HEAD request to the hub to count a download, for local files too:
a DNS lookup per file, which takes up to its 3 s timeout (and longer, where the resolver retries)
on machines that cannot reach the hub, as cluster nodes often cannot. A cell reads about 20
splits (its checks, then its inputs), so that wait was paid per cell. Prints, for every split of
the embedded dataset, interleaved rounds in this run: the mean and the slowest read of each, and
the ratio of their means. Both must return the same rows (checked).

    python benchmarks/data_loading.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.utils import instantiate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from datasets import disable_progress_bars, load_dataset

    from unlearn_bench.data.source import read_file
    from unlearn_bench.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_module("unlearn_bench.conf", version_base="1.3"):
        cfg = compose("config")
    files = sorted(Path(instantiate(cfg.data.source).path).glob("*.json"))
    disable_progress_bars()
    readers = {
        "load_dataset": lambda f: load_dataset("json", data_files=str(f), split="train"),
        "read_file": read_file,
    }
    for f in files:  # warm-up: both build datasets' Arrow cache of the file; the rows must agree
        if readers["load_dataset"](f).to_list() != readers["read_file"](f).to_list():
            raise SystemExit(f"{f.name}: the two readers return different rows")
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, read in readers.items():
            for f in files:
                start = time.perf_counter()
                read(f)
                times[name].append(time.perf_counter() - start)
    mean = {name: sum(t) / len(t) for name, t in times.items()}
    print(f"{len(files)} split files of the embedded dataset x {args.rounds} rounds, interleaved")
    for name, t in times.items():
        print(f"{name:>12}: mean {1000 * mean[name]:8.1f} ms a file, slowest {1000 * max(t):8.1f} ms")
    print(f"load_dataset/read_file={mean['load_dataset'] / mean['read_file']:.1f}")


if __name__ == "__main__":
    main()
