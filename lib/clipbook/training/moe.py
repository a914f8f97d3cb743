"""Sparse upcycling of a CLIP's transformer MLPs into top-k mixture-of-experts layers (CLIP-MoE, arXiv 2409.19291).

Written from the official code (OpenSparseLLMs/CLIP-MoE, snapshot 971b29f, no licence: read, not copied):

- `MoEMLP` is the FFN half of `clipmoe/model_clipmoe.py::MoEResidualAttentionBlock.forward`: a bias-free router
  `gate = Linear(d, E)`, a softmax over the E experts in float, the top-k probabilities renormalised to sum to 1,
  and the output the weighted sum of the k chosen experts' MLPs, per token. Here it replaces an open_clip block's
  `mlp` (the block keeps its residual and `ln_2`), so a model's other weights and code paths stay open_clip's.
- `load_balancing_loss` is `model_clipmoe.py::load_balancing_loss_func` (Switch Transformer's auxiliary loss as
  the official code writes it for top-k): E · Σ_{slot, e} f_{slot, e} · P_e, where f_{slot, e} is the fraction of
  tokens whose slot-th choice is e and P_e the mean router probability of e. With uniform router probabilities it
  equals top_k exactly, whatever the routing.
- `upcycle` builds the MoE model from N dense copies that share every parameter except the MLPs (the multiplets
  of Diversified Multiplet Upcycling): expert j of a layer is copy j's MLP of that layer.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MoEMLP(nn.Module):
    """A top-k mixture of MLP experts in place of one transformer block's MLP (see module docstring).

    The router logits of the last forward are kept in `router_logits` ((tokens, E)) for the balancing loss."""

    def __init__(self, experts: Sequence[nn.Module], top_k: int = 2):
        super().__init__()
        if not 1 <= top_k <= len(experts):
            raise ValueError(f"top_k must be between 1 and the number of experts ({len(experts)}), got {top_k}")
        width = _mlp_width(experts[0])
        self.experts = nn.ModuleList(experts)
        self.top_k = top_k
        self.gate = nn.Linear(width, len(experts), bias=False)  # model_clipmoe.py: nn.Linear(d_model, E, bias=False)
        self.router_logits: torch.Tensor | None = None

    @property
    def c_fc(self) -> nn.Module:
        """The first expert's input layer: open_clip reads a block's weight dtype from `mlp.c_fc`."""
        return self.experts[0].c_fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        logits = self.gate(tokens)
        self.router_logits = logits
        weights, chosen = routing(logits, self.top_k)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):  # each expert sees only the tokens routed to it
            token, slot = torch.where(chosen == e)
            if len(token):
                out = out.index_add(0, token, expert(tokens[token]) * weights[token, slot, None].to(tokens.dtype))
        return out.reshape(shape)


def routing(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MoEResidualAttentionBlock.forward: softmax (float) over experts, top-k, renormalised. Returns (weights, ids),
    both (tokens, k)."""
    probabilities = F.softmax(logits, dim=-1, dtype=torch.float)
    weights, chosen = torch.topk(probabilities, top_k, dim=-1)
    return weights / weights.sum(dim=-1, keepdim=True), chosen


def load_balancing_loss(logits: torch.Tensor, top_k: int = 2) -> torch.Tensor:
    """model_clipmoe.py::load_balancing_loss_func on router logits (..., E), every token of every layer pooled."""
    n_experts = logits.shape[-1]
    probabilities = F.softmax(logits.reshape(-1, n_experts), dim=-1)
    _, chosen = torch.topk(probabilities, top_k, dim=-1)
    tokens_per_expert = F.one_hot(chosen, n_experts).float().mean(dim=0)  # (k, E): fraction per choice slot
    return n_experts * torch.sum(tokens_per_expert * probabilities.mean(dim=0)[None])


def transformer_blocks(model, towers: Sequence[str] = ("text", "image")) -> list[tuple[str, nn.Module]]:
    """The (name, block) of every open_clip transformer block with an MLP in the named towers. A ResNet image
    tower (ModifiedResNet) has none: its attention pool has no MLP."""
    found = []
    for tower in towers:
        if tower not in ("text", "image"):
            raise ValueError(f"unknown tower {tower!r}; known: 'text', 'image'")
        transformer = model.transformer if tower == "text" else getattr(model.visual, "transformer", None)
        if transformer is None:
            continue
        prefix = "transformer" if tower == "text" else "visual.transformer"
        found += [(f"{prefix}.resblocks.{i}", block) for i, block in enumerate(transformer.resblocks)
                  if hasattr(block, "mlp")]
    return found


def upcycle(copies: Sequence, top_k: int = 2, towers: Sequence[str] = ("text", "image"), seed: int = 0):
    """A new model: copies[0]'s weights everywhere except each transformer block's MLP in `towers`, which becomes a
    `MoEMLP` whose expert j is copies[j]'s MLP of that block. The router is freshly initialised (nn.Linear's
    default, as the official MoE model before router training), reproducibly from `seed`."""
    if len(copies) < 2:
        raise ValueError("upcycling needs at least two dense copies")
    model = copy.deepcopy(copies[0])
    blocks = dict(transformer_blocks(model, towers))
    if not blocks:
        raise ValueError(f"the model has no transformer MLPs in towers {list(towers)}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for name, block in blocks.items():
            experts = [copy.deepcopy(dict(transformer_blocks(c, towers))[name].mlp) for c in copies]
            block.mlp = MoEMLP(experts, top_k)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def moe_layers(model) -> list[MoEMLP]:
    return [module for module in model.modules() if isinstance(module, MoEMLP)]


def router_logits(model, tower: str) -> torch.Tensor | None:
    """The router logits of the last forward through `tower`'s MoE layers, all layers' tokens stacked (as the
    official encode_text/encode_image return them for the balancing loss); None when the tower has no MoE."""
    logits = [block.mlp.router_logits for _, block in transformer_blocks(model, (tower,))
              if isinstance(block.mlp, MoEMLP) and block.mlp.router_logits is not None]
    return torch.cat(logits) if logits else None


def _mlp_width(mlp: nn.Module) -> int:
    first = next(m for m in mlp.modules() if isinstance(m, nn.Linear))
    return first.in_features


RELEASED = {
    "repo": "https://huggingface.co/MajorDavidZhang/CLIP-MoE_",  # the README names MajorDavidZhang/CLIP-MoE
    "file": "checkpoints_dc/moe-4-2.pt",
    "loader": "clipmoe.loadMoE(path, top_k=2, num_experts=4, moe_layers=24) from OpenSparseLLMs/CLIP-MoE",
}


class ReleasedCheckpointError(RuntimeError):
    """The released CLIP-MoE weights are missing, or present in a format this library does not build."""


def check_released_checkpoint(path: str) -> None:
    """Fail in one line, before any heavy work, for the released CLIP-MoE weights: '' means none (nothing to check);
    a missing file names where it comes from; a present one is refused, because its format is the official custom
    model (OpenAI ViT-L/14 with 4 experts in every block of both towers, `resblocks.i.experts.j` and
    `resblocks.i.gate` keys, and Long-CLIP's 248-position text embedding split into `positional_embedding` and
    `positional_embedding_res`), which open_clip and this library do not build."""
    if not isinstance(path, str):
        raise TypeError(f"released_checkpoint must be a path string ('' for none), got {path!r}")
    if not path:
        return
    from pathlib import Path

    if not Path(path).is_file():
        raise ReleasedCheckpointError(
            f"released CLIP-MoE checkpoint {path!r} not found: download {RELEASED['file']} (4.8 GB) from "
            f"{RELEASED['repo']} and pass its path as released_checkpoint")
    raise ReleasedCheckpointError(
        f"released CLIP-MoE checkpoint {path!r} is the official custom format (Long-CLIP 248-token text tower, "
        f"per-block experts and gates in ViT-L/14), which this library does not build offline; evaluate it with "
        f"{RELEASED['loader']}, or set released_checkpoint to ''")
