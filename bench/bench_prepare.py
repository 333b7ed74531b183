# Copyright 2026 The medvl-recipes Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark `medvl prepare`: pairs/s and peak RSS at two input sizes, against the raw decode+encode ceiling.

    python bench/bench_prepare.py --sizes 1000 20000 --num-proc 2 --image-size 160

Synthetic pairs (distinct PNG images + distinct one-line reports, an `imagefolder` source) are written once per
size. The ceiling is the same machine decoding each PNG to RGB and encoding it back to PNG with the same number
of processes and nothing else; prepare additionally cleans text, hashes (SHA-256 + phash), de-duplicates, splits
and writes parquet. Each prepare run is a fresh subprocess so that peak RSS (main process, and the largest
worker) is its own. Prints a markdown table.
"""

import argparse
import io
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _write_one(args: tuple[Path, int, int]) -> str:
    folder, index, size = args
    rng = np.random.default_rng(index)
    image = Image.fromarray(rng.integers(0, 256, size=(12, 12), dtype=np.uint8), mode="L").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    name = f"{index:06d}.png"
    image.save(folder / name)
    return f'{name},"Synthetic study {index}: finding {rng.integers(1_000_000)} in segment {index % 17}."\n'


def write_pairs(folder: Path, n: int, size: int, num_proc: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with multiprocessing.get_context("fork").Pool(num_proc) as pool:
        lines = pool.map(_write_one, [(folder, i, size) for i in range(n)], chunksize=64)
    (folder / "metadata.csv").write_text("file_name,text\n" + "".join(lines))


def _decode_encode(path: Path) -> int:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=6)
    return len(buffer.getvalue())


def ceiling(folder: Path, num_proc: int) -> float:
    files = sorted(folder.glob("*.png"))
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(num_proc) as pool:
        for _ in pool.imap_unordered(_decode_encode, files, chunksize=32):
            pass
    return len(files) / (time.perf_counter() - start)


def _child(folder: Path, out: Path, num_proc: int) -> None:
    from medvl_recipes.data.prepare import prepare_dataset

    config = {
        "sources": [{"type": "imagefolder", "path": str(folder), "name": "synthetic"}],
        "val_fraction": 0.05,
        "cleaning": {"max_side": 512},
    }
    start = time.perf_counter()
    prepare_dataset(config, output_dir=out, num_proc=num_proc, show_progress=False)
    seconds = time.perf_counter() - start
    report = json.loads((out / "prepare_report.json").read_text())
    result = {
        "seconds": seconds,
        "kept": report["totals"]["kept"],
        "candidate_pairs": report["dedup"].get("near_duplicate_candidate_pairs"),
        "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    sys.stdout.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--_child", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(args._child[0], args._child[1], args.num_proc)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    rows = []
    for n in args.sizes:
        folder = workdir / f"raw-{n}"
        if not (folder / "metadata.csv").is_file():
            write_pairs(folder, n, args.image_size, args.num_proc)
        raw_rate = ceiling(folder, args.num_proc)
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--num-proc",
                str(args.num_proc),
                "--_child",
                str(folder),
                str(workdir / f"out-{n}"),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        rate = result["kept"] / result["seconds"]
        rows.append((n, rate, raw_rate, result))
    load = os.getloadavg()
    print(
        f"\n{args.image_size}x{args.image_size} px PNG pairs, num_proc={args.num_proc}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared machine)\n"
    )
    print(
        "| pairs | prepare pairs/s | raw decode+encode pairs/s (ceiling) | ratio | peak RSS main (MB) | "
        "peak RSS worker (MB) | dedup candidate pairs |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, rate, raw_rate, result in rows:
        print(
            f"| {n} | {rate:.0f} | {raw_rate:.0f} | {rate / raw_rate:.2f} | {result['rss_main_mb']:.0f} | "
            f"{result['rss_worker_mb']:.0f} | {result['candidate_pairs']} |"
        )
    if len(rows) > 1:
        print(
            f"\npeak RSS (main) at {rows[-1][0]} / at {rows[0][0]} pairs: "
            f"{rows[-1][3]['rss_main_mb'] / rows[0][3]['rss_main_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()
