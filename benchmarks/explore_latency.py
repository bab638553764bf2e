"""`gan-recipes explore`: time from request to image, for the MNIST (28x28) and SVHN (32x32) generators.

    python benchmarks/explore_latency.py [--requests 200] [--threads N] [--weights FILE ...]

Saves each paper generator (freshly initialised: speed does not depend on training) with
`save_generator`, serves it with the explore server on a free loopback port, and sends what a
moving slider sends: GET /api/image with a new code value each time, over one keep-alive
connection, one request after another. The time runs from sending the request to holding the whole
PNG (the generator's forward pass, PNG encoding and HTTP included; the browser's decoding is not).
Also times /api/strip (one code's traversal: 9 or 10 images) and the forward pass alone.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from gan_infogan_plugin import LatentCodeSpec, registry
from gan_infogan_plugin.explore import Explorer, ExploreServer, draw, load_runs
from gan_infogan_plugin.export import save_generator

PAPER = {"mnist": "noise:62,cat:10,cont:2", "svhn": "noise:124,cat:10x4,cont:4"}  # the recipes' codes


def percentiles(ms: list[float]) -> str:
    ms = sorted(ms)
    return f"{statistics.median(ms):>8.1f}{ms[int(0.9 * (len(ms) - 1))]:>8.1f}{ms[-1]:>8.1f}"


def timed_gets(port: int, paths: list[str]) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for path in paths:
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        times.append((time.perf_counter() - start) * 1e3)
        assert response.status == 200 and body.startswith(b"\x89PNG"), (path, response.status, body[:200])
    connection.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--weights", type=Path, nargs="*", default=[], help="Time these generator files instead.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        files = list(args.weights)
        for model_name, text in ([] if files else PAPER.items()):
            spec = LatentCodeSpec.parse(text)
            model = registry.load("models", model_name)
            generator, _ = model.build(spec.input_dim)
            files.append(save_generator(Path(tmp) / model_name / "generator.safetensors", generator, spec, model_name,
                                        {"channels": model.channels}))
        server = ExploreServer(Explorer(load_runs(files)), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.requests} requests each; ms:")
        print(f"{'generator':<34}{'request':<22}{'median':>8}{'p90':>8}{'max':>8}")
        for i, run in enumerate(server.explorer.runs):
            spec = run.loaded.spec
            cont = spec.continuous[0].name
            label = f"{run.loaded.model_name} {run.shape[1]}x{run.shape[2]} ({spec.input_dim} inputs)"
            values = [round(-2 + 4 * k / max(1, args.requests - 1), 2) for k in range(args.requests)]
            forward = []  # first: torch's idle worker threads of the server's thread would compete with these
            for v in values:
                start = time.perf_counter()
                draw(run.loaded, 1, [{cont: v}])
                forward.append((time.perf_counter() - start) * 1e3)
            timed_gets(server.server_port, [f"/api/image?run={i}&seed=1"] * 5)  # warm-up
            image = timed_gets(server.server_port, [f"/api/image?run={i}&seed=1&{cont}={v}" for v in values])
            strips = [f"/api/strip?run={i}&seed={k}&code={spec.names[k % len(spec.names)]}" for k in range(args.requests // 4)]
            strip = timed_gets(server.server_port, strips)
            print(f"{label:<34}{'GET /api/image':<22}{percentiles(image)}")
            print(f"{'':<34}{'GET /api/strip':<22}{percentiles(strip)}")
            print(f"{'':<34}{'forward pass alone':<22}{percentiles(forward)}")
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
