"""Learnable text prompts over a frozen open_clip text tower (CoOp and the prompt-learning papers after it).

CoOp (Zhou et al., IJCV 2022, arXiv:2109.01134) replaces the hand-written words of a prompt by M
learnable vectors in the token-embedding space,

    t_c = [SOS] [v_1] ... [v_M] [CLASS_c] [.] [EOS],

and reads the class weight g(t_c) off CLIP's frozen text transformer at the EOS token. This module holds
the two reusable pieces, following the official `trainers/coop.py` (github.com/KaiyangZhou/CoOp, MIT):

- `encode_token_embeddings`: open_clip's `encode_text` from the token-embedding stage on (`TextEncoder`).
- `PromptLearner`: the learnable context, unified or class-specific, with the class token at the end,
  middle or front (`PromptLearner`).

plus the training schedule every CoOp-family config uses (`coop_learning_rate`) and a reader for the
released CoOp prompt checkpoints (`load_coop_context`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from clipbook.models.loader import LoadedModel

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")
# README "Models and Results" of the official repository: M=16 and M=4 ImageNet prompts for RN50, RN101,
# ViT-B/16 and ViT-B/32, all in one zip; each seed's context sits in a Dassl checkpoint under
# <config>_16shots/nctx<M>_cscFalse_ctpend/seed<s>/prompt_learner/model.pth.tar-50.
COOP_PROMPTS_URL = "https://drive.google.com/file/d/18ypxfd82RR0pizc5MM1ZWDYDk4j0BtPF/view"
COOP_README = "https://github.com/KaiyangZhou/CoOp#models-and-results"


def text_tower(model: nn.Module) -> nn.Module:
    """The module that holds the text transformer of an open_clip model.

    `open_clip.CLIP` keeps the text tower's parts on itself; `CustomTextCLIP` keeps them on `model.text`.

    Raises:
        TypeError: for text towers without a token-embedding table and a causal transformer (Hugging Face
            text towers, CoCa-style towers with a CLS token), on which CoOp's prompts are undefined.
    """
    tower = model.text if isinstance(getattr(model, "text", None), nn.Module) else model
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    missing = [name for name in needed if not hasattr(tower, name)]
    if missing or getattr(tower, "cls_emb", None) is not None:
        raise TypeError(f"prompt learning needs an open_clip text transformer ({', '.join(needed)}, no CLS token); "
                        f"{type(tower).__name__} has no {', '.join(missing) or 'support for a CLS-token tower'}")
    return tower


def _pool_type(tower: nn.Module) -> str:
    return getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))


def eot_positions(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Index of the token whose feature is the sentence feature, per row of `tokens` (open_clip's rule)."""
    tower = text_tower(model)
    pool = _pool_type(tower)
    if pool == "argmax":  # the EOT token has the largest id in CLIP's vocabulary
        return tokens.argmax(dim=-1)
    eos_id = getattr(tower, "text_eos_id", getattr(tower, "eos_id", None))
    if pool == "eos" and eos_id is not None:
        return (tokens == eos_id).int().argmax(dim=-1)
    raise TypeError(f"text pooling {pool!r} is not supported by prompt learning; supported: 'argmax', 'eos'")


def _causal(mask: torch.Tensor | None) -> bool:
    if mask is None or mask.dim() != 2:
        return False
    upper = torch.ones_like(mask, dtype=torch.bool).triu(1)
    return bool(torch.isneginf(mask[upper]).all() and (mask[~upper] == 0).all())


def encode_token_embeddings(model: nn.Module, embeddings: torch.Tensor, eot_index: torch.Tensor, *,
                            trim: bool = True) -> torch.Tensor:
    """Text features (N, D) of sequences given as token embeddings (N, L, width), not token ids.

    The same computation as open_clip's `CLIP.encode_text` after its `token_embedding` lookup: add the
    positional embedding, run the transformer under its attention mask, `ln_final`, take the feature at
    `eot_index`, project. It is CoOp's `TextEncoder` (trainers/coop.py). Features are not normalised.

    Args:
        model: an open_clip model (see `text_tower`).
        embeddings: (N, L, width) token embeddings, L at most the model's context length.
        eot_index: (N,) position of the end-of-text token of each sequence (`eot_positions`).
        trim: drop the positions after the last EOT before running the transformer. Under CLIP's causal
            mask no token attends to a later one, so those positions cannot change any EOT feature;
            dropping them only saves compute (with M=16 the prompts use ~20 of 77 positions). Ignored
            when the tower's mask is not causal.

    Returns:
        An (N, D) tensor in the text tower's output dtype.
    """
    tower = text_tower(model)
    transformer = tower.transformer
    cast_dtype = transformer.get_cast_dtype() if hasattr(transformer, "get_cast_dtype") else embeddings.dtype
    mask = getattr(tower, "attn_mask", None)
    length = embeddings.shape[1]
    if trim and _causal(mask):
        length = min(length, int(eot_index.max()) + 1)
    x = embeddings[:, :length].to(cast_dtype) + tower.positional_embedding[:length].to(cast_dtype)
    mask = None if mask is None else mask[:length, :length]
    if getattr(transformer, "batch_first", True):
        x = transformer(x, attn_mask=mask)
    else:  # open_clip before 2.21 ran its transformer sequence-first
        x = transformer(x.permute(1, 0, 2), attn_mask=mask).permute(1, 0, 2)
    x = tower.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot_index.to(x.device)]
    projection = tower.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection


class PromptLearner(nn.Module):
    """CoOp's learnable context for K class names, over a frozen CLIP text tower.

    Calling the module returns the K text features g(t_c) (unnormalised, like `encode_text`). Its only
    parameter is `ctx`: (M, width) for a unified context, (K, M, width) for class-specific contexts (CSC).
    The CLIP model is held by reference, outside `parameters()` and `state_dict()`, and is frozen here (all
    its parameters get `requires_grad=False`, as CoOp's `build_model` does), so gradients reach `ctx` only.

    Follows `PromptLearner` of CoOp's trainers/coop.py, with two deliberate differences:
    `ctx_init` may be combined with `class_specific` (the official code then silently falls back to a
    unified context; here every class starts from the same words), and M is the number of BPE tokens of
    `ctx_init` rather than its number of space-separated words (the two agree for "a photo of a").

    Args:
        loaded: the model, from `clipbook.models.loader.load_model` (its tokenizer must be CLIP's BPE one).
        classnames: K class names; underscores become spaces, as in CoOp.
        n_ctx: M, the number of context vectors (ignored when `ctx_init` is given).
        ctx_init: words whose token embeddings initialise the context (CoOp's "a photo of a" option);
            empty or None draws the context from N(0, init_std²), the paper's default.
        class_specific: one context per class (CSC) instead of one shared by all classes.
        class_token_position: "end" ([v_1..v_M][CLASS].), "middle" ([v_1..v_M/2][CLASS][v_M/2+1..v_M].)
            or "front" ([CLASS][v_1..v_M].).
        init_std: standard deviation of the random initialisation (CoOp: 0.02).
        generator: the random generator for that initialisation (default: torch's global one).
    """

    def __init__(self, loaded: LoadedModel, classnames: list[str], *, n_ctx: int = 16, ctx_init: str | None = None,
                 class_specific: bool = False, class_token_position: str = "end", init_std: float = 0.02,
                 generator: torch.Generator | None = None):
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(f"unknown class_token_position {class_token_position!r}; "
                             f"accepted: {', '.join(CLASS_TOKEN_POSITIONS)}")
        if not classnames:
            raise ValueError("classnames must be a non-empty list of class names")
        tokenizer = loaded.tokenizer
        if not hasattr(tokenizer, "encode"):
            raise TypeError("prompt learning needs CLIP's BPE tokenizer (with .encode), "
                            f"got {type(tokenizer).__name__}")
        model = loaded.model
        model.requires_grad_(False)
        tower = text_tower(model)
        self.loaded = loaded  # a dataclass, not a Module: the frozen CLIP stays out of parameters()/state_dict()
        device = tower.token_embedding.weight.device
        width = tower.token_embedding.weight.shape[1]
        names = [name.replace("_", " ") for name in classnames]
        self.n_cls, self.class_specific = len(names), bool(class_specific)
        self.class_token_position = class_token_position

        def embed(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            tokens = tokenizer(texts).to(device)
            with torch.no_grad():
                return tokens, tower.token_embedding(tokens)

        if ctx_init:
            ctx_init = ctx_init.replace("_", " ")
            n_ctx = len(tokenizer.encode(ctx_init))
            ctx_vectors = embed([ctx_init])[1][0, 1:1 + n_ctx].clone()
            if self.class_specific:
                ctx_vectors = ctx_vectors.unsqueeze(0).repeat(self.n_cls, 1, 1)
            prefix_words = ctx_init
        else:
            if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 1:
                raise ValueError(f"n_ctx must be a positive integer (CoOp uses 16 or 4), got {n_ctx!r}")
            shape = (self.n_cls, n_ctx, width) if self.class_specific else (n_ctx, width)
            ctx_vectors = torch.randn(shape, generator=generator).mul_(init_std)
            ctx_vectors = ctx_vectors.to(device=device, dtype=tower.token_embedding.weight.dtype)
            prefix_words = " ".join(["X"] * n_ctx)  # placeholders, replaced by ctx in every forward
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(ctx_vectors)

        self.name_lens = [len(tokenizer.encode(name)) for name in names]
        context_length = tower.positional_embedding.shape[0]
        longest = 1 + n_ctx + max(self.name_lens) + 2  # SOS, context, name, ".", EOS
        if longest > context_length:
            raise ValueError(f"prompts of {longest} tokens (M={n_ctx} plus the longest class name) exceed the "
                             f"text tower's context length {context_length}; use a smaller n_ctx")
        tokens, embedding = embed([f"{prefix_words} {name}." for name in names])
        # [SOS] and [CLASS . EOS pad...]: fixed, rebuilt from the class names (CoOp ignores them on load)
        self.register_buffer("token_prefix", embedding[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:].clone(), persistent=False)
        self.register_buffer("tokenized_prompts", tokens, persistent=False)
        # the class token moves but the length does not, so the EOT stays where the "end" prompt has it
        self.register_buffer("eot_index", eot_positions(model, tokens), persistent=False)

    def prompt_embeddings(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """The K prompts as token embeddings (K, L, width), context in place.

        Args:
            ctx: a context to use instead of the learned `ctx`: (M, width) or (K, M, width) gives (K, L, width);
                a batch of per-image contexts (B, M, width), as the conditional prompt learners build from image
                features (CoCoOp's meta-net, IP-CLIP's projectors), gives (B, K, L, width): image b's context with
                every class name. For a unified learner a 3-D `ctx` is read as such a batch.
        """
        if ctx is not None and ctx.dim() == 3 and not self.class_specific:
            if ctx.shape[1:] != (self.n_ctx, self.token_prefix.shape[-1]):
                raise ValueError(f"per-image contexts must be (B, {self.n_ctx}, {self.token_prefix.shape[-1]}), "
                                 f"got {tuple(ctx.shape)}")
            if self.class_token_position == "end":  # one concatenation for the whole batch
                batch, (n_cls, _, width) = ctx.shape[0], self.token_prefix.shape
                return torch.cat([self.token_prefix.unsqueeze(0).expand(batch, -1, -1, -1),
                                  ctx.unsqueeze(1).expand(-1, n_cls, -1, -1),
                                  self.token_suffix.unsqueeze(0).expand(batch, -1, -1, -1)], dim=2)
            return torch.stack([self.prompt_embeddings(one) for one in ctx])
        ctx = self.ctx if ctx is None else ctx
        ctx = ctx if ctx.dim() == 3 else ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        prefix, suffix = self.token_prefix, self.token_suffix
        if self.class_token_position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        half = self.n_ctx // 2
        prompts = []
        for i, name_len in enumerate(self.name_lens):
            name, rest = suffix[i, :name_len], suffix[i, name_len:]
            if self.class_token_position == "middle":
                parts = [prefix[i], ctx[i, :half], name, ctx[i, half:], rest]
            else:  # front
                parts = [prefix[i], name, ctx[i], rest]
            prompts.append(torch.cat(parts, dim=0))
        return torch.stack(prompts)

    def forward(self) -> torch.Tensor:
        """Text features (K, D) of the K prompts, unnormalised."""
        return encode_token_embeddings(self.loaded.model, self.prompt_embeddings(), self.eot_index)

    def per_image_text_features(self, ctx: torch.Tensor) -> torch.Tensor:
        """Text features (B, K, D), unnormalised, of every class prompt under each image's own context.

        Args:
            ctx: (B, M, width) per-image contexts (see `prompt_embeddings`); unified learners only.
        """
        if self.class_specific:
            raise ValueError("per-image contexts need a unified learner (class_specific=False)")
        embeddings = self.prompt_embeddings(ctx)
        batch, n_cls = embeddings.shape[:2]
        features = encode_token_embeddings(self.loaded.model, embeddings.flatten(0, 1), self.eot_index.repeat(batch))
        return features.view(batch, n_cls, -1)

    @torch.no_grad()
    def load_context(self, ctx: torch.Tensor) -> None:
        """Replace the context by learned vectors of the same shape (e.g. from `load_coop_context`)."""
        if tuple(ctx.shape) != tuple(self.ctx.shape):
            raise ValueError(f"context of shape {tuple(ctx.shape)} does not fit this learner's {tuple(self.ctx.shape)} "
                             f"(M={self.n_ctx}, {'class-specific' if self.class_specific else 'unified'}, "
                             f"width {self.ctx.shape[-1]}): check n_ctx, class_specific and the model")
        self.ctx.copy_(ctx.to(self.ctx))


def load_coop_context(path: str | Path) -> torch.Tensor:
    """The learned context `ctx` stored in a CoOp (Dassl) prompt-learner checkpoint, as float32 on the CPU.

    Args:
        path: a `prompt_learner/model.pth.tar-<epoch>` file, e.g. one of the released ImageNet prompts.

    Raises:
        FileNotFoundError: with where to get the released prompts when `path` does not exist.
        KeyError: when the file holds no `state_dict['ctx']`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"CoOp prompt checkpoint not found: {path}.\n  The released ImageNet prompts (M=16 and M=4; RN50, RN101, "
            f"ViT-B/16, ViT-B/32) are one zip on Google Drive, linked from the CoOp README ({COOP_README}): "
            f"{COOP_PROMPTS_URL}\n  Unzip it and point at <bundle>/rn50_ep50_16shots/nctx16_cscFalse_ctpend/seed1/"
            "prompt_learner/model.pth.tar-50 (or the folder for your backbone and seed).")
    # Dassl checkpoints also pickle the optimizer and scheduler state; allow plain Python objects in them
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else {}
    if "ctx" not in state:
        raise KeyError(f"{path} holds no CoOp context: expected state_dict['ctx'], found keys {sorted(state)[:8]}")
    return state["ctx"].float()


def coop_learning_rate(epoch: int, max_epochs: int, base_lr: float = 0.002, *, warmup_epochs: int = 1,
                       warmup_lr: float = 1e-5) -> float:
    """Learning rate of an epoch (0-based) under the CoOp configs' schedule.

    `configs/trainers/CoOp/*.yaml`: cosine annealing over `max_epochs` behind `warmup_epochs` epochs at a
    constant `warmup_lr`. As in Dassl's `ConstantWarmupScheduler` (with WARMUP_RECOUNT), the cosine restarts
    its count after the warm-up, so epoch e >= warmup_epochs runs at
    base_lr * (1 + cos(pi * (e - warmup_epochs) / max_epochs)) / 2.
    """
    if epoch < warmup_epochs:
        return warmup_lr
    return 0.5 * base_lr * (1 + math.cos(math.pi * (epoch - warmup_epochs) / max_epochs))
