"""Generated image sets with the prompt of each image (kind "prompt-images"): what a text-to-image diversity
metric reads (the Schur-complement entropy of "Dissecting CLIP", arXiv 2412.18645).

    images = load_dataset("sce-animals-objects-sdxl", "all")   # $CLIPBOOK_DATA/sce/animals_with_objects_sdxl/...
    images.prompts[i]                                          # the prompt image i was generated from

The layout is the one the official demo reads (CLIP-DISSECTION `demo.py`: an image folder and a text file
with one prompt per line): `<folder>/images/*.{png,jpg}` and `<folder>/prompts.txt`, line i the prompt of the
i-th image in file-name order (numbers in names compared as numbers: 2.png before 10.png). The official
`ImageFilesDataset` lists images with `Path.rglob`, whose order is the file system's, not sorted; pairing by
sorted name is what the prompt file's order can mean. How the Hugging Face repositories store the files is not
confirmed here: export them into this layout. A count mismatch is an error, never a silent truncation.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from clipbook.data.real import ImageListDataset
from clipbook.data.registry import MissingDatasetError, register_datasets, register_kind

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PROMPTS_FILE = "prompts.txt"
IMAGES_FOLDER = "images"
_SOURCE = ("download https://huggingface.co/datasets/{repo} (or the authors' SharePoint folder linked from "
           "github.com/aziksh-ospanov/CLIP-DISSECTION) and export it as {folder}/images/<n>.png plus "
           "{folder}/prompts.txt (one prompt per line, in image order) under the data root")


def _config(title: str, repo: str) -> dict:
    folder = f"sce/{repo.split('/')[1]}"
    return {"kind": "prompt-images", "title": title, "folder": folder, "hf_repo": repo, "splits": ["all"],
            "template": "{}", "source": _SOURCE.format(repo=repo, folder=folder)}


PROMPT_IMAGE_DATASETS: dict[str, dict] = {
    "sce-animals-objects-sdxl": _config("SDXL animals with objects (SCE paper)", "aziksh/animals_with_objects_sdxl"),
    "sce-animals-fruits-dalle3": _config("DALL-E 3 animals eating fruits (SCE paper)",
                                         "aziksh/animals_with_fruits_dalle3"),
}


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers ('img2.png' < 'img10.png')."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class PromptImageDataset(ImageListDataset):
    """Images with one prompt each (`prompts`); the label is the image's index among the distinct prompts."""

    def __init__(self, *args, prompts: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.prompts = list(prompts)

    def fingerprint(self) -> dict:
        base = super().fingerprint()
        base["prompts_sha256"] = hashlib.sha256("\n".join(self.prompts).encode()).hexdigest()
        return base


def load_prompt_images(name: str, config: dict, split: str, root: Path) -> PromptImageDataset:
    if split not in config["splits"]:
        raise ValueError(f"unknown split {split!r} for {name}; known splits: {', '.join(config['splits'])}")
    folder = Path(root) / config["folder"]
    image_dir, prompt_file = folder / IMAGES_FOLDER, folder / PROMPTS_FILE
    for path in (image_dir, prompt_file):
        if not path.exists():
            raise MissingDatasetError(f"{name} ({config['title']}) not found: {path}\n{config['source']}")
    with os.scandir(image_dir) as entries:
        names = sorted((e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)),
                       key=natural_key)
    prompts = [line.strip() for line in prompt_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise MissingDatasetError(f"{name}: no images in {image_dir}\n{config['source']}")
    if len(names) != len(prompts):
        raise ValueError(f"{name}: {len(names)} images in {image_dir} but {len(prompts)} prompts in {prompt_file}; "
                         "each image needs exactly one prompt line, in image order")
    distinct = {prompt: index for index, prompt in enumerate(dict.fromkeys(prompts))}
    return PromptImageDataset(name, split, folder, [f"{IMAGES_FOLDER}/{n}" for n in names],
                              [distinct[p] for p in prompts], list(distinct), config["template"], prompts=prompts)


register_kind("prompt-images", load_prompt_images)
register_datasets(PROMPT_IMAGE_DATASETS)
