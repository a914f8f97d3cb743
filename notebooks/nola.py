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
# # NoLA — CLIP meets DINO for Tuning Zero-Shot Classifier using Unlabeled Image Collections
#
# Imam, Marew, Hassan, Fiaz, Aji, Cholakkal — 2024 · [arXiv:2411.19346](https://arxiv.org/abs/2411.19346) ·
# official code [fazliimam/NoLA](https://github.com/fazliimam/NoLA) (no licence file; read, not copied), built on
# [LaFTer](https://github.com/jmiemirza/LaFTer) and [DINO](https://github.com/facebookresearch/dino).
#
# **Claim.** Without any label, NoLA improves CLIP's zero-shot classifier on a dataset from its unlabeled
# training images in three stages: (i) a classifier from LLM class descriptions ("CDE"), which the paper says
# classifies better than CLIP's name-only prompts, (ii) its most confident predictions as pseudo-labels to train an
# alignment module on a self-supervised (DINO) encoder, (iii) that module's predictions on a weak view as targets
# to prompt-tune CLIP's vision encoder on a strong view. The paper reports an average gain of 3.6 points over
# LaFTer (the previous label-free state of the art) on 11 datasets (abstract); a secondary summary quotes +11.91
# points over zero-shot CLIP (unconfirmed; the per-dataset cells are unconfirmed too).
#
# **This notebook** runs the three stages, a LaFTer-style baseline and zero-shot CLIP on the same data and seeds,
# and tests the paper's three claims: CDE beats CLIP's prompts, NoLA beats zero-shot CLIP, NoLA beats LaFTer.
# The `offline` profile uses the library's tiny CLIP and its tiny DINO-trained ViT on a fixed subset of the toy suite chosen for time (README, "The toy suite"): generic objects (`toy`, modelled on
# Caltech101), fine-grained aircraft variants (`toy-aircraft`, FGVC-Aircraft) and land use from above (`toy-satellite`,
# EuroSAT); each
# dataset is adapted on its own unlabeled train split and tested on its test split. The `paper` profile runs
# OpenAI ViT-B/32 with DINO ViT-B/16 on DTD and EuroSAT with the official schedule.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
ssl_encoder = "clipbook-tiny-dino-vit"
datasets = ["toy", "toy-aircraft", "toy-satellite"]
seeds = [1, 2, 3]
num_prompt_tokens = 16
top_k_fraction = 0.2
top_k_minimum = 16
alignment_epochs = 50
alignment_batch_size = 32
epochs = 1
batch_size = 32
learning_rate = 0.004
weight_decay = 0.01
final_model = "last"
lafter_text_steps = 400
lafter_text_lr = 0.0005
ablate_views = True
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Bool, Float, Int, Str, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "epochs", "learning_rate", "device",
    ssl_encoder=Str(["clipbook-tiny-dino-vit", "dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8"],
                    help="the alignment module's self-supervised encoder (official: dino_vitb16)"),
    num_prompt_tokens=Int(minimum=0, help="visual prompt tokens (cfg.NUM_TOKENS = 16; a code comment says 50)"),
    top_k_fraction=Float(minimum=0, maximum=1, exclusive_minimum=True,
                         help="find_k: k = max(top_k_minimum, floor(top_k_fraction * N / C)) (official 0.2)"),
    top_k_minimum=Int(minimum=1, help="find_k's floor on k (official 16)"),
    alignment_epochs=Int(minimum=1, help="alignment-module epochs (cfg.TAAL_EPOCHS = 50)"),
    alignment_batch_size=Int(minimum=1, help="alignment-module batch (official 32)"),
    batch_size=Int(minimum=1, help="prompt-tuning batch (official 512; offline 32: 1200 toy images at 512 are 2 steps)"),
    weight_decay=Float(minimum=0, help="AdamW weight decay of prompt tuning (setup_optim hard-codes 0.01; "
                                       "config.yml's 1e-4 is never read)"),
    final_model=Str(["last", "best_val"], help="the last model, or the epoch with the best labelled-val accuracy "
                                               "(official TEST.FINAL_MODEL: best_val)"),
    lafter_text_steps=Int(minimum=1, help="LaFTer's text-classifier steps (text_cls_epochs: 400 for DTD and EuroSAT)"),
    lafter_text_lr=Float(minimum=0, exclusive_minimum=True, help="LaFTer's text-classifier learning rate "
                                                                 "(scripts/LaFTer.sh: 5e-4)"),
    ablate_views=Bool(help="also tune both students on the weak view (first model, dataset and seed)"),
    needs=("tiny-clip", "tiny-ssl"),
)

# %%
import copy
import functools
import math
import random

import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn as nn
import torch.nn.functional as F
import matplotlib.pyplot as plt
from PIL import ImageFilter
from torchvision import transforms

import clipbook
from clipbook import cache, claims, descriptors, determinism, features, parallel, zeroshot
from clipbook.batch.parameters import ParameterError
from clipbook.data import registry
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models import tiny_ssl, towers
from clipbook.models.loader import load_model, rehearsing
from clipbook.report.rows import summarise
from clipbook.training.loop import code_fingerprint

session = clipbook.start(SPEC, globals())

# NoLA's dataset-specific templates (utils/data_utils.py ds_specific_templates), added to the descriptions
NOLA_TEMPLATES = {
    "dtd": ["a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} thing.",
            "a photo of a {} object.", "a photo of the {} texture.", "a photo of the {} pattern.",
            "a photo of the {} thing.", "a photo of the {} object."],
    "eurosat": ["a satellite photo of {}.", "a satellite photo of a {}.", "a satellite photo of the {}.",
                "a centered satellite photo of {}.", "This is an aerial image of a {}.", "a aerial image of {}."],
    "oxford_flowers": ["a photo of a {}, a type of flower."],
    "sun397": ["a photo of a {}.", "a photo of the {}."],
    "imagenet": zeroshot.TIP_IMAGENET_TEMPLATES, "caltech101": zeroshot.TIP_IMAGENET_TEMPLATES,  # same 7 templates
    "ucf101": [f"a {kind} of {article} person {verb}{{}}."
               for verb in ("", "using ", "doing ", "during ", "performing ", "practicing ")
               for article in ("a", "the") for kind in ("photo", "video", "example", "demonstration")],
}
TRAINING_THREADS = determinism.SMALL_WORK_THREADS  # training here is many small steps


def is_toy(dataset_name: str) -> bool:
    return registry.DATASETS[dataset_name]["kind"] == "toy"


def descriptor_source(dataset_name: str) -> str:
    return "toyworld" if is_toy(dataset_name) else f"nola-{dataset_name}"


unsupported = [name for name in datasets if not is_toy(name) and name not in NOLA_TEMPLATES]
if unsupported:  # a registry dataset NoLA has no templates for (SPEC checks only that it exists)
    raise ParameterError(f"parameter 'datasets' must be NoLA datasets ({', '.join(sorted(NOLA_TEMPLATES))}) or toy "
                         f"datasets; got {unsupported}")
for name in datasets:
    descriptors.load_descriptors(descriptor_source(name))  # offline: fails naming the file and its URL
ssl = tiny_ssl.load_ssl_encoder(ssl_encoder, device=session.device)
clips = [load_model(name, tag, device=session.device) for name, tag in models]

# %% [markdown]
# ## Stage (i): the class-description (CDE) classifier
#
# For class $c$, let $S_c$ be its descriptions (LLM sentences in the paper; the toy world's own visual
# descriptions offline) plus the dataset's templates filled with the class name. With CLIP's text encoder $E_T$,
#
# $$\bar e_c = \frac{1}{|S_c|}\sum_{s\in S_c}\frac{E_T(s)}{\lVert E_T(s)\rVert},\qquad
#   t_c = \frac{\bar e_c}{\lVert \bar e_c\rVert},$$
#
# and the zero-shot CDE classifier scores an image by $x^\top t_c$. The matrix $T=[t_1\dots t_C]$ also initialises
# the bias-free linear `cde_adapter` of stage (iii) (`trainers/NoLA.py` `NoLAUFT.gen_emb`).

# %%
def class_texts(task) -> list[list[str]]:
    """S_c for every class: descriptions, then templates (gen_labels_with_descrptions + gen_labels_with_templates)."""
    source = descriptors.load_descriptors(descriptor_source(task.dataset_name))
    found = descriptors.descriptors_for(task.classnames, source)
    templates = task.templates if is_toy(task.dataset_name) else NOLA_TEMPLATES[task.dataset_name]
    return [list(described) + [t.format(name.replace("_", " ")) for t in templates]
            for described, name in zip(found, task.classnames)]


def cde_classifier(loaded, texts_per_class) -> torch.Tensor:
    return zeroshot.prompt_set_classifier(loaded, texts_per_class)  # (D, C): normalise, average, renormalise


# %% [markdown]
# ## Stage (ii): pseudo-labels and the alignment module
#
# CDE zero-shot on the *unlabeled* train split gives $p_i = \operatorname{softmax}(s\,\hat x_i^\top T)$ with CLIP's
# logit scale $s$. Per predicted class, the $k$ most confident images are kept,
#
# $$k = \max\big(16,\ \lfloor 0.2\,N/C \rfloor\big),$$
#
# (a class nobody predicts borrows the images ranking it second, then third, ...; an image picked twice is kept
# once). A small
# MLP $h$ (SSL features $\to 256\to C$) is trained on the SSL encoder's features of those images with their
# pseudo-labels: Adam (PyTorch defaults), cross-entropy, 50 epochs, batch 32 (`utils/utils.py` `find_k`,
# `utils/model_utils.py` `top_k_indices_per_class2`, `trainers/NoLA.py` `Taal`, `AdapterMLP`, `train_taal`).

# %%
def find_k(num_images: int, num_classes: int) -> int:
    return max(top_k_minimum, math.floor(num_images / num_classes * top_k_fraction))


def top_k_per_class(probabilities: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Indices of the selected images, their pseudo-labels, and how many classes had to borrow from a lower
    choice (top_k_indices_per_class2). The official code stops at the third choice (NotImplementedError); we
    go further down the ranking, which the noisy toy domain needs."""
    confidence, ranked = probabilities.sort(dim=1, descending=True, stable=True)
    chosen, labels, borrowed = [], [], 0
    for c in range(probabilities.shape[1]):  # the official loop runs over the classes present in the labels
        for rank in range(probabilities.shape[1]):
            members = (ranked[:, rank] == c).nonzero().flatten()
            if len(members):
                break
        borrowed += rank > 0
        order = confidence[members, rank].argsort(descending=True, stable=True)[:k]
        chosen.append(members[order])
        labels.append(torch.full((len(order),), c))
    chosen, labels = torch.cat(chosen), torch.cat(labels)
    first = np.unique(chosen.numpy(), return_index=True)[1]  # drop_duplicates(keep="first")
    keep = torch.as_tensor(np.sort(first))
    return chosen[keep], labels[keep], borrowed


class AlignmentModule(nn.Module):
    """h: SSL features -> 256 -> C (AdapterMLP)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.mlp(x)


def train_alignment(ssl_features: torch.Tensor, pseudo_labels: torch.Tensor, num_classes: int, seed: int):
    with deterministic_torch(TRAINING_THREADS):
        seed_everything(seed)
        module = AlignmentModule(ssl_features.shape[1], num_classes)
        optimizer = torch.optim.Adam(module.parameters())
        generator = torch.Generator().manual_seed(seed)
        for _ in range(alignment_epochs):
            for batch in torch.randperm(len(ssl_features), generator=generator).split(alignment_batch_size):
                loss = F.cross_entropy(module(ssl_features[batch]), pseudo_labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return module.eval()


# %% [markdown]
# ## Stage (iii): prompt-tuning CLIP's vision encoder
#
# $N_p=16$ learnable prompt tokens $P$ enter the vision encoder $E_V$, and the CDE-initialised adapter $W$ (bias-free,
# $W_0 = T^\top$) classifies its *unnormalised* output. Each unlabeled image gives a weak view $x^w$ (the eval
# transform) and a strong view $x^s$ (random resized crop 0.2–1, flip, colour jitter, perspective, blur); the
# target is the alignment module's prediction on the weak view,
#
# $$\mathcal L = \operatorname{CE}_{\varepsilon=0.1}\Big(W\,E_V(x^s; P),\ \arg\max_c h\big(\phi(x^w)\big)_c\Big),$$
#
# with label smoothing 0.1 (`LabelSmoothingCrossEntropy`). Trainable: $P$, every vision-tower parameter whose name
# contains `ln` or `bn`, and $W$ (`NoLA.setup_optim`); AdamW, lr 0.004, weight decay 0.01 on weights and 0 on
# biases, constant rate (the MultiStepLR has no milestones), the model in eval mode (`forward_backward`).
#
# **Where the prompts go.** On a ViT (the paper profile: open_clip's `VisionTransformer`) the prompts are inserted
# between the class token and the patch tokens after `ln_pre`, without positional embedding, exactly as the
# official `incorporate_prompt` (VPT-shallow). The tiny CLIP's tower is a `ModifiedResNet`: it has no tokens and
# BatchNorm instead of LayerNorm. Its closest analogue: the 16 prompts are appended, without positional embedding,
# to the token sequence of the final attention pool, so they act as extra keys and values for the pooled query as
# VPT prompts do for the class token; the official name rule (`ln` or `bn`) then selects the BatchNorm affine
# parameters (running statistics stay frozen in eval mode). Prompts are initialised as officially,
# $U(\pm\sqrt{6/(3\cdot16\cdot16 + d)})$ with its hard-coded 16×16 patch, $d$ the token width.

# %%
def label_smoothing_cross_entropy(logits, targets, epsilon: float = 0.1):
    """utils/utils.py LabelSmoothingCrossEntropy: (1 - eps) * NLL + eps * mean over classes of -log p."""
    log_p = F.log_softmax(logits, dim=-1)
    return (1 - epsilon) * F.nll_loss(log_p, targets) + epsilon * (-log_p.sum(dim=-1)).mean() / logits.shape[-1]


def prompt_width(visual) -> int:
    return visual.attnpool.k_proj.in_features if hasattr(visual, "attnpool") else visual.class_embedding.shape[-1]


def vit_features(visual, images, prompts):
    """open_clip VisionTransformer.forward with prompts after the class token (NoLAUFT.incorporate_prompt)."""
    tokens = visual._embeds(images)  # patch embedding, class token, positional embedding, ln_pre
    if prompts is not None:
        tokens = torch.cat([tokens[:, :1], prompts.expand(len(tokens), -1, -1), tokens[:, 1:]], dim=1)
    pooled, _ = visual._pool(visual.transformer(tokens))
    return pooled @ visual.proj if visual.proj is not None else pooled


def resnet_features(visual, images, prompts):
    """open_clip ModifiedResNet.forward; the prompts join the attention pool's keys and values."""
    return towers.attention_pool(visual.attnpool, towers.resnet_trunk(visual, images), prompts)


class PromptedClassifier(nn.Module):
    """NoLAUFT: CLIP's vision tower (a copy) with prompt tokens, and the bias-free cde_adapter."""

    def __init__(self, loaded, classifier: torch.Tensor, seed: int):
        super().__init__()
        self.visual = copy.deepcopy(loaded.model.visual).float()
        if not hasattr(self.visual, "attnpool"):
            assert self.visual.pool_type == "tok" and self.visual.attn_pool is None, "prompts need class-token pooling"
        width = prompt_width(self.visual)
        torch.manual_seed(seed)
        bound = math.sqrt(6.0 / (3 * 16 * 16 + width))
        self.prompt_embeddings = nn.Parameter(torch.empty(1, num_prompt_tokens, width).uniform_(-bound, bound))
        self.cde_adapter = nn.Linear(*classifier.shape, bias=False)
        self.cde_adapter.weight.data = classifier.T.clone()
        self.eval()  # as forward_backward: BatchNorm statistics stay frozen

    def image_features(self, images, use_prompts: bool = True):
        prompts = self.prompt_embeddings if use_prompts and num_prompt_tokens else None
        encode = resnet_features if hasattr(self.visual, "attnpool") else vit_features
        return encode(self.visual, images, prompts)

    def forward(self, images):
        return self.cde_adapter(self.image_features(images))

    def train(self, mode: bool = True):
        return super().train(False)  # never leave eval mode


def select_trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The official name rule: prompts, vision-tower names with 'ln' or 'bn', the adapter."""
    chosen = {}
    for name, param in model.named_parameters():
        trainable = ("prompt_embeddings" in name or "cde_adapter" in name
                     or ("visual" in name and ("ln" in name or "bn" in name)))
        param.requires_grad_(trainable)
        if trainable:
            chosen[name] = param
    return chosen


def make_optimizer(model: nn.Module):
    chosen = select_trainable(model)
    groups = [{"params": [p for n, p in chosen.items() if "bias" not in n], "weight_decay": weight_decay},
              {"params": [p for n, p in chosen.items() if "bias" in n], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.999))


# %% [markdown]
# ### Views
#
# The strong view is the official `get_random_transform`; its Gaussian blur radius (0.1–2 px at 224 px) is scaled
# to the model's input size (64 px offline). View $p$ of image $i$ is drawn with seed $(p, i)$, so every method
# sees the same views; both students are trained in lockstep on the same batches.

# %%
class RandomGaussianBlur:
    """PIL Gaussian blur with a uniformly drawn radius (utils/model_utils.py GaussianBlur)."""

    def __init__(self, sigma):
        self.sigma = tuple(sigma)

    def __call__(self, image):
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))

    def __repr__(self):
        return f"RandomGaussianBlur(sigma={self.sigma})"


def input_size(loaded) -> int:
    size = loaded.model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


def strong_transform(loaded):
    size = input_size(loaded)
    normalize = next(t for t in loaded.preprocess.transforms if isinstance(t, transforms.Normalize))
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.2, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomPerspective(distortion_scale=0.2, p=0.5, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1),
        RandomGaussianBlur((0.1 * size / 224, 2.0 * size / 224)),
        transforms.ToTensor(),
        normalize,
    ])


class StrongViews(torch.utils.data.Dataset):
    """(strong view, index) of every image; view `draw` of image i is seeded by (draw, i)."""

    def __init__(self, dataset, transform, draw: int, images=None):
        self.dataset, self.transform, self.draw, self.images = dataset, transform, draw, images

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image = self.images[index] if self.images is not None else self.dataset[index][0]
        seed = self.draw * 1_000_003 + index
        state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            try:
                return self.transform(image), index
            finally:
                random.setstate(state)


def loader_workers() -> int:
    return 0 if session.device == "cpu" else 8


class Preprocessed(torch.utils.data.Dataset):
    """(eval-preprocessed image, label): the weak view, and what the tuned encoders are tested on."""

    def __init__(self, dataset, preprocess):
        self.dataset, self.preprocess = dataset, preprocess

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image, label = self.dataset[index]
        return self.preprocess(image), label


def eval_batches(loaded, dataset, batch: int = 256):
    """Batches of the preprocessed split; a toy split is materialised once (it is re-read for every seed)."""
    loader = torch.utils.data.DataLoader(Preprocessed(dataset, loaded.preprocess), batch_size=batch,
                                         num_workers=0 if is_toy(dataset.name) else loader_workers())
    return list(loader) if is_toy(dataset.name) else loader


def test_accuracy(students: dict, batches) -> dict[str, float]:
    """Top-1 accuracy (%) of each tuned classifier on preprocessed batches (NoLA `eval_clip`)."""
    correct, total = dict.fromkeys(students, 0), 0
    with torch.no_grad(), deterministic_torch():  # large batches: the library's thread count
        for images, labels in batches:
            images = images.to(session.device)
            for name, student in students.items():
                correct[name] += int((student(images).argmax(1).cpu() == labels).sum())
            total += len(labels)
    return {name: 100.0 * count / total for name, count in correct.items()}


def prompt_tune(task, students: dict, targets: dict, seed: int, transform=None) -> dict:
    """Train every student on the same strong-view batches (or views made by `transform`) against its own
    weak-view targets."""
    optimizers = {name: make_optimizer(student) for name, student in students.items()}
    best = {name: (-1.0, None) for name in students}
    transform = transform or strong_transform(task.loaded)
    with deterministic_torch(TRAINING_THREADS):
        for epoch in range(epochs):
            views = StrongViews(task.split("train"), transform, draw=seed * 1000 + epoch, images=task.train_images)
            loader = torch.utils.data.DataLoader(
                views, batch_size=batch_size, shuffle=True, drop_last=len(views) >= batch_size,  # as Dassl
                generator=torch.Generator().manual_seed(seed * 1000 + epoch), num_workers=loader_workers())
            for images, index in loader:
                images = images.to(session.device)
                for name, student in students.items():
                    loss = label_smoothing_cross_entropy(student(images), targets[name][index].to(session.device))
                    optimizers[name].zero_grad(set_to_none=True)
                    loss.backward()
                    optimizers[name].step()
            if final_model == "best_val":  # the official TEST.FINAL_MODEL: labelled val accuracy, every epoch
                for name, accuracy in test_accuracy(students, task.val_batches).items():
                    if accuracy > best[name][0]:
                        best[name] = (accuracy, copy.deepcopy(students[name].state_dict()))
    if final_model == "best_val":
        for name, (_, state) in best.items():
            students[name].load_state_dict(state)
    return students


# %% [markdown]
# ## The LaFTer-style baseline
#
# LaFTer (Mirza et al., NeurIPS 2023), the method NoLA improves on, takes its pseudo-labels from a *text-only*
# classifier instead of a self-supervised encoder: a bias-free linear layer trained on the individual embeddings of
# the same texts $S_c$ (each a training sample, Gaussian noise σ = 0.1 added at every step; 400 full-batch steps,
# AdamW lr 5e-4, weight decay 0.01, label smoothing 0.1; LaFTer `train_txt_cls`, `LaFTerUFT.train_txt_clas`),
# applied to CLIP's features of the weak view. The same classifier initialises the adapter being tuned. We run it
# through NoLA's prompt-tuning loop (same views, batches, prompts and optimiser) so the two methods differ only in
# the pseudo-labeller and the adapter's initialisation. Two simplifications of LaFTer itself: it tunes 50 prompt
# tokens at lr 5e-4, and it recomputes the weak-view pseudo-labels with the norm parameters being tuned; here they
# come from the frozen encoder, as NoLA's do from its frozen DINO side.

# %%
def text_embeddings(loaded, texts_per_class) -> tuple[torch.Tensor, torch.Tensor]:
    """Every text of every class, L2-normalised, with its class (LaFTer txt_features_for_text_cls)."""
    flat = [text for texts in texts_per_class for text in texts]
    labels = torch.tensor([c for c, texts in enumerate(texts_per_class) for _ in texts])
    return F.normalize(loaded.encode_text_prompts(flat).float().cpu(), dim=-1), labels


def train_text_classifier(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    with deterministic_torch(TRAINING_THREADS):
        seed_everything(seed)
        adapter = nn.Linear(embeddings.shape[1], num_classes, bias=False)
        optimizer = torch.optim.AdamW(adapter.parameters(), lr=lafter_text_lr, weight_decay=0.01)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(lafter_text_steps):
            noisy = embeddings + 0.1 * torch.randn(embeddings.shape, generator=generator)
            loss = F.cross_entropy(adapter(noisy), labels, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return adapter.weight.detach().T.clone()  # (D, C), like the CDE classifier



# %% [markdown]
# ## The experiment
#
# The library's classification harness holds each (CLIP, dataset): splits, templates, CLIP's cached features and
# the zero-shot classifier. NoLA adds the texts $S_c$, the CDE classifier, the SSL encoder's features of the same
# preprocessed image (NoLA feeds one tensor to both) and the stage-(ii) selection. Per seed: alignment module, text
# classifier, then the two students tuned side by side.
#
# One control, not part of NoLA: the alignment module trained on *CLIP's* image features of the same selected images
# with the same pseudo-labels. It separates the two things stage (ii) needs: pseudo-labels worth learning from, and
# an encoder whose features carry the class. The train split's labels are never used for training; they only
# score the targets (metric `target accuracy`).

# %%
class NoLATask(ClassificationTask):
    """One CLIP on one dataset (the library's harness) plus NoLA's texts, CDE classifier, SSL features and
    stage-(ii) selection."""

    def __init__(self, loaded, dataset_name: str):
        super().__init__(loaded, dataset_name)
        self.texts = class_texts(self)
        self.cde = cde_classifier(loaded, self.texts)
        self.text_embeddings, self.text_labels = text_embeddings(loaded, self.texts)
        self.x_train, self.y_train = self.features("train")  # the weak view = the eval transform; labels: scoring only
        self.x_test, self.y_test = self.features("test")
        self.s_train, self.s_test = self.ssl_features("train"), self.ssl_features("test")
        scale = loaded.model.logit_scale.detach().exp().item()
        self.probabilities = (scale * self.x_train @ self.cde).softmax(dim=-1)  # forward_with_text_desc
        self.k = find_k(len(self.x_train), self.num_classes)
        self.selected, self.pseudo_labels, self.borrowed = top_k_per_class(self.probabilities, self.k)

    # the images the runs train and test on, drawn only when a run is not cached (`prepare_runs`)
    @functools.cached_property
    def train_images(self):
        return [image for image, _ in self.split("train")] if is_toy(self.dataset_name) else None

    @functools.cached_property
    def test_batches(self):
        return eval_batches(self.loaded, self.split("test"))

    @functools.cached_property
    def val_batches(self):
        return eval_batches(self.loaded, self.split("val")) if final_model == "best_val" else None

    def ssl_features(self, split: str) -> torch.Tensor:
        """The SSL encoder's (unnormalised) CLS features of CLIP's preprocessed images, cached by the library."""
        return features.image_features(ssl, self.split(split), transform=self.loaded.preprocess, normalize=False)

    def frozen_accuracy(self, classifier: torch.Tensor) -> float:
        return self.accuracy(self.x_test @ classifier, self.y_test)


tasks = [NoLATask(loaded, name) for loaded in clips for name in datasets]


# %% [markdown]
# ## Does the self-supervised encoder carry the class?
#
# NoLA's stage (ii) labels *every* unlabeled image by the alignment module $h(\phi(x))$, a function of the SSL
# features $\phi(x)$ alone, trained on $k$ pseudo-labelled images per class. It can correct CDE's mistakes only
# where images of one class lie together in the SSL feature space; that is the paper's premise ("DINO excels at
# extracting rich visual features"). We measure it as DINO does (`eval_knn.py`): weighted 20-NN class accuracy of
# the SSL features, train → test, with the true labels (used for this check only). This is roughly the best a
# classifier on these features reaches with *clean* labels on *every* image; the alignment module has noisy labels
# on a few.
#
# **The precondition, fixed before any run: at least 50 % on every dataset** — most images' SSL neighbourhoods vote
# for their own class. Below it, even with perfect pseudo-labels the alignment module would label most images wrongly
# from the features it is given, so stage (iii) would distil mostly wrong targets by construction and comparing NoLA
# with its baselines would measure the encoder, not the method. The bar does not depend on the toy world: it is a
# majority, 5–8× chance for the suite's 10–20 classes, far below what the paper's encoder gives (DINO ViT-B/16: 76.1 % 20-NN on
# ImageNet's 1000 classes, Caron et al. 2021, Table 2). When it fails, the claims that go through the SSL encoder
# are *not tested*; the claim about stage (i) does not need it.
#
# On the toy world the table also probes the other scene attributes (chance: 100/(number of classes) % for classes, 100/6 % for
# backgrounds, 100/8 % for colours); the last row is the same k-NN on CLIP's image features, for comparison.

# %%
SSL_KNN_MINIMUM = 50.0  # % weighted 20-NN class accuracy, on every dataset (see above)
CLIP_KNN_ROW = "class, from CLIP's image features"


def attribute_codes(task: NoLATask, name: str) -> tuple[np.ndarray, np.ndarray]:
    train, test = task.split("train").attribute(name), task.split("test").attribute(name)
    codes = np.unique(np.concatenate([train, test]), return_inverse=True)[1]
    return codes[:len(train)], codes[len(train):]


def ssl_knn(task: NoLATask) -> dict:
    attributes = {"class": (task.y_train, task.y_test)}
    if is_toy(task.dataset_name):
        attributes.update({name: attribute_codes(task, name) for name in ("background", "colour")})
    found = {name: tiny_ssl.knn_accuracy(task.s_train, train, task.s_test, test)
             for name, (train, test) in attributes.items()}
    found[CLIP_KNN_ROW] = tiny_ssl.knn_accuracy(task.x_train, task.y_train, task.x_test, task.y_test)
    return found


knn = pd.DataFrame({(task.model_name, task.dataset_name): ssl_knn(task) for task in tasks})
ssl_precondition = claims.at_least(
    "ssl-encoder-carries-class",
    f"{ssl_encoder}'s weighted 20-NN class accuracy, lowest over {', '.join(datasets)}",
    value=float(knn.loc["class"].min()), minimum=SSL_KNN_MINIMUM, unit=" %")
print(ssl_precondition.detail)
knn.round(2)

# %% [markdown]
# ### The runs

# %%
def frozen_rows(task: NoLATask) -> list[dict]:
    """What does not depend on a seed: the two zero-shot classifiers, stage (ii)'s selection, the k-NN check."""
    base = {"model": task.model_name, "dataset": task.dataset_name}
    return [{**base, "method": "zero-shot CLIP", "metric": "accuracy", "value": task.zero_shot_accuracy()},
            {**base, "method": "CDE zero-shot", "metric": "accuracy", "value": task.frozen_accuracy(task.cde)},
            {**base, "method": "CDE top-k pseudo-labels", "metric": "target accuracy",
             "value": task.accuracy(task.pseudo_labels, task.y_train[task.selected]),
             "k": task.k, "selected": len(task.selected), "classes borrowed": task.borrowed},
            *[{**base, "method": encoder, "metric": "20-NN class accuracy (labelled diagnostic)",
               "value": knn.loc[row, (task.model_name, task.dataset_name)]}
              for encoder, row in (("SSL encoder", "class"), ("CLIP image encoder", CLIP_KNN_ROW))]]


def seed_rows(run: tuple[NoLATask, int]) -> tuple[list[dict], tuple[dict, dict]]:
    """One seed on one dataset: the rows, and the students' initial classifiers and targets (for the ablation)."""
    task, seed = run
    alignment = train_alignment(task.s_train[task.selected], task.pseudo_labels, task.num_classes, seed)
    # control, not part of NoLA: the same module on CLIP's own image features of the same images
    clip_alignment = train_alignment(task.x_train[task.selected], task.pseudo_labels, task.num_classes, seed)
    text_classifier = train_text_classifier(task.text_embeddings, task.text_labels, task.num_classes, seed)
    with torch.no_grad():
        targets = {"NoLA": alignment(task.s_train).argmax(1), "LaFTer-style": (task.x_train @ text_classifier).argmax(1)}
        accuracy = {"alignment module": task.accuracy(alignment(task.s_test), task.y_test),
                    "alignment module on CLIP features (control)": task.accuracy(clip_alignment(task.x_test), task.y_test),
                    "LaFTer text classifier": task.frozen_accuracy(text_classifier)}
    initial = {"NoLA": task.cde, "LaFTer-style": text_classifier}
    students = {name: PromptedClassifier(task.loaded, classifier, seed).to(session.device)
                for name, classifier in initial.items()}
    if seed == seeds[0]:  # prompts in, nothing trained
        accuracy.update({f"{name}, prompts untrained": value
                         for name, value in test_accuracy(students, task.test_batches).items()})
    accuracy.update(test_accuracy(prompt_tune(task, students, targets, seed), task.test_batches))
    base = {"model": task.model_name, "dataset": task.dataset_name, "seed": seed}
    return ([{**base, "method": method, "metric": "accuracy", "value": value} for method, value in accuracy.items()]
            + [{**base, "method": method, "metric": "target accuracy", "value": task.accuracy(target, task.y_train)}
               for method, target in targets.items()]), (initial, targets)


# What a trained run depends on: its models and data, every setting of the method, and the method's code. The runs
# are cached under it (content-addressed, like the library's features), so a warm run only reads them.
RUN_SETTINGS = ("num_prompt_tokens", "top_k_fraction", "top_k_minimum", "alignment_epochs", "alignment_batch_size",
                "epochs", "batch_size", "learning_rate", "weight_decay", "final_model", "lafter_text_steps",
                "lafter_text_lr")
METHOD_CODE = (class_texts, cde_classifier, find_k, top_k_per_class, AlignmentModule, train_alignment,
               label_smoothing_cross_entropy, prompt_width, vit_features, resnet_features, PromptedClassifier,
               select_trainable, make_optimizer, RandomGaussianBlur, strong_transform, StrongViews, Preprocessed,
               eval_batches, test_accuracy, prompt_tune, text_embeddings, train_text_classifier, seed_rows)


def run_spec(task: NoLATask, seed: int, what: str) -> dict:
    return {"version": 1, "what": what, "model": task.loaded.identity, "ssl": ssl.identity,
            "data": [task.split(split).fingerprint() for split in ("train", "val", "test")], "seed": seed,
            "settings": {name: globals()[name] for name in RUN_SETTINGS},
            "code": [code_fingerprint(piece) for piece in METHOD_CODE]}


def cached_runs(runs: list, run) -> list:
    """`run` over (task, seed) pairs, each read from the cache where it is held; the missing ones run as below. The
    rehearsal always trains (its models are random draws: nothing to reuse)."""
    specs = [run_spec(task, seed, "runs") for task, seed in runs]
    missing = [i for i, spec in enumerate(specs)
               if rehearsing() or not cache.entry_path("nola-runs", spec).exists()]
    for task in dict.fromkeys(runs[i][0] for i in missing):  # drawn here, before the forks, so each is drawn once
        task.train_images, task.test_batches, task.val_batches
    computed = dict(zip(missing, parallel.map_jobs(run, [runs[i] for i in missing], device=session.device)))
    if rehearsing():
        return [computed[i] for i in range(len(runs))]
    return [cache.cached("nola-runs", spec, lambda i=i: computed[i] if i in computed else run(runs[i]))
            for i, spec in enumerate(specs)]


# The (dataset, seed) runs are independent: on a CPU they run on every core as forked processes
# (`clipbook.parallel`, the results of a sequential loop), the largest train splits first.
runs = sorted([(task, seed) for task in tasks for seed in seeds], key=lambda run: -len(run[0].x_train))
results = dict(zip([(task.model_name, task.dataset_name, seed) for task, seed in runs],
                   cached_runs(runs, seed_rows)))
student_setups = {key: setup for key, (_, setup) in results.items()}  # for the view ablation
rows = pd.DataFrame([row for task in tasks for row in frozen_rows(task) + [
    r for seed in seeds for r in results[(task.model_name, task.dataset_name, seed)][0]]])
METHODS = ["zero-shot CLIP", "CDE zero-shot", "alignment module", "alignment module on CLIP features (control)",
           "LaFTer text classifier", "LaFTer-style", "NoLA"]
accuracy_summary = summarise(rows[rows.metric == "accuracy"])
accuracy_summary.pivot_table(index="method", columns=["model", "dataset"], values=["mean", "std"],
                             sort=False).reindex(METHODS).round(2)

# %% [markdown]
# How good are the targets each student is trained on? Accuracy (%) against the train labels, which no method sees:
# stage (ii)'s selected pseudo-labels (`k` per class, `selected` distinct images), then each student's targets on
# the whole train split (mean over seeds).

# %%
targets_table = rows[rows.metric == "target accuracy"].groupby(["model", "dataset", "method"], sort=False)
targets_table[["value", "k", "selected", "classes borrowed"]].mean().round(2)

# %% [markdown]
# Where the tuned accuracy comes from: each classifier frozen on CLIP's features, then with the prompts inserted but
# nothing trained yet (first seed), then after prompt tuning (mean over seeds).

# %%
STAGES = ["CDE zero-shot", "NoLA, prompts untrained", "NoLA", "LaFTer text classifier",
          "LaFTer-style, prompts untrained", "LaFTer-style"]
accuracy_summary.pivot_table(index=["model", "dataset"], columns="method", values="mean")[STAGES].round(2)

# %% [markdown]
# **Ablation: the strong view.** The official strong view crops 20–100 % of the image area and shifts its colours. On
# 224-px photos the object usually survives; on the toy world's 64-px scenes, whose one object is small and whose
# colour is part of what the captions describe, it often does not. At the first seed on the first model and dataset,
# both students are tuned again on the weak view itself (the eval transform: no crop, no colour change), everything
# else unchanged.

# %%
def view_ablation(task: NoLATask, seed: int) -> pd.DataFrame:
    initial, targets = student_setups[(task.model_name, task.dataset_name, seed)]
    students = {name: PromptedClassifier(task.loaded, classifier, seed).to(session.device)
                for name, classifier in initial.items()}

    def tune_on_weak_view() -> dict[str, float]:
        tuned = prompt_tune(task, students, targets, seed, transform=task.loaded.preprocess)
        return test_accuracy(tuned, task.test_batches)

    weak = tune_on_weak_view() if rehearsing() else \
        cache.cached("nola-runs", run_spec(task, seed, "weak-view ablation"), tune_on_weak_view)
    strong = rows[(rows.model == task.model_name) & (rows.dataset == task.dataset_name) & (rows.seed == seed)
                  & (rows.metric == "accuracy")].set_index("method")["value"]
    return pd.DataFrame({"tuned on the strong view (official)": strong[list(weak)],
                         "tuned on the weak view": pd.Series(weak)}).round(2)


view_ablation(tasks[0], seeds[0]) if ablate_views else None

# %% [markdown]
# ## Sanity checks against independent formulations
#
# 1. `find_k` gives the floor of 16 for a small collection and $\lfloor 0.2N/C\rfloor$ above it.
# 2. Stage (ii) keeps at most $k$ images per class, and for every predicted class they are exactly the $k$ most
#    confident of the images predicted as that class (recomputed with a plain NumPy sort).
# 3. The adapter's initialisation equals the class means of the individually encoded, normalised texts, renormalised
#    (computed here with `index_add` over the flat list the LaFTer baseline uses).
# 4. The official name rule selects only prompts, norm-layer parameters of the vision tower and the adapter (checked
#    by module type), and one AdamW step changes exactly those tensors and nothing else.
# 5. With the prompts disabled, the copied vision tower reproduces the frozen CLIP image features; with them
#    enabled, the features move.
# 6. The official label-smoothing loss equals PyTorch's `cross_entropy(label_smoothing=0.1)`.
# 7. The weighted k-NN of the precondition equals a naive loop over test images.

# %%
def naive_knn(train, train_labels, test, test_labels, k: int = 20, temperature: float = 0.07) -> float:
    train, test = F.normalize(train.double(), dim=-1), F.normalize(test.double(), dim=-1)
    correct = 0
    for x, label in zip(test, test_labels.tolist()):
        similarity = train @ x
        votes = {}
        for j in similarity.argsort(descending=True, stable=True)[:k].tolist():
            votes[int(train_labels[j])] = votes.get(int(train_labels[j]), 0.0) + math.exp(float(similarity[j]) / temperature)
        correct += max(votes, key=votes.get) == label
    return 100.0 * correct / len(test)


def check_stages(task: NoLATask, seed: int = seeds[0]) -> pd.Series:
    probabilities = task.probabilities.numpy()
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    selected, labels = task.selected.numpy(), task.pseudo_labels.numpy()
    mismatched, taken = 0, set()
    for c in range(task.num_classes):
        members = np.flatnonzero(predicted == c)
        top = set(members[np.argsort(-confidence[members], kind="stable")[:task.k]])
        mismatched += len(members) > 0 and top - taken != set(selected[labels == c])  # earlier classes keep repeats
        taken |= set(selected[labels == c])

    sums = torch.zeros(task.num_classes, task.text_embeddings.shape[1])
    sums.index_add_(0, task.text_labels, task.text_embeddings)
    means = F.normalize(sums / torch.bincount(task.text_labels).unsqueeze(1), dim=-1)
    student = PromptedClassifier(task.loaded, task.cde, seed)
    adapter_error = float((student.cde_adapter.weight.detach() - means).abs().max())
    images = torch.stack([task.loaded.preprocess(task.split("train")[i][0]) for i in range(8)])
    with torch.no_grad(), deterministic_torch(TRAINING_THREADS):
        frozen = task.loaded.model.encode_image(images).float()
        unprompted = student.image_features(images, use_prompts=False)
        prompted = student.image_features(images)

    before = {name: p.detach().clone() for name, p in student.named_parameters()}
    optimizer = make_optimizer(student)
    chosen = {name for name, p in student.named_parameters() if p.requires_grad}
    label_smoothing_cross_entropy(student(images), torch.arange(8) % task.num_classes).backward()
    optimizer.step()
    changed = {name for name, p in student.named_parameters() if not torch.equal(p.detach(), before[name])}
    norm_layers = {f"visual.{module_name}.{param_name}" for module_name, module in student.visual.named_modules()
                   if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)) for param_name, _ in module.named_parameters()}
    allowed = norm_layers | {"prompt_embeddings", "cde_adapter.weight"}
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, task.num_classes, generator=generator)
    targets = torch.randint(task.num_classes, (64,), generator=generator)
    probe = slice(0, 200)  # 200 test images suffice for the naive loop
    return pd.Series({
        "find_k(100 images, 12 classes)": find_k(100, 12),
        "find_k(N, C) here": task.k,
        "largest count per class": int(np.bincount(labels).max()),
        "classes whose selection is not their top-k": mismatched,
        "|adapter init - mean text embedding|max": adapter_error,
        "trainable tensors (official name rule)": len(chosen),
        "of which outside prompts / norm layers / adapter": len(chosen - allowed),
        "norm-layer tensors the name rule leaves frozen": len(norm_layers - chosen),
        "tensors changed by one AdamW step that are not trainable": len(changed - chosen),
        "trainable tensors unchanged by that step": len(chosen - changed),
        "|unprompted - frozen CLIP features|max": float((unprompted - frozen).abs().max()),
        "|prompted - frozen CLIP features|max": float((prompted - frozen).abs().max()),
        "|official LS loss - torch LS loss|": float((label_smoothing_cross_entropy(logits, targets)
                                                    - F.cross_entropy(logits, targets, label_smoothing=0.1)).abs()),
        "|library k-NN - naive k-NN| (200 test images)": abs(
            tiny_ssl.knn_accuracy(task.s_train, task.y_train, task.s_test[probe], task.y_test[probe])
            - naive_knn(task.s_train, task.y_train, task.s_test[probe], task.y_test[probe])),
    })


sanity = check_stages(tasks[0])
assert sanity["find_k(100 images, 12 classes)"] == 16, sanity
assert sanity["find_k(N, C) here"] == max(16, math.floor(0.2 * len(tasks[0].x_train) / tasks[0].num_classes)), sanity
assert sanity["largest count per class"] <= sanity["find_k(N, C) here"], sanity
assert sanity["classes whose selection is not their top-k"] == 0, sanity
assert sanity["|adapter init - mean text embedding|max"] < 1e-6, sanity
assert sanity["of which outside prompts / norm layers / adapter"] == 0, sanity
assert sanity["tensors changed by one AdamW step that are not trainable"] == 0, sanity
assert sanity["trainable tensors unchanged by that step"] == 0, sanity
assert sanity["|unprompted - frozen CLIP features|max"] < 1e-5, sanity
assert num_prompt_tokens == 0 or sanity["|prompted - frozen CLIP features|max"] > 1e-3, sanity
assert sanity["|official LS loss - torch LS loss|"] < 1e-6, sanity
assert sanity["|library k-NN - naive k-NN| (200 test images)"] == 0, sanity
sanity

# %% [markdown]
# ## Accuracy per method

# %%
def plot_accuracy(frame):
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    shown = frame[(frame.metric == "accuracy") & frame.method.isin(METHODS)]
    sns.barplot(data=shown, x="dataset", y="value", hue="method", hue_order=METHODS, errorbar="sd", ax=ax)
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_xlabel("")
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title(f"label-free adaptation of {', '.join(name for name, _ in models)} "
                 f"(mean ± sd over seeds {', '.join(map(str, seeds))})", fontsize=10)
    fig.tight_layout()
    return fig


plot_accuracy(rows)
plt.show()

# %% [markdown]
# ## Deviations from the official code
#
# - **Seeds.** Seeds 1, 2, 3 (both profiles), so the verdicts have an interval over seeds; the official code runs the
#   single seed 7777 (`config.yml` `SEED`).
# - **No early stopping.** With `final_model = "best_val"` the official code also stops training after 22 epochs
#   without a better val accuracy at the start, 15 after each improvement (`NoLA.build_model` sets `patience = 22`,
#   `after_epoch` resets it to 15 and calls `sys.exit` at 0). We always run every epoch and keep the best-val model,
#   which can pick a later epoch than the official run would have reached.
# - **Schedule (offline only).** 1 prompt-tuning epoch at batch 32 instead of 50 at batch 512, and the last model
#   instead of the best on the labelled validation split, to fit the CPU budget; the paper profile keeps the
#   official values.
# - **Prompts on a ResNet tower** (offline): the attention-pool analogue described above; with only 2×2 + 1 tokens
#   in the tiny CLIP's pool, 16 random prompts can move the features before any training (the "prompts untrained"
#   column and the sanity check above measure how much).
# - **Stage (ii) fallback** goes past the third choice, where the official code raises; the official class loop runs
#   over the labels present in the train split, ours over all classes (the same when every class occurs).
# - **Strong view**: the official transform, with the blur radius scaled from 224 px to the model's input size.
# - **Encoders**: the SSL encoder gets the same CLIP-preprocessed tensor, as officially (the tiny encoder was
#   trained with ImageNet normalisation, DINO's); the paper profile loads DINO ViT-B/16 from timm's Hugging Face
#   copy of the official weights instead of `torch.hub`.
# - **LaFTer** is the LaFTer-style baseline above, not LaFTer's own code and schedule; the paper's +3.6 is against
#   LaFTer as published.
# - **Not a deviation, a clarification**: the optimizer's weight decay is 0.01 (hard-coded in `setup_optim`);
#   `config.yml`'s `WEIGHT_DECAY: 0.0001` is never read. The official OxfordPets and Stanford-Cars "templates" are
#   LLM questions, not templates; those datasets are not offered here.

# %% [markdown]
# ## What the paper reports
#
# The one number confirmed from the paper is the abstract's average gain over LaFTer on its 11 datasets, +3.6
# points: it is the `paper_effect` of the claim against LaFTer below. The per-dataset cells of the paper's table
# (and the "+11.91 over zero-shot CLIP" of a secondary summary) are unconfirmed, so no reported row is listed.

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# The paper's claims are averages over its datasets (the +3.6 is an 11-dataset mean of single-seed runs); each claim
# is the mean over seeds, then over datasets. The two claims on the tuned model require the SSL-encoder precondition
# above; the claim on stage (i) does not involve the SSL encoder.

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = [
    Claim("cde-beats-zero-shot",
          "The class-description (CDE) classifier beats CLIP's name-only prompts, zero-shot (mean over datasets)",
          method="CDE zero-shot", baseline="zero-shot CLIP", margin=0.0),
    Claim("beats-zero-shot", "Label-free NoLA beats zero-shot CLIP (mean over seeds, then datasets)",
          method="NoLA", baseline="zero-shot CLIP", margin=0.0, requires=("ssl-encoder-carries-class",)),
    Claim("beats-lafter", "Label-free NoLA beats LaFTer (mean over seeds, then datasets)",
          method="NoLA", baseline="LaFTer-style", margin=0.0, requires=("ssl-encoder-carries-class",),
          paper_effect=3.6, paper_effect_source="abstract: average absolute gain over LaFTer on 11 datasets"),
]

# %%
record = clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=[ssl_precondition],
                         notes=f"Prompt tuning: {epochs} epoch{'s' if epochs > 1 else ''}, batch {batch_size}, "
                               f"{num_prompt_tokens} prompts, lr {learning_rate:g}, final model '{final_model}'; "
                               f"SSL encoder {ssl_encoder}; seeds {', '.join(map(str, seeds))}.")
