"""InfoGAN's cost over a plain GAN: one training step, same networks, batch and optimisers.

    python benchmarks/overhead.py [--batch 64] [--repeats 60] [--threads N]

Both run the library's step (:func:`gan_infogan_plugin.step.train_step`, what ``gan-recipes run``
runs): D scores the real batch and the detached fake batch (D's update), then the fake batch again
(G's update, D held fixed). The plain GAN is the step with no regularizers; InfoGAN is the same step
with Q hooked on D's trunk and the MI term (:class:`~gan_infogan_plugin.step.MITerm`) in both
updates: no extra discriminator pass. Steps alternate GAN / InfoGAN so machine noise hits both; the
table gives medians after a warm-up, of wall time and of the process's CPU time (with ``--threads 1``
all the work runs in this one thread, so the CPU time does not grow when other jobs share the machine:
the figure to read on a busy one). Target: InfoGAN / GAN <= 1.02.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from lightning_fabric import Fabric

from gan_infogan_plugin import InfoGAN, LatentCodeSpec, registry
from gan_infogan_plugin.cpu import keep_freed_memory
from gan_infogan_plugin.step import GAN, Batch, MITerm, train_step

CASES = {"mnist": "noise:62,cat:10,cont:2", "svhn": "noise:124,cat:10x4,cont:4"}
FABRIC = Fabric(accelerator="cpu", devices=1)


def make_step(model_name: str, spec: LatentCodeSpec, batch: int, info_gan: bool):
    """A closure running one train_step (a D update and a G update); returns nothing (no host sync)."""
    torch.manual_seed(0)
    model = registry.load("models", model_name)
    g, d = model.build(spec.input_dim)
    info = InfoGAN.wrap(g, d, spec, layer=model.q_layer, image_input=False) if info_gan else None
    d = info.discriminator_with_q() if info else d
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)  # as the runner builds them
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999), fused=True)
    g, opt_g = FABRIC.setup(g, opt_g)
    d, opt_d = FABRIC.setup(d, opt_d)
    gan = GAN(g, d, opt_g, opt_d, has_q=info is not None)
    regularizers = [MITerm(info.regularizer)] if info else []
    real = torch.rand(batch, model.channels, model.image_size, model.image_size) * 2 - 1

    def step() -> None:
        train_step(FABRIC, gan, Batch(0, real, spec.sample(batch)), regularizers)

    return step


def timed(step) -> tuple[float, float, int]:
    """Wall and CPU seconds of one call, and the page faults it caused (fresh memory from the kernel)."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="leave the C library's allocator as it is (to measure what keep_freed_memory saves)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # The runner's CPU settings (gan_infogan_plugin.cpu): denormals flushed, freed memory kept in the process.
    torch.set_flush_denormal(True)
    kept = not args.malloc_defaults and keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"median of {args.repeats} alternating steps after {args.warmup} warm-up, freed memory kept: {kept}")
    print(f"{'nets':<8}{'GAN ms/step':>14}{'InfoGAN ms/step':>18}{'ratio':>9}{'GAN CPU ms':>13}{'InfoGAN CPU ms':>17}{'CPU ratio':>11}{'faults/step':>13}")
    for name, text in CASES.items():
        spec = LatentCodeSpec.parse(text)
        gan, infogan = make_step(name, spec, args.batch, False), make_step(name, spec, args.batch, True)
        for _ in range(args.warmup):
            gan(), infogan()
        t_gan, t_info = [], []
        for _ in range(args.repeats):
            t_gan.append(timed(gan))
            t_info.append(timed(infogan))
        (a, ca, fa), (b, cb, fb) = ([statistics.median(column) for column in zip(*t)] for t in (t_gan, t_info))
        print(f"{name:<8}{a * 1e3:>14.1f}{b * 1e3:>18.1f}{b / a:>9.3f}{ca * 1e3:>13.1f}{cb * 1e3:>17.1f}{cb / ca:>11.3f}"
              f"{(fa + fb) / 2:>13.0f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
