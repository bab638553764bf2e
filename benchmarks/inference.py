"""Inference from a weights file: load time and generator images/s of `load_generator`.

    python benchmarks/inference.py [--model mnist] [--spec noise:62,cat:10,cont:2] [--batch 256] [--threads N]

Writes a generator (freshly initialised: speed does not depend on training) with `save_generator`
to a temporary file, then times `load_generator` (median of 10 loads, registry look-up and
rebuild included) and `LoadedGenerator.generate` at the given batch (median of 20 after a
warm-up), in float32 and, where the CPU supports it well, bfloat16.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gan_infogan_plugin import LatentCodeSpec, registry
from gan_infogan_plugin.export import load_generator, save_generator


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--spec", default="noise:62,cat:10,cont:2")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = LatentCodeSpec.parse(args.spec)
    model = registry.load("models", args.model)
    generator, _ = model.build(spec.input_dim)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_generator(Path(tmp) / "generator.safetensors", generator, spec, args.model, {"channels": model.channels})
        size = path.stat().st_size / 2**20
        load = median_seconds(lambda: load_generator(path), 10)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {args.model}, spec {spec}, "
              f"file {size:.1f} MiB")
        print(f"load_generator: {load * 1e3:.0f} ms (median of 10)")
        print(f"{'dtype':<10}{'batch':>7}{'images/s':>11}")
        for dtype in (torch.float32, torch.bfloat16):
            loaded = load_generator(path, dtype=dtype)
            loaded.generate(args.batch, seed=0)
            seconds = median_seconds(lambda: loaded.generate(args.batch, seed=0), 20)
            print(f"{str(dtype).removeprefix('torch.'):<10}{args.batch:>7}{args.batch / seconds:>11.0f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
