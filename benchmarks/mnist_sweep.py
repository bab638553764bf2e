"""Research loop for issue 7: which InfoGAN MNIST settings find the ten digits in every seed.

    python benchmarks/mnist_sweep.py --name base --seed 0 --steps 3000 [knobs...]

A bare training loop built on the core (the registered "mnist" networks, ``InfoGAN.wrap``,
``MIRegularizer``) with a command-line option for every knob of the sweep. Trains on the 10,000
real MNIST test digits in ``../shared/data/mnist`` without labels; every ``--eval-every`` steps Q's
argmax on all 10,000 images is Hungarian-matched to the labels (the labels are used only here),
next to label-free signals (Q's confidence and its MI estimate on real images). One JSON line per
evaluation goes to ``--log`` (default /tmp/mnist_sweep/<name>_s<seed>.jsonl).

CPU minutes are the process's CPU time (run with one thread: ``--threads 1``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_infogan_plugin import InfoGAN, LatentCodeSpec, random_shift, registry
from gan_infogan_plugin.batchnorm import recalibrate
from gan_infogan_plugin.metrics import hungarian_accuracy, real_code_mi

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "MNIST" / "raw"


def read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzipped) as a numpy array: magic, dims as big-endian int32, then uint8 data."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(root: Path = DATA) -> tuple[torch.Tensor, np.ndarray]:
    """Images (10000, 1, 28, 28) in [-1, 1] and labels (10000,)."""
    images = read_idx(root / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(root / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    x = torch.from_numpy(images.copy()).float().div(127.5).sub(1.0).unsqueeze(1)
    return x, labels


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--name", default="run")
    a("--seed", type=int, default=0)
    a("--steps", type=int, default=3000)
    a("--batch", type=int, default=64)
    a("--threads", type=int, default=1)
    a("--eval-every", type=int, default=500)
    a("--log", default=None)
    a("--device", default="cpu", help="where to train, e.g. cuda")
    a("--data", default=str(DATA), help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    a("--kill", default="", help="early stop rules 'step:acc,...': stop if accuracy at >= step is below acc")
    # codes
    a("--noise", type=int, default=62)
    a("--noise-prior", default="uniform", choices=["uniform", "normal"])
    a("--noise-scale", type=float, default=1.0, help="multiply the noise part of G's input (ClusterGAN uses small noise)")
    a("--n-cont", type=int, default=2)
    a("--lambda-cat", type=float, default=1.0)
    a("--lambda-cont", type=float, default=0.1)
    a("--fixed-std", action="store_true", help="Q predicts only the means (sigma = 1)")
    a("--detach-trunk", action="store_true", help="the MI term trains Q only, not D's trunk, in D's update")
    a("--q-hidden", type=int, default=128)
    a("--mi-in", default="both", choices=["both", "d", "g"], help="which update(s) get the MI term")
    # optimisation
    a("--lr-d", type=float, default=2e-4)
    a("--lr-g", type=float, default=1e-3)
    a("--lr-q", type=float, default=None, help="Q's lr (default: lr-d)")
    a("--beta1", type=float, default=0.5)
    a("--d-steps", type=int, default=1)
    a("--g-steps", type=int, default=1)
    a("--reuse-fakes", action="store_true", help="G's update uses the codes of D's update (as the runner does) "
      "instead of fresh ones")
    # regularisation of D
    a("--inst-noise", type=float, default=0.0, help="instance noise std on D's inputs, annealed to 0")
    a("--inst-anneal", type=int, default=None, help="steps to anneal instance noise over (default: all)")
    a("--smooth", type=float, default=1.0, help="target for real images (one-sided label smoothing)")
    a("--sn", action="store_true", help="spectral norm on D's conv and linear layers")
    a("--d-dropout", type=float, default=0.0, help="dropout after D's two conv blocks")
    a("--translate", type=int, default=0, help="random shift of up to N pixels for every image D sees")
    a("--r1", type=float, default=0.0, help="R1 gradient penalty weight on real images")
    a("--save", default=None, help="save G, D and Q state dicts here at each evaluation")
    a("--eval-batch-bn", action="store_true", help="also score Q with batch-statistics BatchNorm")
    return p.parse_args(argv)


def add_dropout(d: nn.Module, p: float) -> None:
    """Dropout on the outputs of the activations after D's two conv blocks (trunk.1, trunk.4)."""
    if p <= 0:
        return
    for name in ("trunk.1", "trunk.4"):
        module = dict(d.named_modules())[name]
        module.register_forward_hook(lambda m, i, out: F.dropout(out, p, m.training))


def add_spectral_norm(d: nn.Module) -> None:
    for name, module in list(d.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                setattr(module, child_name, nn.utils.parametrizations.spectral_norm(child))


def set_bn_momentum(module: nn.Module, momentum: float | None) -> list[float | None]:
    old = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            old.append(m.momentum)
            m.momentum = momentum
    return old


@torch.no_grad()
def evaluate(info: InfoGAN, x: torch.Tensor, labels: np.ndarray, batch: int = 500, modes=("eval",)) -> dict:
    """Q on all real images: Hungarian accuracy (eval-mode BN and batch-stat BN) and label-free signals."""
    d, q = info.discriminator, info.q_head
    # eval mode reads the running statistics: recompute them from generated batches (they only trail the
    # weights otherwise; training, in train mode, never reads them)
    recalibrate(info.generator, info.discriminator_with_q(), info.spec, image_input=info.image_input)
    out = {}
    for mode in modes:
        if mode == "eval":
            d.eval(), q.eval()
        else:
            d.train(), q.train()
            saved_d = [(m, m.momentum) for m in d.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            saved_q = [(m, m.momentum) for m in q.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for m, _ in saved_d + saved_q:
                m.momentum = 0.0  # batch statistics, running statistics untouched
        # a fixed permutation so batch-stat batches are mixed digits
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(x))).to(x.device)
        probs = torch.empty(len(x), info.spec.categorical[0].num_classes, device=x.device)
        for s in range(0, len(x), batch):
            idx = order[s : s + batch]
            d(x[idx])
            probs[idx] = q().cat_logits[0].softmax(1)
        if mode == "batch":
            for m, mom in saved_d + saved_q:
                m.momentum = mom
        probs = probs.cpu()
        pred = probs.argmax(1).numpy()
        acc, _ = hungarian_accuracy(pred, labels)
        out[f"acc_{mode}"] = acc
        if mode == "eval":
            marginal = probs.mean(0)
            h_marg = float(-(marginal * marginal.clamp_min(1e-12).log()).sum())
            out["conf"] = float(probs.max(1).values.mean())
            out["mi_real"] = real_code_mi(probs.clamp_min(1e-12).log())  # Q's MI between real image and code
            out["h_marg"] = h_marg
            counts = np.bincount(pred, minlength=probs.shape[1])
            out["majority"] = [int(np.bincount(labels[pred == k], minlength=10).argmax()) if counts[k] else -1
                               for k in range(probs.shape[1])]
            out["min_cluster"] = int(counts.min())
    d.train(), q.train()
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    log_path = Path(args.log or f"/tmp/mnist_sweep/{args.name}_s{args.seed}.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    log.write(json.dumps({"args": vars(args)}) + "\n")

    x, labels = load_mnist(Path(args.data))
    x = x.to(device)
    spec_text = f"noise:{args.noise}:{args.noise_prior},cat:10" + (f",cont:{args.n_cont}" if args.n_cont else "")
    spec = LatentCodeSpec.parse(spec_text)
    model = registry.load("models", "mnist")
    g, d = model.build(spec.input_dim)
    g, d = g.to(device), d.to(device)
    if args.sn:
        add_spectral_norm(d)
    add_dropout(d, args.d_dropout)
    info = InfoGAN.wrap(
        g, d, spec, layer=model.q_layer, lambda_cat=args.lambda_cat, lambda_cont=args.lambda_cont,
        fixed_std=args.fixed_std, detach_trunk=args.detach_trunk, hidden=args.q_hidden,
    )
    betas = (args.beta1, 0.999)
    q_params = set(info.q_head.parameters())  # Q lives on D: D's own parameters are the others
    opt_d = torch.optim.Adam(
        [{"params": [p for p in d.parameters() if p not in q_params], "lr": args.lr_d},
         {"params": info.q_head.parameters(), "lr": args.lr_q or args.lr_d}],
        betas=betas,
    )
    opt_g = torch.optim.Adam(g.parameters(), lr=args.lr_g, betas=betas)
    kills = [tuple(float(v) for v in rule.split(":")) for rule in args.kill.split(",") if rule]

    def sample(n):
        codes = info.sample(n, device=device, generator=gen)
        if args.noise_scale != 1.0:
            codes.noise = codes.noise * args.noise_scale
        return codes

    def d_input(images, step):
        images = random_shift(images, args.translate, gen, fill=-1.0)  # background-black border
        if args.inst_noise > 0:
            horizon = args.inst_anneal or args.steps
            sigma = args.inst_noise * max(0.0, 1.0 - step / horizon)
            if sigma > 0:
                images = images + sigma * torch.randn(images.shape, generator=gen, device=device)
        return images

    n = len(x)
    perm, pos = torch.randperm(n, generator=gen, device=device), 0
    cpu0, wall0 = time.process_time(), time.time()
    running: dict[str, float] = {}
    best = {"acc": 0.0}
    result = {}
    for step in range(1, args.steps + 1):
        for _ in range(args.d_steps):
            if pos + args.batch > n:
                perm, pos = torch.randperm(n, generator=gen, device=device), 0
            real = x[perm[pos : pos + args.batch]]
            pos += args.batch
            codes = d_codes = sample(args.batch)
            with torch.no_grad():
                fake = g(info.inputs(codes))
            real_in = d_input(real, step)
            if args.r1 > 0:
                real_in.requires_grad_(True)
            out_real = d(real_in)
            loss_real = F.binary_cross_entropy_with_logits(out_real, torch.full_like(out_real, args.smooth))
            if args.r1 > 0:
                (grad,) = torch.autograd.grad(out_real.sum(), real_in, create_graph=True)
                loss_real = loss_real + 0.5 * args.r1 * grad.pow(2).flatten(1).sum(1).mean()
            out_fake = d(d_input(fake, step))
            loss_d = loss_real + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
            if args.mi_in in ("both", "d"):
                mi_d = info.mi(codes)
                loss_d = loss_d + mi_d.loss
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        for _ in range(args.g_steps):
            codes = d_codes if args.reuse_fakes else sample(args.batch)
            fake = g(info.inputs(codes))
            out = d(d_input(fake, step))
            loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            mi_g = info.mi(codes)
            if args.mi_in in ("both", "g"):
                loss_g = loss_g + mi_g.loss
            opt_g.zero_grad(set_to_none=True)
            opt_d.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if args.mi_in == "g":  # Q learns in G's update
                for p_ in d.parameters():
                    p_.grad = None
                opt_d.step()
        for key, value in (
            ("d_real", torch.sigmoid(out_real).mean()),
            ("d_fake", torch.sigmoid(out_fake).mean()),
            ("acc_gen", mi_g.stats["acc/c1"]),
            ("mi_gen", mi_g.stats["mi/c1"]),
        ):
            value = float(value.detach())
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        if step % args.eval_every == 0 or step == args.steps:
            ev = evaluate(info, x, labels, modes=("eval", "batch") if args.eval_batch_bn else ("eval",))
            cpu_min = (time.process_time() - cpu0) / 60
            rec = {"step": step, **ev, **{k: round(v, 4) for k, v in running.items()},
                   "cpu_min": round(cpu_min, 2), "wall_min": round((time.time() - wall0) / 60, 2)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            if args.save:
                torch.save({"g": g.state_dict(), "d": d.state_dict(), "q": info.q_head.state_dict(),
                            "spec": str(spec), "step": step}, args.save)
            if ev["acc_eval"] > best["acc"]:
                best = {"acc": ev["acc_eval"], "step": step}
            result = {**rec, "best": best}
            if any(step >= s and ev["acc_eval"] < a for s, a in kills):
                result["killed"] = True
                break
    log.write(json.dumps({"final": result}) + "\n")
    log.close()
    return result


if __name__ == "__main__":
    main()
