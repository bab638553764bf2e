"""Invariant clustering of real images by Q's categorical head: IIC's mutual information between
two views.

InfoGAN asks only that Q read c back from G(z, c). A 10-way code that splits two similar classes by
style (two values each drawing 3s and 5s, the noise choosing the digit) satisfies that as well as one
that splits them by class, so nothing in the objective prefers the classes. Elastic-InfoGAN (Ojha et
al., NeurIPS 2020) makes the discovery of the categorical factor invariant to identity-preserving
transformations of real images; IIC (Ji et al., ICCV 2019, "Invariant Information Clustering", eq. 1-3)
gives the objective: for Q's class probabilities p(x) and p(x') on an image x and a transformed copy
x', maximise the mutual information of the two assignments,

    P = 1/N sum_i p(x_i) p(x'_i)^T            (k x k joint, then symmetrised: (P + P^T) / 2)
    I(z; z') = sum_ab P_ab log(P_ab / (P_a P_b)),   P_a, P_b its row and column sums.

I is at most log k, reached when every image and its copy fall into the same one of k equally used
clusters; a Q that puts all images in one cluster, or is unsure, scores 0. A style that a rotation or
zoom changes cannot carry such a cluster, an object's identity can.
"""

from __future__ import annotations

import torch

EPS = torch.finfo(torch.float32).eps  # IIC's clamp of the joint before the logarithm


def paired_cluster_mi(p: torch.Tensor, p_other: torch.Tensor) -> torch.Tensor:
    """IIC's I(z; z') in nats (scalar) from two views' class probabilities ``p``, ``p_other``: (N, k),
    rows summing to 1 (row i of both: the same image, transformed differently)."""
    if p.shape != p_other.shape or p.dim() != 2:
        raise ValueError(f"expected two (N, k) tensors of the same shape, got {tuple(p.shape)} and {tuple(p_other.shape)}")
    joint = p.float().T @ p_other.float() / p.shape[0]  # (k, k)
    joint = ((joint + joint.T) / 2).clamp_min(EPS)
    rows, cols = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return (joint * (joint.log() - rows.log() - cols.log())).sum()
