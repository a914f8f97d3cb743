"""The toy world: a procedural, seeded image-text generator.

A scene is one object (a shape class) with attributes (colour, size, position) drawn over a
background texture, rendered in a *domain* (a visual style). Everything is a pure function of
the scene, so an image never needs to be stored: splits are lists of scenes, regenerated on
demand from their seed.

The vocabularies below are plain dicts so later notebooks can read them (class descriptions for
classify-by-description, backgrounds for spurious-correlation studies) without new flags.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Bump when rendering or captioning changes: it is part of every cache key built on the world.
WORLD_VERSION = "2"
IMAGE_SIZE = 64

# Each class: how to draw it (a mask function of polar/cartesian offsets) and what it looks like in
# words. The descriptions are visual facts the renderer makes true, so describing a class by them
# (classify-by-description) is grounded in the pixels.
CLASSES: dict[str, dict] = {
    "circle": {"descriptions": ["a round outline", "no corners", "a smooth curved edge"]},
    "square": {"descriptions": ["four equal sides", "four right-angle corners", "straight edges"]},
    "triangle": {"descriptions": ["three corners", "three straight sides", "a pointed top"]},
    "star": {"descriptions": ["five pointed tips", "a spiky outline", "narrow arms"]},
    "cross": {"descriptions": ["two crossing bars", "a plus sign", "four short arms"]},
    "ring": {"descriptions": ["a hole in the middle", "a round band", "a hollow centre"]},
    "diamond": {"descriptions": ["a tall rhombus", "four slanted sides", "sharp corners at top and bottom"]},
    "hourglass": {"descriptions": ["two triangles meeting at their tips", "a narrow waist",
                                   "wide at top and bottom"]},
    "crescent": {"descriptions": ["a curved sliver", "a moon shape", "two sharp horns"]},
    "heart": {"descriptions": ["two round lobes on top", "a point at the bottom", "a valentine shape"]},
    "bar": {"descriptions": ["a long thin rectangle", "a horizontal stripe shape",
                             "much wider than tall"]},
    "arrow": {"descriptions": ["a pointed head", "a shaft with a tip", "points to one side"]},
}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
    "purple": (140, 50, 180), "orange": (240, 130, 30), "cyan": (40, 200, 210), "pink": (240, 120, 190),
}
SIZES: dict[str, float] = {"small": 0.2, "large": 0.32}  # radius as a fraction of the image side
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5), "left": (0.32, 0.5), "right": (0.68, 0.5), "top": (0.5, 0.32), "bottom": (0.5, 0.68),
}
BACKGROUNDS: dict[str, dict] = {
    "plain": {"tint": (200, 200, 200), "phrase": "a plain grey background"},
    "stripes": {"tint": (170, 190, 210), "phrase": "a striped background"},
    "dots": {"tint": (215, 200, 170), "phrase": "a dotted background"},
    "checker": {"tint": (185, 185, 160), "phrase": "a checkered background"},
    "waves": {"tint": (160, 205, 180), "phrase": "a wavy background"},
    "grain": {"tint": (150, 130, 110), "phrase": "a grainy brown background"},
}

# Domains are rendering styles. "photo" is what the tiny CLIP is pretrained on; the others are
# distribution shifts in the spirit of ImageNet-Sketch and ImageNet-C.
DOMAINS: dict[str, dict] = {
    "photo": {"description": "filled colour shape over a textured background, mild sensor noise"},
    "sketch": {"description": "dark outline on white paper, no colour, no texture"},
    "noise": {"description": "photo style with heavy noise, low contrast and washed-out colour"},
}


@dataclass(frozen=True)
class Scene:
    label: int
    colour: str
    size: str
    position: str
    background: str
    domain: str
    angle: float  # small rotation jitter, radians
    dx: float  # position jitter, fraction of the image side
    dy: float
    noise_seed: int

    @property
    def classname(self) -> str:
        return CLASS_NAMES[self.label]

    def to_dict(self) -> dict:
        return asdict(self)


CLASS_NAMES: list[str] = list(CLASSES)


def _shape_mask(name: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of radius r centred at the origin of the (x, y) grid."""
    d = np.hypot(x, y)
    theta = np.arctan2(y, x)
    if name == "circle":
        return d < r
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) < r * 0.88
    if name == "triangle":
        return d < _polygon_radius(theta + math.pi / 2, 3, r * 1.15)
    if name == "star":
        # radius alternates between outer tips and inner notches
        phase = np.mod(theta + math.pi / 2, 2 * math.pi / 5) / (2 * math.pi / 5)
        profile = np.abs(phase - 0.5) * 2  # 1 at tips, 0 between
        return d < r * (0.38 + 0.72 * profile)
    if name == "cross":
        arm = r * 0.38
        return ((np.abs(x) < arm) & (np.abs(y) < r)) | ((np.abs(y) < arm) & (np.abs(x) < r))
    if name == "ring":
        return (d < r) & (d > r * 0.55)
    if name == "diamond":
        return np.abs(x) / 0.6 + np.abs(y) < r * 1.15
    if name == "hourglass":
        return (np.abs(y) < r * 0.95) & (np.abs(x) < np.abs(y) * 0.9 + r * 0.08)
    if name == "crescent":
        return (d < r) & (np.hypot(x - r * 0.45, y - r * 0.1) > r * 0.8)
    if name == "heart":
        u, v = x / (r * 1.05), -y / (r * 1.05) + 0.15
        return (u**2 + v**2 - 0.55) ** 3 - u**2 * v**3 * 0.9 < 0
    if name == "bar":
        return (np.abs(x) < r * 1.1) & (np.abs(y) < r * 0.3)
    if name == "arrow":
        shaft = (x > -r) & (x < r * 0.2) & (np.abs(y) < r * 0.22)
        head = (x >= r * 0.2) & (x < r) & (np.abs(y) < (r - x) * 0.95)
        return shaft | head
    raise KeyError(name)


def _polygon_radius(theta: np.ndarray, sides: int, r: float) -> np.ndarray:
    """Distance from the centre to the edge of a regular polygon with circumradius r."""
    sector = 2 * math.pi / sides
    local = np.mod(theta, sector) - sector / 2
    return r * math.cos(math.pi / sides) / np.cos(local)


def _texture(name: str, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Background intensity pattern in [0, 1], shape (H, W)."""
    n = xx.shape[0]
    if name == "plain":
        return np.full_like(xx, 0.5)
    if name == "stripes":
        return 0.5 + 0.35 * np.sign(np.sin(yy * n / 3.0))
    if name == "dots":
        return 0.75 - 0.5 * ((np.mod(xx * n, 8) - 4) ** 2 + (np.mod(yy * n, 8) - 4) ** 2 < 4)
    if name == "checker":
        return 0.5 + 0.3 * np.sign(np.sin(xx * n / 2.5) * np.sin(yy * n / 2.5))
    if name == "waves":
        return 0.5 + 0.35 * np.sin(xx * n / 2.0 + 2.0 * np.sin(yy * n / 6.0))
    if name == "grain":
        return 0.5 + 0.25 * rng.standard_normal(xx.shape)
    raise KeyError(name)


_GRID_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _GRID_CACHE:
        coords = (np.arange(n) + 0.5) / n
        _GRID_CACHE[n] = np.meshgrid(coords, coords)  # (xx, yy), each (n, n), x across columns
    return _GRID_CACHE[n]


def render(scene: Scene, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Draw a scene. Returns (image uint8 (H, W, 3), object mask bool (H, W))."""
    rng = np.random.default_rng(scene.noise_seed)
    xx, yy = _grid(size)
    cx, cy = POSITIONS[scene.position]
    cx, cy = cx + scene.dx, cy + scene.dy
    cos, sin = math.cos(scene.angle), math.sin(scene.angle)
    x, y = xx - cx, yy - cy
    x, y = cos * x + sin * y, -sin * x + cos * y
    mask = _shape_mask(scene.classname, x, y, SIZES[scene.size])
    colour = np.array(COLOURS[scene.colour], dtype=np.float32) / 255.0

    if scene.domain == "sketch":
        # an outline: mask minus its erosion, drawn in dark ink on white paper
        inner = mask.copy()
        for shift in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            inner &= np.roll(mask, shift, axis=(0, 1))
        edge = mask & ~inner
        thick = edge | np.roll(edge, 1, axis=0) | np.roll(edge, 1, axis=1)
        paper = 0.96 + 0.02 * rng.standard_normal((size, size))
        img = np.repeat(paper[..., None], 3, axis=2)
        img[thick] = 0.15
    else:
        tint = np.array(BACKGROUNDS[scene.background]["tint"], dtype=np.float32) / 255.0
        pattern = _texture(scene.background, xx, yy, rng)
        img = tint[None, None, :] * (0.55 + 0.6 * pattern[..., None])
        shade = 0.85 + 0.15 * (1 - np.hypot(x, y) / (SIZES[scene.size] * 1.5))
        img = np.where(mask[..., None], colour[None, None, :] * np.clip(shade, 0.6, 1.0)[..., None], img)
        if scene.domain == "noise":
            grey = img.mean(axis=2, keepdims=True)
            img = 0.5 + 0.75 * ((0.6 * img + 0.4 * grey) - 0.5)
            img = img + 0.07 * rng.standard_normal(img.shape)
        else:
            img = img + 0.03 * rng.standard_normal(img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), mask


# --- captions at several levels of detail --------------------------------------------------------

def caption(scene: Scene, level: str, rng: np.random.Generator | None = None) -> str:
    """A caption of the scene. Levels: 'name', 'short', 'medium', 'long', 'description'.

    'long' is multi-sentence (for long-text studies); 'description' replaces the class name by its
    visual description, so the text tower learns what the descriptors look like.
    """
    rng = rng or np.random.default_rng(scene.noise_seed)
    name = scene.classname
    article = "an" if name[0] in "aeiou" else "a"
    where = "in the centre" if scene.position == "centre" else f"at the {scene.position}"
    bg = BACKGROUNDS[scene.background]["phrase"]
    desc = CLASSES[name]["descriptions"]
    style = {"photo": "a photo", "sketch": "a sketch", "noise": "a noisy photo"}[scene.domain]
    if level == "name":
        return f"{style} of {article} {name}."
    if level == "short":
        return f"{article} {scene.colour} {name}."
    if level == "medium":
        return f"{style} of a {scene.size} {scene.colour} {name} {where} on {bg}."
    if level == "long":
        d1, d2 = rng.choice(len(desc), size=2, replace=False)
        return (f"{style.capitalize()} of {article} {name}. The {name} is {scene.size} and {scene.colour}, "
                f"placed {where}. It has {desc[d1]} and {desc[d2]}. Behind it is {bg}.")
    if level == "description":
        d = desc[int(rng.integers(len(desc)))]
        return f"{style} of a {scene.colour} shape with {d}."
    raise KeyError(f"unknown caption level {level!r}; choose from name, short, medium, long, description")


CAPTION_LEVELS = ("name", "short", "medium", "long", "description")
