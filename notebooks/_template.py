# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # {{title}}
#
# Authors — venue year · [arXiv:XXXX.XXXXX](https://arxiv.org/abs/XXXX.XXXXX) · official code
# [owner/repo](https://github.com/owner/repo) (licence; read, not copied).
#
# **Claim.** What the paper claims, in two or three sentences, and which table or figure this notebook regenerates.
#
# **This notebook.** What the `offline` profile runs on the toy world with the library's tiny CLIP, and what the
# `paper` profile (`notebooks/profiles/paper/{{slug}}.yaml`) runs with the paper's checkpoints and datasets.
#
# *Template:* the method below is a placeholder (a nearest-class-mean classifier on k-shot features) so that the
# notebook runs in the batch as generated. Replace it with the paper's method, its baseline and its claims.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy", "toy-aircraft", "toy-satellite"]
seeds = [1, 2, 3]
shots = [16]
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import declare

SPEC = declare("profile", "models", "datasets", "seeds", "shots", "device")

# %%
import pandas as pd
import torch
import torch.nn.functional as F

import clipbook
from clipbook import metrics
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models.loader import load_model
from clipbook.report.rows import summarise

session = clipbook.start(SPEC, globals())

# %% [markdown]
# ## The method
#
# The paper's equation, in the paper's symbols, right above the function implementing it. Cite the official
# code's file and function it follows. Placeholder: class prototypes $\mu_c$ from the $k$-shot features,
# logits $100\,x^\top\mu_c/\lVert\mu_c\rVert$.

# %%
def prototype_logits(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    prototypes = torch.stack([train_features[train_labels == c].mean(0) for c in range(num_classes)])
    return 100.0 * test_features @ F.normalize(prototypes, dim=-1).T


# %% [markdown]
# ## The experiment
#
# The paper's baseline and the method on the same data and seeds, as tidy rows.

# %%
def evaluate(task: ClassificationTask) -> list[dict]:
    base = {"model": task.model_name, "dataset": task.dataset_name, "metric": "accuracy"}
    rows = [{**base, "method": "zero-shot CLIP", "value": task.zero_shot_accuracy()}]
    x_test, y_test = task.features("test")
    for seed in seeds:
        for k in shots:
            x_train, y_train = task.few_shot_features(task.few_shot_split(k, seed)["train"])
            logits = prototype_logits(x_train, y_train, x_test, task.num_classes)
            rows.append({**base, "method": "method", "seed": seed, "shots": k,
                         "value": metrics.accuracy(logits, y_test)})
    return rows


tasks = [ClassificationTask(load_model(name, tag, device=session.device), dataset)
         for name, tag in models for dataset in datasets]
rows = pd.DataFrame([row for task in tasks for row in evaluate(task)])
summarise(rows).round(2)

# %% [markdown]
# ## Sanity check
#
# An independent formulation or a known invariant that can fail. Placeholder: the prototype logits equal a loop
# over classes of cosine similarities.

# %%
task = tasks[0]
x_train, y_train = task.few_shot_features(task.few_shot_split(shots[0], seeds[0])["train"])
x_test, _ = task.features("test")
loop = torch.stack([100.0 * F.cosine_similarity(x_test, x_train[y_train == c].mean(0, keepdim=True)) * x_test.norm(dim=-1)
                    for c in range(task.num_classes)], dim=1)
difference = float((prototype_logits(x_train, y_train, x_test, task.num_classes) - loop).abs().max())
assert difference < 1e-3, difference
difference

# %% [markdown]
# ## What the paper reports
#
# The paper's numbers as rows in the same columns, each with its source (table, figure or log, with a link).

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = [
    Claim("beats-zero-shot", "The method beats zero-shot CLIP (mean over seeds, then datasets)",
          method="method", baseline="zero-shot CLIP", margin=0.0),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED)
