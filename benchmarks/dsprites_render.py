"""Time and memory of building the dsprites data set: rendering (no cache), then reading the cache.

    python benchmarks/dsprites_render.py [--size 64] [--stride 1] [--root /tmp/dsprites-bench] [--threads 1]

Each phase runs in a fresh process so that its peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def phase(size: int, stride: int, root: str, threads: int) -> dict:
    import torch

    from gan_infogan_plugin.data import dsprites
    from gan_infogan_plugin.recipes import DataConfig

    torch.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    data = dsprites.build(DataConfig(name="dsprites", root=root, options={"stride": stride}), size, 1)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "images": len(data),
        "seconds": round(seconds, 2),
        "images_mb": round(data.images.numel() * data.images.element_size() / 2**20),
        "peak_rss_mb": round(peak / 1024),
        "rss_before_build_mb": round(base / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--root", default="/tmp/dsprites-bench")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.size, args.stride, args.root, args.threads)))
        return
    from gan_infogan_plugin.data.dsprites import cache_path

    path = cache_path(args.root, args.size, args.stride)
    path.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--phase", "--size", str(args.size), "--stride", str(args.stride),
               "--root", args.root, "--threads", str(args.threads)]
    for name in ("render and write the cache", "read the cache"):
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(f"{args.size}px stride {args.stride}, {name}: {result}")
    print(f"cache file: {path.stat().st_size / 2**20:.0f} MB")
    if args.root == "/tmp/dsprites-bench":
        shutil.rmtree(Path(args.root), ignore_errors=True)


if __name__ == "__main__":
    main()
