"""A medical-style toy domain: radiograph-like chest images with a finding, a shortcut marker and subgroups.

The toy counterpart of a chest X-ray set such as NIH-CXR14 with NEATX drain labels (Sourget et al., "Fairness and
Robustness of CLIP-Based Models for Chest X-rays", arXiv 2507.21291). Each image is a grayscale frontal view:
dark lung fields in a brighter soft-tissue silhouette, mediastinum and heart, spine, ribs and clavicles, lung
markings that thin out towards the periphery, and sensor noise. Per image it carries

- the **finding** (the positive label, `FINDING`): a pneumothorax-like rim at the apex and lateral edge of one
  lung, where the lung markings vanish and the air is a little darker, bounded by a thin bright pleural line.
  It is subtle on purpose: a rim a few pixels deep, some 25 grey levels darker, in a 64-pixel image;
- the **marker** (`MARKER`, a chest drain): a thin radio-opaque tube entering through the lateral chest wall and
  running up to the apex, on the finding's side when the finding is present. Its presence follows the finding
  at configurable rates (``marker_given_finding``, ``marker_given_no_finding``), so it can be a shortcut;
- **subgroups** that change the anatomy's appearance: ``sex`` (a narrower thorax and breast shadows over the
  lower lung fields for "female") and ``age_group`` (the MIMIC bins of the paper's code; older means a larger
  heart, fainter ribs, lower contrast and more noise, so the finding is harder to see).

Everything is a pure function of a `Radiograph` (a frozen record of what is drawn), so images are never stored:
a cohort is a list of radiographs regenerated from its seed, and `dataclasses.replace(r, marker=0)` is the same
patient without the drain (a counterfactual no real data set has). `RadiographDataset` is a cohort as an image
dataset for `features.image_features`, with a fingerprint for the feature cache.

    data = cohort_dataset("test", n=2000, seed=3, prevalence=0.1, marker_given_finding=0.65)
    features = image_features(loaded, data)              # cached under data.fingerprint()
    data.attribute("marker"), data.attribute("sex")       # per-image labels

The images are RGB with three equal channels (the library's CLIPs take RGB input), `IMAGE_SIZE` pixels a side
like the toy world's.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from clipbook.toyworld import world

# Bump when drawing or sampling changes: it is part of every cache key built on this domain.
MEDICAL_VERSION = "1"
IMAGE_SIZE = world.IMAGE_SIZE

FINDING = "Pneumothorax"
NO_FINDING = "No findings"
MARKER = "chest drain"
CLASSNAMES = [NO_FINDING, FINDING]  # label 0, label 1
SEXES = ("female", "male")
# the age bins of the paper's code (evaluate_performance.py: pd.cut(age, [18, 25, 50, 65, 80, inf], right=False))
AGE_GROUPS = ("18-25", "25-50", "50-65", "65-80", "80+")
# a cohort's default age mix: older patients dominate chest imaging, as in MIMIC-CXR's test set
AGE_WEIGHTS = (0.05, 0.25, 0.30, 0.27, 0.13)
SIDES = ("right", "left")  # the patient's side; on a frontal view the patient's right is the image's left
ATTRIBUTES = ("finding", "marker", "sex", "age_group", "side")

# Anatomy per subgroup, in image coordinates ([-1, 1] both ways, y down).
_SEX_ANATOMY = {
    "male": {"thorax": 0.84, "lung_x": 0.39, "lung_w": 0.31, "breast": 0.0},
    "female": {"thorax": 0.76, "lung_x": 0.35, "lung_w": 0.27, "breast": 0.11},
}
_AGE_ANATOMY = {  # heart half-width, rib contrast, overall contrast, noise level
    "18-25": {"heart": 0.19, "ribs": 0.15, "contrast": 1.00, "noise": 0.020},
    "25-50": {"heart": 0.21, "ribs": 0.13, "contrast": 0.96, "noise": 0.024},
    "50-65": {"heart": 0.23, "ribs": 0.10, "contrast": 0.90, "noise": 0.030},
    "65-80": {"heart": 0.25, "ribs": 0.08, "contrast": 0.84, "noise": 0.036},
    "80+": {"heart": 0.28, "ribs": 0.06, "contrast": 0.78, "noise": 0.042},
}
_LUNG_Y, _LUNG_H = -0.02, 0.62   # lung field centre and half-height
_FINDING_DARKENING = 0.10        # how much darker the pneumothorax air is than aerated lung
_PLEURAL_LINE = 0.15             # brightness of the visceral pleural line
_DRAIN = 0.92                    # the tube's brightness (radio-opaque)
# The rim's depth, a fraction of the lung radius. With the contrasts above, the finding is subtle but not
# invisible to the library's tiny CLIP: a linear probe on its features, trained and tested on drain-free cohorts,
# reaches a test AUC of about 0.7 (the range of the paper's no-drain AUCs, 0.57-0.79). The contrasts were set to
# that criterion once, when the domain was written; they are not tuned to any result measured with the drain.
DEPTH_RANGE = (0.15, 0.35)


@dataclass(frozen=True)
class Radiograph:
    """What one image shows. ``side`` is the finding's side if there is one, else the drain's (if any).

    ``depth`` is the pneumothorax rim's depth as a fraction of the lung radius; ``drain_bend`` shifts the tube's
    curve; ``dx``, ``dy``, ``scale`` and ``exposure`` are positioning and exposure jitter; ``noise_seed`` picks
    the lung texture and sensor noise.
    """

    finding: int
    marker: int
    sex: str
    age_group: str
    side: str
    depth: float = 0.25
    drain_bend: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    exposure: float = 1.0
    noise_seed: int = 0

    def __post_init__(self):
        if self.finding not in (0, 1) or self.marker not in (0, 1):
            raise ValueError(f"finding and marker are 0 or 1, got {self.finding!r}, {self.marker!r}")
        for name, value, known in (("sex", self.sex, SEXES), ("age_group", self.age_group, AGE_GROUPS),
                                   ("side", self.side, SIDES)):
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; known: {', '.join(known)}")

    @property
    def label(self) -> int:
        return self.finding

    def to_dict(self) -> dict:
        return asdict(self)


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _weights(name: str, weights, known: Sequence[str]) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(known),) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"{name} must be {len(known)} non-negative weights ({', '.join(known)}), got {weights}")
    return weights / weights.sum()


def sample_cohort(n: int, seed: int, *, prevalence: float = 0.1, marker_given_finding: float = 0.65,
                  marker_given_no_finding: float = 0.05, female_fraction: float = 0.5,
                  age_weights: Sequence[float] = AGE_WEIGHTS) -> list[Radiograph]:
    """`n` radiographs drawn from seed `seed`: finding, then marker given finding, then subgroups and jitter.

    The defaults follow NIH-CXR14 with NEATX labels as the paper's code reads them: pneumothorax in about 10% of
    images (its `baseline_auprc` column), a drain in about two thirds of them (the drain and no-drain subsets'
    prevalences, 0.07 and 0.04, with the same negatives) and in a few negatives.

    Args:
        n: number of images.
        seed: the cohort's seed; the same arguments give the same cohort.
        prevalence: P(finding).
        marker_given_finding: P(marker | finding), the shortcut's strength together with the next one.
        marker_given_no_finding: P(marker | no finding).
        female_fraction: P(sex = female), independent of the finding.
        age_weights: the mix of `AGE_GROUPS`, independent of the finding.

    Returns:
        The radiographs, in order; every attribute is independent of the others except the marker.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    prevalence = _probability("prevalence", prevalence)
    rates = (_probability("marker_given_no_finding", marker_given_no_finding),
             _probability("marker_given_finding", marker_given_finding))
    female = _probability("female_fraction", female_fraction)
    ages = _weights("age_weights", age_weights, AGE_GROUPS)
    rng = np.random.default_rng([int(seed), 2507])
    # every attribute is drawn for every image, so one rate does not shift the random stream of the others
    finding = (rng.random(n) < prevalence).astype(int)
    marker = (rng.random(n) < np.where(finding == 1, rates[1], rates[0])).astype(int)
    sex = np.where(rng.random(n) < female, "female", "male")
    age = rng.choice(len(AGE_GROUPS), size=n, p=ages)
    side = rng.integers(0, 2, n)
    depth = rng.uniform(*DEPTH_RANGE, n)
    bend = rng.uniform(-0.08, 0.08, n)
    dx, dy = rng.uniform(-0.04, 0.04, n), rng.uniform(-0.04, 0.04, n)
    scale = rng.uniform(0.95, 1.05, n)
    exposure = rng.uniform(0.9, 1.1, n)
    noise = rng.integers(0, 2**31 - 1, n)
    return [Radiograph(int(finding[i]), int(marker[i]), str(sex[i]), AGE_GROUPS[age[i]], SIDES[side[i]],
                       round(float(depth[i]), 6), round(float(bend[i]), 6), round(float(dx[i]), 6),
                       round(float(dy[i]), 6), round(float(scale[i]), 6), round(float(exposure[i]), 6),
                       int(noise[i])) for i in range(n)]


@lru_cache(maxsize=4)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    coords = ((np.arange(n) + 0.5) / n * 2 - 1).astype(np.float32)
    return tuple(np.meshgrid(coords, coords))  # (x, y) in [-1, 1], x across columns


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Unit-variance noise varying over `cells` cells a side (bilinear upsampling of a coarse grid)."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    t = (np.arange(n) + 0.5) / n * cells
    i0 = np.floor(t).astype(int)
    w = (t - i0).astype(np.float32)
    rows = coarse[i0] * (1 - w)[:, None] + coarse[i0 + 1] * w[:, None]
    return rows[:, i0] * (1 - w)[None, :] + rows[:, i0 + 1] * w[None, :]


def _drain_curve(side_sign: float, bend: float, scale: float, dx: float, dy: float) -> np.ndarray:
    """Points (m, 2) along the tube: from outside the lateral chest wall, low, up to the lung apex."""
    t = np.linspace(0.0, 1.0, 160)[:, None]
    start = np.array([side_sign * 1.02, 0.42])
    control = np.array([side_sign * (0.80 + bend), -0.28 + bend])
    end = np.array([side_sign * 0.36, -0.50])
    points = (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t ** 2 * end
    return points * scale + np.array([dx, dy])


def _draw(r: Radiograph, n: int) -> np.ndarray:
    """The grayscale image (n, n) in [0, 1]."""
    xx, yy = _grid(n)
    x, y = (xx - r.dx) / r.scale, (yy - r.dy) / r.scale
    sex, age = _SEX_ANATOMY[r.sex], _AGE_ANATOMY[r.age_group]
    rng = np.random.default_rng(r.noise_seed)
    image = np.full((n, n), 0.04, np.float32)  # air outside the body
    body = (x / sex["thorax"]) ** 2 + ((y - 0.12) / 0.98) ** 2 < 1
    image[body] = 0.50
    # breast shadows over the lower lung fields
    if sex["breast"]:
        for sign in (-1, 1):
            shadow = np.clip(1 - ((x - sign * 0.40) ** 2 + (y - 0.52) ** 2) / 0.30 ** 2, 0, 1)
            image += sex["breast"] * np.sqrt(shadow) * body
    # lungs: dark fields with markings (vessels) that fade towards the periphery
    markings = _smooth_noise(rng, n, 10)
    lungs = np.zeros((n, n), bool)
    finding_rim = np.zeros((n, n), bool)
    pleural_line = np.zeros((n, n), bool)
    for side in SIDES:
        sign = -1.0 if side == "right" else 1.0  # the patient's right is the image's left
        u = (x - sign * sex["lung_x"]) / sex["lung_w"]
        v = (y - _LUNG_Y) / _LUNG_H
        radius = np.sqrt(u ** 2 + v ** 2)
        lung = radius < 1
        lungs |= lung
        vessels = np.clip(0.035 + 0.03 * markings, 0, None) * np.clip(1 - radius, 0, 1) * 1.6
        image = np.where(lung, 0.16 + vessels, image)
        if r.finding and side == r.side:
            # apical and lateral rim: the collapsed lung's edge sits `depth` inside the chest wall
            lateral = (u * sign > -0.35) & (v < 0.45)
            edge = 1 - r.depth
            finding_rim |= lung & lateral & (radius > edge)
            pleural_line |= lung & lateral & (np.abs(radius - edge) < 0.045)
    image = np.where(finding_rim, 0.16 - _FINDING_DARKENING, image)
    image = np.where(pleural_line, image + _PLEURAL_LINE, image)
    # ribs (bone stays visible over a pneumothorax) and clavicles
    ribs = np.cos((y + 0.35 * x ** 2) * 2 * np.pi * 5.5) > 0.55
    image = image + age["ribs"] * (ribs & lungs)
    clavicle = (np.abs(y + 0.66 - 0.18 * np.abs(x)) < 0.035) & (np.abs(x) < 0.62) & (np.abs(x) > 0.06)
    image = np.where(clavicle & body, image + 0.22, image)
    # mediastinum, heart (left of the patient, so right in the image) and spine
    mediastinum = (np.abs(x) < 0.09) & (y > -0.75) & body
    heart = ((x - 0.06) / age["heart"]) ** 2 + ((y - 0.30) / 0.26) ** 2 < 1
    image = np.where(mediastinum | heart, 0.72, image)
    image = np.where((np.abs(x) < 0.045) & body, 0.66 + 0.04 * np.cos(y * 40), image)
    # the drain: a radio-opaque tube, a little over one pixel wide
    if r.marker:
        sign = -1.0 if r.side == "right" else 1.0
        points = _drain_curve(sign, r.drain_bend, r.scale, r.dx, r.dy)
        distance = np.min((xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2, axis=-1)
        image = np.where(distance < (1.6 / n) ** 2, _DRAIN, image)
    # exposure and age-dependent contrast, then sensor noise
    image = 0.5 + (image * r.exposure - 0.5) * age["contrast"]
    image = image + age["noise"] * rng.standard_normal((n, n)).astype(np.float32)
    return np.clip(image, 0, 1)


def render(radiograph: Radiograph, size: int = IMAGE_SIZE) -> np.ndarray:
    """The image (size, size, 3) uint8 of one radiograph (three equal channels)."""
    if not isinstance(radiograph, Radiograph):
        raise TypeError(f"render takes a Radiograph, got {type(radiograph).__name__}")
    gray = np.round(_draw(radiograph, size) * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def render_batch(radiographs: Sequence[Radiograph], size: int = IMAGE_SIZE) -> np.ndarray:
    """The images (k, size, size, 3) uint8 of `radiographs`, the same pixels as `render` one by one."""
    if not radiographs:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([render(r, size) for r in radiographs])


def binary_prompts(finding: str = FINDING) -> list[str]:
    """The paper's zero-shot prompt pair for one finding: the finding, then the no-finding reference; the
    finding's probability is the first entry of the softmax over the two (evaluate_performance.py,
    `compute_probas`)."""
    return [f"Chest {finding}", f"Chest {NO_FINDING}"]


class RadiographDataset(torch.utils.data.Dataset):
    """A list of radiographs as an image dataset, for `features.image_features` and data loaders.

    Like the toy world's `SceneDataset`: ``name``, ``split``, ``classnames`` (`CLASSNAMES`), ``labels`` (the
    finding), ``templates``, ``image_size``, ``fingerprint()``, ``render(indices)`` and ``__getitem__`` ->
    (PIL image, label), plus ``attribute(name)`` for the per-image labels (`ATTRIBUTES`).

    Args:
        radiographs: the images, in order.
        name: a dataset name (progress bars, cache file names).
        split: a split name.
        recipe: what generated the radiographs (`cohort_dataset`'s arguments); when given, the fingerprint is the
            recipe (cheap), else a hash of every radiograph.
    """

    def __init__(self, radiographs: Sequence[Radiograph], name: str = "toy-cxr", split: str = "generated",
                 recipe: dict | None = None):
        self.radiographs = tuple(radiographs)
        if not all(isinstance(r, Radiograph) for r in self.radiographs):
            raise TypeError("RadiographDataset takes a sequence of Radiograph objects")
        self.name, self.split, self.recipe = name, split, recipe
        self.image_size = IMAGE_SIZE
        self.classnames = list(CLASSNAMES)
        self.templates = ["Chest {}"]
        self.labels = np.array([r.finding for r in self.radiographs], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.radiographs)

    def __getitem__(self, index: int):
        return Image.fromarray(render(self.radiographs[index])), int(self.labels[index])

    def render(self, indices) -> np.ndarray:
        """The images (k, H, W, 3) uint8 of `indices` (what feature extraction uses)."""
        return render_batch([self.radiographs[int(i)] for i in indices])

    def attribute(self, name: str) -> np.ndarray:
        """A per-image attribute: ``finding`` and ``marker`` as int arrays, ``sex``, ``age_group`` and ``side``
        as string arrays."""
        if name not in ATTRIBUTES:
            raise KeyError(f"unknown attribute {name!r}; known: {', '.join(ATTRIBUTES)}")
        values = [getattr(r, name) for r in self.radiographs]
        return np.array(values, dtype=np.int64) if name in ("finding", "marker") else np.array(values, dtype=str)

    def subset(self, indices, split: str | None = None) -> RadiographDataset:
        """The radiographs at `indices` as a dataset (fingerprinted by content)."""
        return RadiographDataset([self.radiographs[int(i)] for i in indices], self.name,
                                 split or f"{self.split}-subset")

    def fingerprint(self) -> dict:
        if self.recipe is not None:
            return {"dataset": "toy-cxr", "medical_version": MEDICAL_VERSION, **self.recipe}
        blob = json.dumps([r.to_dict() for r in self.radiographs], sort_keys=True)
        return {"dataset": "toy-cxr", "medical_version": MEDICAL_VERSION,
                "radiographs": hashlib.sha256(blob.encode()).hexdigest()}


def cohort_dataset(split: str, *, n: int, seed: int, prevalence: float = 0.1, marker_given_finding: float = 0.65,
                   marker_given_no_finding: float = 0.05, female_fraction: float = 0.5,
                   age_weights: Sequence[float] = AGE_WEIGHTS, name: str = "toy-cxr") -> RadiographDataset:
    """A cohort (`sample_cohort`) as a dataset named `name`/`split`, fingerprinted by its recipe."""
    recipe = {"n": int(n), "seed": int(seed), "prevalence": prevalence, "marker_given_finding": marker_given_finding,
              "marker_given_no_finding": marker_given_no_finding, "female_fraction": female_fraction,
              "age_weights": [float(w) for w in age_weights]}
    radiographs = sample_cohort(n, seed, prevalence=prevalence, marker_given_finding=marker_given_finding,
                                marker_given_no_finding=marker_given_no_finding, female_fraction=female_fraction,
                                age_weights=age_weights)
    return RadiographDataset(radiographs, name=name, split=split, recipe=recipe)
