# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # IP-CLIP: Vision-Language Model IP Protection via Prompt-based Learning
#
# Lianyu Wang, Meng Wang, Huazhu Fu, Daoqiang Zhang — CVPR 2025 · [arXiv:2503.02393](https://arxiv.org/abs/2503.02393)
# · official code [LyWang12/IP-CLIP](https://github.com/LyWang12/IP-CLIP) (snapshot a263c8b, **no licence**: read,
# not copied; every piece below is our own code, citing the file and function it follows).
#
# **Claim.** Prompts learned from a frozen CLIP's image *style* (per-layer token mean/std) and *content* keep a
# model's accuracy on the domain it is licensed for (authorised) and make it collapse on other domains
# (unauthorised), so the fine-tuned model cannot be transferred. Two settings of the repo: *target-specified*
# (`Target_Specified/`: the unauthorised domain is another domain, e.g. Office-31 Amazon → Webcam) and *ownership
# verification* (`Ownership/`: the unauthorised domain is the authorised one under a pixel-grid watermark, so a low
# accuracy on watermarked images identifies the owner's model). The paper's tables report authorised and
# unauthorised accuracies on Office-31, Office-Home and Mini-DomainNet; their numbers, and the formulas of the paper's
# three trade-off metrics, are **unconfirmed** here (papers.md §23), so no reported rows are stored.
#
# **This notebook.** `offline`: the library's tiny CLIP (ResNet image tower) with authorised = the toy suite's generic
# photo domain (`toy`) and unauthorised = its sketch and noise domains (`toy-sketch`, `toy-noise`) and, for ownership
# verification, `toy` under the repo's watermark; IP-CLIP against zero-shot CLIP and plain prompt tuning (CoOp) with
# the same data, seeds, steps and optimiser. `paper` (`notebooks/profiles/paper/ip-clip.yaml`): OpenAI ViT-B/16 on
# Office-31 (Amazon → Webcam, Amazon → DSLR, Amazon + watermark) and Office-Home (Art → Clipart), read from
# `$CLIPBOOK_DATA` in Dassl's folder layout.
#
# **Deviations from the official code** (each also noted where it happens):
# 1. *Held-out evaluation.* The repo's `test()` scores the authorised domain on the images it trained on
#    (`test_loader_x` over `train_x`) and the unauthorised domain on the images it trained on too (Dassl's Office
#    datasets use whole domains for `train_u` and `test`). Here both are scored on held-out images: the toy test
#    splits, and for the folder datasets every fifth image of each class, never trained on.
# 2. *Style statistics of a ResNet.* The tiny CLIP's image tower is a ResNet: the per-layer statistics are the
#    per-channel mean/std over the spatial positions of its four stages' feature maps (ViT-B/16: over the 197 tokens
#    of its 12 blocks). So the prompt has 4 domain tokens used twice + 4 content tokens = 12 context tokens (ViT-B/16:
#    12 × 2 + 4 = 28, as the repo), and the projectors' widths follow the tower.
# 3. *A shortened schedule offline*: 20 steps of 4 + 4 images (`max_steps`, `batch_size`; the repo: 50 epochs of
#    8 + 8), on fixed pools of 8 training and 5 held-out images per class and domain (`train_images_per_class`,
#    `eval_images_per_class`): every step encodes batch × classes prompts, which a 2-core machine affords only a
#    few hundred times per notebook. Claims then require that the authorised-domain training loss fell.
# 4. *No augmentation, float32.* The repo trains with random flips/translations under AMP; here the frozen tower's
#    statistics are computed once per image (cached) in float32.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
target_specified = [["toy", "toy-sketch"], ["toy", "toy-noise"]]  # [authorised, unauthorised] domain pairs
ownership = ["toy"]  # authorised domains whose watermarked images are the unauthorised domain (Ownership/)
seeds = [1, 2, 3]
learning_rate = 0.01
epochs = 50
batch_size = 4  # official: 8 (+ 8 unauthorised); halved offline for the 2-core budget
max_steps = 20  # 0: the official schedule, epochs x (authorised training images // batch_size) steps
train_images_per_class = 8  # 0: every training image of each domain
eval_images_per_class = 5  # 0: every held-out image of each domain
max_classes = 0  # 0: every class; N: only the first N classes of each domain (a cost cap, e.g. for a rehearsal)
train_untestable = False  # True: train IP-CLIP on settings whose claims cannot be tested too (their verdicts stay not tested)
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Bool, Dataset, Int, ListOf, declare

SPEC = declare(
    "profile", "models", "seeds", "learning_rate", "device",
    target_specified=ListOf(ListOf(Dataset(), length=2), min_length=0,
                            help="[authorised, unauthorised] dataset pairs of the target-specified setting"),
    ownership=ListOf(Dataset(), min_length=0,
                     help="authorised datasets of the ownership-verification setting (unauthorised: watermarked)"),
    epochs=Int(minimum=1, help="the official epochs (configs/trainer/vitB16.yaml MAX_EPOCH: 50)"),
    batch_size=Int(minimum=1, help="authorised and unauthorised images per step each (official: 8 + 8)"),
    max_steps=Int(minimum=0, help="cap on training steps per run; 0 runs the official schedule"),
    train_images_per_class=Int(minimum=0, help="training images per class and domain; 0 uses them all"),
    eval_images_per_class=Int(minimum=0, help="held-out images per class and domain scored; 0 scores them all"),
    max_classes=Int(minimum=0, help="only the first N classes of each domain (images and prompts); 0 uses them all"),
    train_untestable=Bool(help="also train and score IP-CLIP where the protectable precondition fails (the rehearsal "
                               "sets it, so that random weights still run the training path); verdicts stay not tested"),
)

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import clipbook
from clipbook import cache, metrics, prompting, zeroshot
from clipbook.claims import at_least
from clipbook.data.registry import DATASETS, load_dataset
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.models.loader import load_model

session = clipbook.start(SPEC, globals())
if not target_specified and not ownership:
    raise ValueError("nothing to run: give target_specified pairs or ownership domains")
if len(models) != 1:
    raise ValueError(f"IP-CLIP is trained per backbone; give exactly one model, got {models!r}")
WATERMARK = "+watermark"
SETTINGS = ([("target-specified", authorised, unauthorised) for authorised, unauthorised in target_specified]
            + [("ownership", authorised, authorised + WATERMARK) for authorised in ownership])


def setting_name(kind: str, authorised: str, unauthorised: str) -> str:
    return f"{kind}: {authorised} → {unauthorised}"


# %% [markdown]
# ## Domains: held-out splits, fixed pools, the repo's watermark
#
# A domain with train/test splits (the toy suite) uses them. A folder dataset (Office-31/-Home: one folder per
# domain, split "all") holds every fifth image of each class (the 1st, 6th, … in file order) out. Training and evaluation use fixed
# pools of images per class (the first of a seed-0 permutation), the same for every seed; the seeds change the
# projectors' initialisation and the batch order. The ownership setting's unauthorised domain is the authorised one
# with `Ownership/dassl/data/data_manager.py`'s `DatasetWrapper_watermark._add_watermark`: every pixel in an even row
# or an even column is raised to white (255), before any transform.

# %%
def domain_split(name: str, split: str):
    """(dataset, indices, labels) of a domain's "train" or "test" images; "<name>+watermark" is watermarked."""
    base = name.removesuffix(WATERMARK)
    splits = DATASETS[base]["splits"]
    if "train" in splits and "test" in splits:
        dataset = load_dataset(base, split)
        indices = np.arange(len(dataset))
    else:
        dataset = load_dataset(base, "all")
        labels = np.asarray(dataset.labels)
        rank = np.zeros(len(labels), dtype=int)  # position of each image within its class (sorted file order)
        for label in np.unique(labels):
            rank[labels == label] = np.arange(int((labels == label).sum()))
        indices = np.flatnonzero((rank % 5 == 0) == (split == "test"))
    return dataset, indices, np.asarray(dataset.labels)[indices]


def pool(name: str, split: str, per_class: int):
    """A fixed pool of at most `per_class` images per class (all when 0), in class-interleaved order; only the
    first `max_classes` classes when that is set."""
    dataset, indices, labels = domain_split(name, split)
    if max_classes:
        indices, labels = indices[labels < max_classes], labels[labels < max_classes]
    if per_class:
        order = np.random.default_rng(0).permutation(len(indices))
        chosen = np.concatenate([order[labels[order] == c][:per_class] for c in np.unique(labels)])
        indices, labels = indices[np.sort(chosen)], labels[np.sort(chosen)]
    return dataset, indices, labels


def add_watermark(image: Image.Image) -> Image.Image:
    """Ownership/dassl/data/data_manager.py `_add_watermark`: +255 (clipped) on even rows and even columns."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    rows, columns = np.indices(pixels.shape[:2])
    mask = np.where((rows % 2 == 0) | (columns % 2 == 0), 255, 0)
    return Image.fromarray(np.minimum(pixels + mask[..., None], 255).astype(np.uint8))


for _, authorised, unauthorised in SETTINGS:  # every domain's splits load before any heavy work
    for name in (authorised, unauthorised):
        for split in ("train", "test"):
            domain_split(name, split)

# %% [markdown]
# ## Style and content of the frozen image tower
#
# The repo's ViT returns every block's tokens $X_l \in \mathbb{R}^{N\times C}$ (`clip/model.py`, `Transformer.forward`)
# and `AdaIN` (`trainers/ipclip_vitB16.py`) reduces them over the $N$ tokens:
#
# $$\mu_l = \tfrac1N\textstyle\sum_n X_{l,n}, \qquad
#   \sigma_l = \sqrt{\big(\textstyle\sum_n (X_{l,n}-\mu_l)^2 + \varepsilon\big)/N}, \quad \varepsilon = 2.3\cdot10^{-8}.$$
#
# The tower is frozen, so $\mu_l, \sigma_l$ and the image feature are computed once per image and cached
# (content-addressed by model, images and watermark). For a ResNet tower the "tokens" are the $H\!\times\!W$ positions
# of each stage's feature map (deviation 2).

# %%
ADAIN_EPSILON = 0.000000023  # AdaIN.sigma in trainers/ipclip_vitB16.py
STYLE_VERSION = 1


def style_layers(visual: nn.Module) -> list[nn.Module]:
    """The modules whose outputs give the per-layer statistics: a ViT's blocks, or a ResNet's four stages."""
    if hasattr(visual, "transformer"):
        return list(visual.transformer.resblocks)
    return [visual.layer1, visual.layer2, visual.layer3, visual.layer4]


def as_tokens(output: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """(B, N, C) tokens from a block's (B, N, C) or (N, B, C) output or a stage's (B, C, H, W) feature map."""
    if output.dim() == 4:
        return output.flatten(2).transpose(1, 2)
    return output if batch_first else output.transpose(0, 1)


def adain_statistics(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaIN.mu and AdaIN.sigma of trainers/ipclip_vitB16.py over the token axis of (B, N, C)."""
    n = tokens.shape[1]
    mu = tokens.sum(1) / n
    sigma = torch.sqrt((((tokens - mu.unsqueeze(1)) ** 2).sum(1) + ADAIN_EPSILON) / n)
    return mu, sigma


def encode_with_style(loaded, dataset, indices, watermark: bool) -> dict:
    """Normalised image features (N, D) and per-layer AdaIN statistics (lists of (N, C_l)), cached."""
    visual = loaded.model.visual
    batch_first = getattr(getattr(visual, "transformer", None), "batch_first", True)

    def compute():
        captured = []
        hooks = [layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
                 for layer in style_layers(visual)]
        features, mus, sigmas = [], [], []
        try:
            with deterministic_torch(), torch.no_grad():
                for start in range(0, len(indices), 64):
                    images = []
                    for index in indices[start:start + 64]:
                        image = dataset[int(index)][0]
                        images.append(loaded.preprocess(add_watermark(image) if watermark else image))
                    captured.clear()
                    features.append(F.normalize(loaded.model.encode_image(
                        torch.stack(images).to(session.device)).float(), dim=-1).cpu())
                    statistics = [adain_statistics(as_tokens(output, batch_first).float()) for output in captured]
                    mus.append([mu.cpu() for mu, _ in statistics])
                    sigmas.append([sigma.cpu() for _, sigma in statistics])
        finally:
            for hook in hooks:
                hook.remove()
        return {"features": torch.cat(features), "mu": [torch.cat(layer) for layer in zip(*mus)],
                "sigma": [torch.cat(layer) for layer in zip(*sigmas)]}

    spec = {"version": STYLE_VERSION, "model": loaded.identity, "data": dataset.fingerprint(),
            "indices": [int(i) for i in indices], "watermark": watermark, "epsilon": ADAIN_EPSILON}
    return cache.cached("ip-clip-style", spec, compute, name=dataset.name)


loaded = load_model(*models[0], device=session.device)
DOMAIN_DATA = {}
for _, authorised, unauthorised in SETTINGS:
    for name in (authorised, unauthorised):
        for split, per_class in (("train", train_images_per_class), ("test", eval_images_per_class)):
            if (name, split) not in DOMAIN_DATA:
                dataset, indices, labels = pool(name, split, per_class)
                encoded = encode_with_style(loaded, dataset, indices, name.endswith(WATERMARK))
                DOMAIN_DATA[name, split] = {**encoded, "labels": torch.as_tensor(labels)}
CLASSNAMES = list(domain_split(SETTINGS[0][1], "test")[0].classnames)[:max_classes or None]
LAYER_WIDTHS = [mu.shape[1] for mu in DOMAIN_DATA[SETTINGS[0][1], "train"]["mu"]]
pd.DataFrame([{"domain": name, "split": split, "images": len(data["labels"])}
              for (name, split), data in DOMAIN_DATA.items()]).pivot(index="domain", columns="split", values="images")

# %% [markdown]
# ## The IP prompt: domain tokens and content tokens per image
#
# `PromptLearner` of `trainers/ipclip_vitB16.py`: each image gets its own context
# $[\,d_1..d_L,\ d_1..d_L,\ c_1..c_4\,]$ before the class name ("X … X {class}."):
#
# - **domain tokens** (`domain_projector`): $d_l = W^{(2)}_l W^{(1)}_l \tfrac12(\mu_l + \sigma_l)$ — the repo pools
#   the stacked pair $(\mu_l, \sigma_l)$ with `AdaptiveAvgPool2d((1, 768))`, i.e. their element-wise mean, then two
#   linear layers (768 → 256 → 512, no non-linearity); used twice;
# - **content tokens** (`image_projector`): $c = \sum_l a_l\, V_l\, \bar X_l + b$ with $\bar X_l$ the token average
#   (= $\mu_l$) and one `Linear(L, 1)` mixing the layers; the repo appends the *same* token 4 times;
# - every class prompt of image $b$ goes through CLIP's frozen text tower (`prompting.PromptLearner`
#   `.per_image_text_features`), so one step encodes $B\times K$ prompts (CoCoOp-like).
#
# Widths: hidden = half the text width (256 of 512 in the repo). `style_mapping_projector` is built by the repo but
# never called, so it is left out.

# %%
N_CONTENT_TOKENS = 4  # n_imgctx in PromptLearner.__init__


class IPPrompt(nn.Module):
    """The trainable part of IP-CLIP (the repo optimises only `prompt_learner`)."""

    def __init__(self, loaded, classnames: list[str], layer_widths: list[int]):
        super().__init__()
        layers = len(layer_widths)
        self.text = prompting.PromptLearner(loaded, classnames, n_ctx=2 * layers + N_CONTENT_TOKENS)
        width = self.text.ctx.shape[-1]
        self.domain_in = nn.ModuleList(nn.Linear(c, width // 2) for c in layer_widths)
        self.domain_out = nn.ModuleList(nn.Linear(width // 2, width) for _ in layer_widths)
        self.content = nn.ModuleList(nn.Linear(c, width) for c in layer_widths)
        self.mix = nn.Linear(layers, 1)

    def trainable(self) -> list[nn.Parameter]:  # the PromptLearner's own ctx is unused: contexts come from images
        return [p for name, p in self.named_parameters() if not name.startswith("text.")]

    def tokens(self, mus: list[torch.Tensor], sigmas: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        domain = torch.stack([out(inp((mu + sigma) / 2)) for inp, out, mu, sigma
                              in zip(self.domain_in, self.domain_out, mus, sigmas)], dim=1)  # (B, L, width)
        per_layer = torch.stack([linear(mu) for linear, mu in zip(self.content, mus)], dim=1)  # (B, L, width)
        content = self.mix(per_layer.transpose(1, 2)).transpose(1, 2)  # (B, 1, width)
        return torch.cat([domain, domain, content.expand(-1, N_CONTENT_TOKENS, -1)], dim=1), domain

    def forward(self, mus, sigmas) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised text features (B, K, D) of every class under each image's prompt, and the domain tokens."""
        context, domain = self.tokens(mus, sigmas)
        return F.normalize(self.text.per_image_text_features(context).float(), dim=-1), domain


def per_image_logits(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """CustomCLIP.forward: logit_scale * <f_b, t_bk> for each image b and class k."""
    return loaded.model.logit_scale.exp().detach() * torch.einsum("bd,bkd->bk", image_features, text_features)


# %% [markdown]
# ## The style-enhancement branch: feature banks and cross-attention
#
# `CustomCLIP.forward(..., label, domain)` fills, before training (`IPCLIPB16.construct_bank`, model in eval
# mode, initial prompts), a bank of $K=5$ features per class for each domain: an authorised image enters its class's
# bank only if it is classified correctly; an unauthorised image enters the bank of its *predicted* class; it
# replaces the least confident entry when its confidence is higher (the bank keeps the $K$ most confident). Filling
# stops early once every entry's confidence exceeds 0.99. Training uses each bank's per-class mean
# $\bar F^s, \bar F^t \in \mathbb{R}^{K_{\rm cls}\times D}$ in `INTER_Module`:
#
# $$[q, k, v] = P(F), \qquad F^{sa} = \frac{F + O\,\mathrm{softmax}(0.1\, q\, k_s^\top)\, v_s}{\lVert\cdot\rVert},\quad
#   F^{ta} = \frac{F + O\,\mathrm{softmax}(0.1\, q\, k_t^\top)\, v_t}{\lVert\cdot\rVert}$$
#
# with $P$ = Linear–BN–ReLU–Linear–BN–ReLU–Linear ($D \to D/8 \to D/8 \to 3D$; `rearrange('b (d k) -> k b d', k=3)`
# interleaves q, k, v) and $O$ one linear layer. Note (a trap of the repo, reproduced): `INTER_Module` lives outside
# `prompt_learner`, so it is frozen at its random initialisation and never trained; its BatchNorm layers still use
# batch statistics in train mode.

# %%
BANK_SIZE = 5  # self.K in CustomCLIP
BANK_STOP = 0.99  # construct_bank's early stop


class StyleEnhancement(nn.Module):
    """INTER_Module of trainers/ipclip_vitB16.py (frozen at its random initialisation, as in the repo)."""

    def __init__(self, dim: int):
        super().__init__()
        hidden = dim // 8
        self.pre_project = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                         nn.Linear(hidden, 3 * dim))
        self.post_project = nn.Linear(dim, dim)
        self.scale = 0.1

    def qkv(self, features):
        out = self.pre_project(features)
        return out[:, 0::3], out[:, 1::3], out[:, 2::3]  # einops 'b (d k) -> k b d' with k=3

    def forward(self, features, source_bank, target_bank):
        q, _, _ = self.qkv(features)
        _, k_s, v_s = self.qkv(source_bank)
        _, k_t, v_t = self.qkv(target_bank)
        enhanced_s = features + self.post_project(torch.softmax(self.scale * q @ k_s.T, -1) @ v_s)
        enhanced_t = features + self.post_project(torch.softmax(self.scale * q @ k_t.T, -1) @ v_t)
        return F.normalize(enhanced_s, dim=-1), F.normalize(enhanced_t, dim=-1)


def fill_bank(probabilities: torch.Tensor, labels: torch.Tensor | None, features: torch.Tensor,
              bank: dict) -> None:
    """One batch of CustomCLIP.forward's bank update. `labels` given (authorised): only correct predictions enter,
    at their class; None (unauthorised): every image enters at its predicted class."""
    confidence, predicted = probabilities.max(dim=-1)
    for i in range(len(predicted)):
        label = int(predicted[i])
        if labels is not None and int(labels[i]) != label:
            continue
        slots = bank["confidence"][label]
        weakest = int(torch.argmin(slots))
        if confidence[i] > slots[weakest]:
            slots[weakest] = confidence[i]
            bank["features"][label, weakest] = features[i]


def build_banks(prompt: IPPrompt, source: dict, target: dict, order_s, order_t) -> tuple[dict, dict]:
    """IPCLIPB16.construct_bank: batches in training order, eval mode, no gradients."""
    banks = []
    for data, order, labelled in ((source, order_s, True), (target, order_t, False)):
        bank = {"confidence": torch.zeros(len(CLASSNAMES), BANK_SIZE),
                "features": torch.zeros(len(CLASSNAMES), BANK_SIZE, data["features"].shape[1]), "seen": 0}
        prompt.eval()
        with torch.no_grad():
            for batch in order:
                text, _ = prompt([mu[batch] for mu in data["mu"]], [sigma[batch] for sigma in data["sigma"]])
                probabilities = per_image_logits(data["features"][batch], text).softmax(-1)
                fill_bank(probabilities, data["labels"][batch] if labelled else None, data["features"][batch], bank)
                bank["seen"] += len(batch)
                if bank["confidence"].min() > BANK_STOP:
                    break
        banks.append(bank)
    return banks[0], banks[1]


# %% [markdown]
# ## The objective
#
# `IPCLIPB16.forward_backward` (AMP branch), with $\lceil x\rceil_5 = \min(x, 5)$ — the repo clamps each term it
# maximises (and the MSE) at 5 once it exceeds 5, so a term beyond 5 stops pushing:
#
# $$\mathcal L = \mathrm{CE}(p_s, y_s) - \lceil \mathrm{CE}(p_t, y_t)\rceil_5 - \lceil \mathrm{CE}(p^{sa}_s, y_s)\rceil_5
#   - \lceil \mathrm{CE}(p^{ta}_s, y_s)\rceil_5 - 0.1\,\lceil \mathrm{MSE}(d_s, d_t)\rceil_5 + 0.01\,H(p_t)
#   - \mathrm{KL}\big(\mathrm{softmax}_k T_t \,\big\Vert\, \mathrm{softmax}_k T_s\big)$$
#
# Read off the code, not the paper: both enhanced logits $p^{sa}, p^{ta}$ are of the *authorised* images (enhanced
# with the authorised and the unauthorised bank, scored with the authorised and the unauthorised prompts) and both use
# the authorised labels $y_s$; `nn.KLDivLoss(log_softmax(T_s), softmax(T_t))` is KL of the unauthorised
# over the authorised text features, each softmaxed over the class axis, per image ("batchmean"); and
# `entropy_loss` first L2-normalises the probabilities over the *batch* axis, then sums $-p\log(p+10^{-8})$ per
# image and averages. The target-specified setting uses the unauthorised images' true labels $y_t$.

# %%
CLAMP = 5.0  # up_bounder


def repo_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """entropy_loss.forward of trainers/ipclip_vitB16.py."""
    p = F.normalize(probabilities, dim=0)
    return (-(p * torch.log(p + 1e-8)).sum(1)).mean()


def ipclip_loss(terms: dict) -> torch.Tensor:
    """The total loss from its terms (cross-entropies, mse, entropy, kl), signs and clamps as the repo."""
    return (terms["ce_s"] - torch.clamp(terms["ce_t"], max=CLAMP) - torch.clamp(terms["ce_is"], max=CLAMP)
            - torch.clamp(terms["ce_it"], max=CLAMP) - 0.1 * torch.clamp(terms["mse"], max=CLAMP)
            + 0.01 * terms["entropy"] - terms["kl"])


def ipclip_terms(prompt, enhance, source_bank, target_bank, source: dict, target: dict, batch_s, batch_t) -> dict:
    """CustomCLIP.forward(s_image, t_image) and the loss terms of forward_backward."""
    f_s, f_t = source["features"][batch_s], target["features"][batch_t]
    y_s, y_t = source["labels"][batch_s], target["labels"][batch_t]
    text_s, domain_s = prompt([mu[batch_s] for mu in source["mu"]], [sigma[batch_s] for sigma in source["sigma"]])
    text_t, domain_t = prompt([mu[batch_t] for mu in target["mu"]], [sigma[batch_t] for sigma in target["sigma"]])
    logits_s, logits_t = per_image_logits(f_s, text_s), per_image_logits(f_t, text_t)
    enhanced_s, enhanced_t = enhance(f_s, source_bank["features"].mean(1), target_bank["features"].mean(1))
    return {"ce_s": F.cross_entropy(logits_s, y_s), "ce_t": F.cross_entropy(logits_t, y_t),
            "ce_is": F.cross_entropy(per_image_logits(enhanced_s, text_s), y_s),
            "ce_it": F.cross_entropy(per_image_logits(enhanced_t, text_t), y_s),
            "mse": F.mse_loss(domain_s, domain_t),
            "entropy": repo_entropy(logits_t.softmax(1)),
            "kl": F.kl_div(F.log_softmax(text_s, dim=1), F.softmax(text_t, dim=1), reduction="batchmean")}


# %% [markdown]
# ## Training and the learning rate the repo actually runs
#
# `configs/trainer/vitB16.yaml`: Adam, lr 0.01, cosine over `MAX_EPOCH` = 50, one linear warm-up "epoch" from
# $10^{-5}$; Dassl's default weight decay $5\cdot10^{-4}$. But `forward_backward` calls `self.update_lr()` after
# **every batch**, so Dassl's epoch scheduler advances per step: step 0 runs at $10^{-5}$, then
# $\eta_s = 0.005\,(1+\cos(\pi (s-1)/50))$ — a cosine of period 100 *steps*, repeated for the whole run. Reproduced
# as run. Batches: `RandomSampler` over each domain with `drop_last`, `COUNT_ITER = "train_x"` (an epoch is one pass
# over the authorised images; the unauthorised loader restarts when exhausted). The plain prompt-tuning baseline
# (CoOp, `clipbook.prompting.PromptLearner` initialised from "a photo of a") gets the same authorised batches, steps,
# optimiser and schedule, trained on $\mathrm{CE}(p_s, y_s)$ only. Trained weights are cached content-addressed.

# %%
WEIGHT_DECAY = 5e-4  # dassl/config/defaults.py OPTIM.WEIGHT_DECAY (not overridden by vitB16.yaml)
WARMUP_LR = 1e-5  # OPTIM.WARMUP_MIN_LR
TRAIN_VERSION = 1


def repo_learning_rate(step: int) -> float:
    """Dassl's LinearWarmupScheduler(CosineAnnealingLR(T_max=epochs)) stepped once per batch, as the repo does."""
    if step == 0:
        return WARMUP_LR
    return 0.5 * learning_rate * (1 + math.cos(math.pi * (step - 1) / epochs))


def batch_orders(n_source: int, n_target: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(authorised, unauthorised) index batches of the whole run, as Dassl's shuffled, drop_last loaders."""
    per_epoch = n_source // batch_size
    steps = epochs * per_epoch if max_steps == 0 else min(max_steps, epochs * per_epoch)
    source = [b for _ in range(math.ceil(steps / per_epoch))
              for b in torch.randperm(n_source, generator=generator)[:per_epoch * batch_size].split(batch_size)]
    target = []
    while len(target) < steps:
        target += list(torch.randperm(n_target, generator=generator)[:(n_target // batch_size) * batch_size]
                       .split(batch_size))
    return list(zip(source[:steps], target[:steps]))


def train_run(kind: str, authorised: str, unauthorised: str, seed: int) -> dict:
    """Train one run ("IP-CLIP" on the pair, or "CoOp" on the authorised domain); cached by everything it reads."""
    source, target = DOMAIN_DATA[authorised, "train"], DOMAIN_DATA[unauthorised, "train"]

    def compute():
        with deterministic_torch():
            seed_everything(seed)
            generator = torch.Generator().manual_seed(seed)
            orders = batch_orders(len(source["labels"]), len(target["labels"]), generator)
            if kind == "CoOp":
                learner = prompting.PromptLearner(loaded, CLASSNAMES, ctx_init="a photo of a")
                parameters, log = [learner.ctx], []
            else:
                prompt, enhance = IPPrompt(loaded, CLASSNAMES, LAYER_WIDTHS), StyleEnhancement(source["features"].shape[1])
                enhance.requires_grad_(False)
                source_bank, target_bank = build_banks(prompt, source, target, [s for s, _ in orders], [t for _, t in orders])
                parameters, log = prompt.trainable(), []
                prompt.train(), enhance.train()
            optimizer = torch.optim.Adam(parameters, lr=learning_rate, weight_decay=WEIGHT_DECAY)
            for step, (batch_s, batch_t) in enumerate(orders):
                for group in optimizer.param_groups:
                    group["lr"] = repo_learning_rate(step)
                if kind == "CoOp":
                    text = F.normalize(learner().float(), dim=-1)
                    logits = loaded.model.logit_scale.exp().detach() * source["features"][batch_s] @ text.T
                    loss = F.cross_entropy(logits, source["labels"][batch_s])
                    log.append({"step": step, "ce_s": loss.item()})
                else:
                    terms = ipclip_terms(prompt, enhance, source_bank, target_bank, source, target, batch_s, batch_t)
                    loss = ipclip_loss(terms)
                    log.append({"step": step, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}})
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        if kind == "CoOp":
            return {"ctx": learner.ctx.detach().clone(), "log": log}
        state = {k: v for k, v in prompt.state_dict().items() if not k.startswith("text.")}
        return {"prompt": state, "log": log, "bank_confidence": [source_bank["confidence"], target_bank["confidence"]],
                "bank_seen": [source_bank["seen"], target_bank["seen"]]}

    return cache.cached("ip-clip-runs", run_spec(kind, authorised, unauthorised, seed), compute, name=f"{kind}-{seed}")


def run_spec(kind: str, authorised: str, unauthorised: str, seed: int) -> dict:
    """Everything a run's result depends on (its cache key)."""
    source, target = DOMAIN_DATA[authorised, "train"], DOMAIN_DATA[unauthorised, "train"]
    return {"version": TRAIN_VERSION, "kind": kind, "model": loaded.identity, "seed": seed,
            "authorised": authorised, "unauthorised": unauthorised if kind == "IP-CLIP" else None,
            "data": [cache.content_key([d["features"].sum().item(), d["labels"].tolist()]) for d in (source, target)],
            "recipe": {"lr": learning_rate, "epochs": epochs, "batch": batch_size, "max_steps": max_steps,
                       "weight_decay": WEIGHT_DECAY, "classes": CLASSNAMES}}


# %% [markdown]
# ## Scoring
#
# `IPCLIPB16.model_inference` = `CustomCLIP.forward(image)`: the per-image prompts without the banks. CoOp and
# zero-shot CLIP (the dataset's template) score the same held-out images.

# %%
def trained_prompt(run: dict) -> IPPrompt:
    prompt = IPPrompt(loaded, CLASSNAMES, LAYER_WIDTHS)
    prompt.load_state_dict(run["prompt"], strict=False)
    return prompt.eval()


@torch.no_grad()
def ipclip_logits(prompt: IPPrompt, data: dict) -> torch.Tensor:
    chunks = []
    for batch in torch.arange(len(data["labels"])).split(50):
        text, _ = prompt([mu[batch] for mu in data["mu"]], [sigma[batch] for sigma in data["sigma"]])
        chunks.append(per_image_logits(data["features"][batch], text))
    return torch.cat(chunks)


@torch.no_grad()
def coop_logits(run: dict, data: dict) -> torch.Tensor:
    learner = prompting.PromptLearner(loaded, CLASSNAMES, ctx_init="a photo of a")
    learner.load_context(run["ctx"])
    return loaded.model.logit_scale.exp() * data["features"] @ F.normalize(learner().float(), dim=-1).T


def zero_shot_logits(name: str, data: dict) -> torch.Tensor:
    dataset = domain_split(name, "test")[0]
    classifier = zeroshot.zero_shot_classifier(loaded, CLASSNAMES, list(dataset.templates))
    return zeroshot.zero_shot_logits(data["features"], classifier)


# %% [markdown]
# ## Which settings are trained
#
# A setting's claims need zero-shot CLIP at least 10 points above chance on its held-out unauthorised images (the
# "protectable" precondition of the claims below): otherwise there is no accuracy for IP-CLIP to take away. That
# precondition does not depend on any training, so it is measured first, and **a setting that fails it is not
# trained**: IP-CLIP training could not make its claims testable, so its verdicts are *not tested* for the recorded
# zero-shot accuracy either way, and the training time is saved. Its zero-shot and CoOp rows are still scored (CoOp
# is trained per authorised domain, shared with the other settings); it has no IP-CLIP rows or training curve, and
# its precondition that the objective fell is not measured. `train_untestable = True` trains every setting anyway
# (the rehearsal sets it: with random weights no setting is protectable, and the training path must still run).

# %%
def zero_shot_accuracy(name: str) -> float:
    data = DOMAIN_DATA[name, "test"]
    return float(metrics.accuracy(zero_shot_logits(name, data), data["labels"]))


ZERO_SHOT = {name: zero_shot_accuracy(name) for _, authorised, unauthorised in SETTINGS
             for name in (authorised, unauthorised)}
PROTECTABLE = {}
for kind, authorised, unauthorised in SETTINGS:
    setting = setting_name(kind, authorised, unauthorised)
    PROTECTABLE[setting] = at_least(f"protectable | {setting}", f"{setting}: zero-shot accuracy on the unauthorised "
                                    "domain (chance + 10 points needed)", ZERO_SHOT[unauthorised],
                                    100 / len(CLASSNAMES) + 10, unit=" %")
TRAINED = [setting for setting, precondition in PROTECTABLE.items() if precondition.passed or train_untestable]
pd.DataFrame([{"setting": setting, "zero-shot unauthorised (%)": ZERO_SHOT[unauthorised],
               "needed (%)": 100 / len(CLASSNAMES) + 10, "IP-CLIP trained": setting in TRAINED}
              for setting, (_, _, unauthorised) in zip(PROTECTABLE, SETTINGS)])

# %% [markdown]
# ## The experiment
#
# Every trained setting × seed: IP-CLIP trained on the pair, CoOp on the authorised domain (one run per seed and
# authorised domain, scored in every setting), zero-shot CLIP once; accuracy (%) on held-out authorised and
# unauthorised images.

# %%
rows, logs, runs = [], [], {}
model_name = models[0][0]
for kind, authorised, unauthorised in SETTINGS:
    setting = setting_name(kind, authorised, unauthorised)
    for role, name in (("authorised", authorised), ("unauthorised", unauthorised)):
        data = DOMAIN_DATA[name, "test"]
        base = {"model": model_name, "dataset": name, "metric": "accuracy", "setting": setting, "role": role}
        rows.append({**base, "method": "zero-shot CLIP", "value": ZERO_SHOT[name]})
        for seed in seeds:
            coop = train_run("CoOp", authorised, authorised, seed)
            rows.append({**base, "method": "CoOp", "seed": seed,
                         "value": metrics.accuracy(coop_logits(coop, data), data["labels"])})
            if setting not in TRAINED:
                continue
            ipclip = runs.setdefault((setting, seed), train_run("IP-CLIP", authorised, unauthorised, seed))
            # scoring B x K prompts per image is costly on 2 cores: cached by the run and the scored images
            score_spec = {"run": run_spec("IP-CLIP", authorised, unauthorised, seed), "scored": name,
                          "images": cache.content_key([data["features"].sum().item(), data["labels"].tolist()])}
            accuracy = cache.cached("ip-clip-scores", score_spec, lambda: metrics.accuracy(
                ipclip_logits(trained_prompt(ipclip), data), data["labels"]), name=f"IP-CLIP-{seed}")
            rows.append({**base, "method": "IP-CLIP", "seed": seed, "value": float(accuracy)})
    for seed in seeds if setting in TRAINED else []:
        logs += [{**entry, "setting": setting, "seed": seed} for entry in runs[setting, seed]["log"]]
rows = pd.DataFrame(rows)
logs = pd.DataFrame(logs)
METHODS = ["zero-shot CLIP", "CoOp", "IP-CLIP"]
table = (rows.groupby(["setting", "role", "method"], sort=False)["value"]
         .agg(lambda v: f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}")
         .unstack("method").reindex(columns=METHODS))  # no IP-CLIP column when no setting was trained
table

# %%
figure, axes = plt.subplots(1, len(SETTINGS), figsize=(4.6 * len(SETTINGS), 3.6), squeeze=False, sharey=True)
for axis, (kind, authorised, unauthorised) in zip(axes[0], SETTINGS):
    setting = setting_name(kind, authorised, unauthorised)
    sns.barplot(rows[rows["setting"] == setting], x="role", y="value", hue="method", hue_order=METHODS,
                errorbar="sd", ax=axis)
    axis.axhline(100 / len(CLASSNAMES), color="grey", linestyle=":", linewidth=1)
    axis.set(title=setting, xlabel="", ylabel="accuracy (%)")
    if axis is not axes[0][0]:
        axis.get_legend().remove()
figure.tight_layout()
plt.show()

# %% [markdown]
# Training curves: the authorised cross-entropy (which IP-CLIP minimises) against the unauthorised one (which it
# maximises up to the clamp at 5), mean over seeds.

# %%
if len(logs):  # no curves when no setting was trained
    curves = logs.melt(id_vars=["setting", "seed", "step"], value_vars=["ce_s", "ce_t"], var_name="term")
    grid = sns.relplot(curves, x="step", y="value", hue="term", col="setting", kind="line", errorbar=None,
                       height=3.0, aspect=1.3, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    plt.show()

# %% [markdown]
# ## Sanity checks that can fail
#
# 1. **AdaIN statistics** equal torch's own reductions: `torch.mean` and the population `torch.std` with the repo's
#    $\varepsilon$ added inside the root ($\sqrt{\mathrm{var} + \varepsilon/N}$), recomputed from a fresh forward pass
#    on the first authorised images, against the cached statistics the prompts were trained on.
# 2. **Sign convention**: raising the unauthorised cross-entropy (below the clamp) lowers $\mathcal L$ one for one,
#    raising the authorised one raises it, and beyond the clamp the unauthorised term no longer moves $\mathcal L$
#    (autograd gradients of the total loss).
# 3. **The bank keeps the $K$ most confident entries**: rebuilt with seed 1's batch order on the initial prompts,
#    each class's authorised bank confidences equal `torch.topk` over the correctly classified images seen.

# %%
kind, authorised, unauthorised = SETTINGS[0]
source = DOMAIN_DATA[authorised, "train"]
dataset, indices, _ = pool(authorised, "train", train_images_per_class)
captured = []
hooks = [layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
         for layer in style_layers(loaded.model.visual)]
with torch.no_grad():
    loaded.model.encode_image(torch.stack([loaded.preprocess(dataset[int(i)][0]) for i in indices[:16]]))
for hook in hooks:
    hook.remove()
batch_first = getattr(getattr(loaded.model.visual, "transformer", None), "batch_first", True)
adain_error = 0.0
for layer, output in enumerate(captured):
    tokens = as_tokens(output, batch_first).float()
    n = tokens.shape[1]
    reference_mu = torch.mean(tokens, dim=1)
    reference_sigma = torch.sqrt(torch.var(tokens, dim=1, unbiased=False) + ADAIN_EPSILON / n)
    adain_error = max(adain_error, float((source["mu"][layer][:16] - reference_mu).abs().max()),
                      float((source["sigma"][layer][:16] - reference_sigma).abs().max()))
assert adain_error < 1e-4, adain_error

probe = {"ce_s": torch.tensor(1.0, requires_grad=True), "ce_t": torch.tensor(2.0, requires_grad=True),
         "ce_is": torch.tensor(1.5), "ce_it": torch.tensor(1.5), "mse": torch.tensor(0.2),
         "entropy": torch.tensor(1.0), "kl": torch.tensor(0.1)}
ipclip_loss(probe).backward()
beyond = {**probe, "ce_s": torch.tensor(1.0), "ce_t": torch.tensor(7.0, requires_grad=True)}
ipclip_loss(beyond).backward()
signs = {"dL/dCE_s": float(probe["ce_s"].grad), "dL/dCE_t": float(probe["ce_t"].grad),
         "dL/dCE_t beyond the clamp": float(beyond["ce_t"].grad)}
assert signs == {"dL/dCE_s": 1.0, "dL/dCE_t": -1.0, "dL/dCE_t beyond the clamp": 0.0}, signs

seed_everything(seeds[0])
check_prompt = IPPrompt(loaded, CLASSNAMES, LAYER_WIDTHS)
check_orders = batch_orders(len(source["labels"]), len(DOMAIN_DATA[unauthorised, "train"]["labels"]),
                            torch.Generator().manual_seed(seeds[0]))
bank, _ = build_banks(check_prompt, source, DOMAIN_DATA[unauthorised, "train"], [s for s, _ in check_orders],
                      [t for _, t in check_orders])
seen = torch.cat([s for s, _ in check_orders])[:bank["seen"]]
with torch.no_grad():
    text, _ = check_prompt([mu[seen] for mu in source["mu"]], [sigma[seen] for sigma in source["sigma"]])
    probabilities = per_image_logits(source["features"][seen], text).softmax(-1)
confidence, predicted = probabilities.max(-1)
correct = predicted == source["labels"][seen]
bank_error = 0.0
for label in range(len(CLASSNAMES)):
    top = torch.sort(confidence[correct & (predicted == label)], descending=True).values[:BANK_SIZE]
    expected = torch.cat([top, torch.zeros(BANK_SIZE - len(top))])
    bank_error = max(bank_error, float((torch.sort(bank["confidence"][label], descending=True).values
                                        - expected).abs().max()))
assert bank_error < 1e-6, bank_error
pd.Series({"AdaIN max |difference|": adain_error, **signs, "bank max |difference|": bank_error,
           "bank: authorised images seen": bank["seen"], "bank: correctly classified": int(correct.sum())})

# %% [markdown]
# ## What the paper reports
#
# The paper's tables (authorised / unauthorised accuracy per Office-31, Office-Home and Mini-DomainNet pair) could not
# be confirmed from a primary source here (papers.md §23), and the formulas of its three trade-off metrics are
# unconfirmed too, so no reported rows are stored and no derived metric is computed.

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# Per setting, with margins that are ours (the paper states no threshold): on the held-out *unauthorised* images
# IP-CLIP is at least 10 points below zero-shot CLIP and below plain prompt tuning (target accuracy dropped); on the
# held-out *authorised* images it is no more than 5 points below either (source accuracy kept). Preconditions: the
# objective $\mathcal L$ fell over training in every seed (mean of the last 5 steps below the mean of the first 5:
# the shortened schedule made progress on what IP-CLIP optimises), and zero-shot CLIP is at least 10 points above
# chance on the unauthorised domain (otherwise there is nothing to protect).

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = []
for _kind, _authorised, _unauthorised in (
        [("target-specified", a, u) for a, u in target_specified] + [("ownership", a, a + "+watermark") for a in ownership]):
    _setting = f"{_kind}: {_authorised} → {_unauthorised}"
    _requires = (f"protectable | {_setting}", f"loss-fell | {_setting}")
    for _baseline in ("zero-shot CLIP", "CoOp"):
        CLAIMS += [
            Claim(f"unauthorised-dropped-vs-{_baseline.split()[0].lower()} | {_setting}",
                  f"{_setting}: IP-CLIP's accuracy on unauthorised images is more than 10 points below {_baseline}'s",
                  method="IP-CLIP", baseline=_baseline, where={"setting": _setting, "role": "unauthorised"},
                  margin=10.0, higher_is_better=False, requires=_requires),
            Claim(f"authorised-kept-vs-{_baseline.split()[0].lower()} | {_setting}",
                  f"{_setting}: IP-CLIP's accuracy on authorised images is within 5 points of {_baseline}'s or above",
                  method="IP-CLIP", baseline=_baseline, where={"setting": _setting, "role": "authorised"},
                  margin=-5.0, requires=_requires),
        ]

# %%
PRECONDITIONS = []
for kind, authorised, unauthorised in SETTINGS:
    setting = setting_name(kind, authorised, unauthorised)
    if setting in TRAINED:  # an untrained setting's objective was never run: its loss-fell is not measured
        fell = [runs[setting, seed]["log"] for seed in seeds]
        drops = [np.mean([e["loss"] for e in log[:5]]) - np.mean([e["loss"] for e in log[-5:]]) for log in fell]
        PRECONDITIONS.append(at_least(f"loss-fell | {setting}", f"{setting}: smallest drop over seeds of the "
                                      "training objective L (mean of the first 5 vs the last 5 steps)",
                                      float(min(drops)), 1e-9))
    PRECONDITIONS.append(PROTECTABLE[setting])
pd.DataFrame([{"precondition": p.id, "passed": p.passed, "detail": p.detail} for p in PRECONDITIONS])

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS)
