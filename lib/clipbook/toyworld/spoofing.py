"""Toy face-anti-spoofing data: live captures and presentation attacks of the same toy-world scenes.

A *live* image is the scene's photo-style render. A *spoof* is that render re-captured through an attack
instrument, modelled on the artefacts face-anti-spoofing datasets show (Replay-Attack, CASIA-MFSD, OULU-NPU):

- ``print``: a printed photo: halftone dot screen, the blur of ink and re-capture, paper tone (lower contrast,
  warm cast);
- ``replay``: a photo shown on a screen: moiré from the pixel grid beating with the sensor, the display's gamma
  and a cool colour cast;
- ``frame``: a printout held up whole: the photo shrunk inside a visible border (paper margin or bezel).

Every artefact's parameters are drawn from a generator seeded by (seed, scene index, attack), so a dataset's
images are the same on every machine. `SpoofDataset` is a `SceneDataset`: it renders a batch at a time, has
labels (0 live, 1 spoof, the convention of the FAS CSVs) and a fingerprint over its scenes, attacks and seed,
so its features are cached by content through `clipbook.features.image_features`.
"""
from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np
from PIL import Image

from clipbook.toyworld import world
from clipbook.toyworld.text_to_image import SceneDataset

SPOOFING_VERSION = 1
LIVE = "live"
LABELS = {"live": 0, "spoof": 1}


def _generator(seed: int, index: int, attack: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{index}/{attack}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return image
    padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    size = 2 * radius + 1
    out = np.zeros_like(image)
    for dy in range(size):
        for dx in range(size):
            out += padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
    return out / size ** 2


def _print_attack(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width, _ = image.shape
    period = rng.uniform(2.5, 4.0)          # halftone cell, in pixels
    angle = rng.uniform(0, np.pi / 2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    screen = 0.5 + 0.25 * (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period))  # in [0, 1]
    ink = (image > screen[..., None]).astype(np.float64)
    dotted = 0.55 * ink + 0.45 * image       # a coarse screen, softened by the ink's spread
    blurred = _box_blur(dotted, radius=1)
    contrast = rng.uniform(0.7, 0.85)
    paper = np.array([1.0, 0.96, 0.85]) * rng.uniform(0.9, 1.0)   # warm, not quite white
    return (0.5 + contrast * (blurred - 0.5)) * paper


def _replay_attack(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width, _ = image.shape
    frequency = rng.uniform(0.18, 0.32)      # cycles per pixel of the beat pattern
    angle = rng.uniform(0, np.pi)
    phase = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    moire = np.cos(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    moire = moire * np.cos(2 * np.pi * frequency * 0.93 * (x * np.sin(angle) - y * np.cos(angle)))
    gamma = rng.uniform(0.6, 0.8)            # a screen's tone curve, re-captured
    shown = image ** gamma * np.array([0.88, 0.97, 1.08])   # cool cast of a backlit display
    return shown * (1.0 + rng.uniform(0.10, 0.18) * moire[..., None])


def _frame_attack(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width, _ = image.shape
    scale = rng.uniform(0.7, 0.82)
    inner = (max(8, round(height * scale)), max(8, round(width * scale)))
    small = np.asarray(Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8)).resize(
        inner[::-1], Image.BILINEAR), dtype=np.float64) / 255
    border = rng.choice([np.array([0.95, 0.95, 0.93]), np.array([0.08, 0.08, 0.09])])  # paper margin or bezel
    out = np.empty_like(image)
    out[...] = border
    top = int(rng.integers(0, height - inner[0] + 1))
    left = int(rng.integers(0, width - inner[1] + 1))
    out[top:top + inner[0], left:left + inner[1]] = small
    return out


ATTACKS = {"print": _print_attack, "replay": _replay_attack, "frame": _frame_attack}


def spoof(image: np.ndarray, attack: str, *, seed: int = 0, index: int = 0) -> np.ndarray:
    """The (H, W, 3) uint8 `image` re-captured through `attack` (one of `ATTACKS`, or "live" for the image
    itself), with artefact parameters drawn from (seed, index, attack)."""
    if attack == LIVE:
        return image
    if attack not in ATTACKS:
        raise KeyError(f"unknown attack {attack!r}; known: {', '.join([LIVE, *ATTACKS])}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"spoof takes an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    out = ATTACKS[attack](image.astype(np.float64) / 255, _generator(seed, index, attack))
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


class SpoofDataset(SceneDataset):
    """Scenes paired with their capture: "live" or an attack of `ATTACKS`; labels 0 live / 1 spoof.

    Args:
        scenes: the toy-world scenes (one family).
        attacks: one capture per scene ("live" or an attack name).
        seed: seeds every attack's artefact parameters (with the scene's position in the list).
        name, split: shown in progress bars and cache file names.
    """

    def __init__(self, scenes: Sequence[world.Scene], attacks: Sequence[str], *, seed: int = 0,
                 name: str = "toy-spoof", split: str = "generated"):
        super().__init__(scenes, name=name, split=split)
        if len(attacks) != len(self.scenes):
            raise ValueError(f"one attack per scene: {len(attacks)} attacks for {len(self.scenes)} scenes")
        unknown = sorted(set(attacks) - {LIVE, *ATTACKS})
        if unknown:
            raise KeyError(f"unknown attack(s) {unknown}; known: {', '.join([LIVE, *ATTACKS])}")
        self.attacks = np.array(attacks)
        self.seed = int(seed)
        self.scene_labels = self.labels
        self.labels = (self.attacks != LIVE).astype(np.int64)
        self.classnames = list(LABELS)

    def __getitem__(self, index: int):
        return Image.fromarray(self.render([index])[0]), int(self.labels[index])

    def render(self, indices) -> np.ndarray:
        indices = [int(i) for i in indices]
        images = world.render_batch([self.scenes[i] for i in indices])[0]
        return np.stack([spoof(image, str(self.attacks[i]), seed=self.seed, index=i)
                         for image, i in zip(images, indices)]) if indices else images

    def fingerprint(self) -> dict:
        blob = json.dumps({"scenes": super().fingerprint()["scenes"], "attacks": self.attacks.tolist(),
                           "seed": self.seed}, sort_keys=True)
        return {"dataset": "spoof", "spoofing_version": SPOOFING_VERSION, "world_version": world.WORLD_VERSION,
                "content": hashlib.sha256(blob.encode()).hexdigest()}


def live_dataset(scenes: Sequence[world.Scene], **kwargs) -> SpoofDataset:
    """Every scene captured live (a one-class training set)."""
    return SpoofDataset(scenes, [LIVE] * len(scenes), **kwargs)


def attack_dataset(scenes: Sequence[world.Scene], attacks: Sequence[str] = tuple(ATTACKS), **kwargs) -> SpoofDataset:
    """Every scene captured live and once through each of `attacks` (a test set: live and spoofs of the same
    scenes, so an attack can only be told apart by its artefacts)."""
    captures = [LIVE, *attacks]
    return SpoofDataset([s for s in scenes for _ in captures], [a for _ in scenes for a in captures], **kwargs)
