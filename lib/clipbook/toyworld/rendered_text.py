"""Names and records rendered as images with OCR-like noise, for record linkage (CLIPPINGS, arXiv 2304.03464).

CLIPPINGS links records that exist twice: as an image crop of a printed name and as that crop's OCR text. Its
Japanese task matches firms in one publication (horizontal crops) to the same firms in another (vertical crops),
with OCR of two qualities; its data are not released. This module is the toy world's stand-in, with a known truth:

- `firm_names(n, seed)`: distinct synthetic firm names (romanised syllables + a trade word), built in families of
  near-duplicates that differ in one syllable, so that linkage is hard in the way firm registers are;
- `ocr_noise(text, rate, rng)`: the errors an OCR engine makes — visually confusable substitutions (o→0, l→1,
  rn→m, cl→d, ...), dropped and doubled characters and merged words — at a per-character rate;
- `render_name(text, rng)`: the printed crop, `IMAGE_SIZE` square (the tiny CLIP's input), with font-size and
  position jitter, a small rotation, ink and paper tones, cropping at an edge, blur and speckle;
- `record_set(names, copies, ocr_rates, seed)`: several records of each name — an image and, for every OCR
  quality, its OCR text — all deterministic in (seed, name index, copy index).

The font is Pillow's bundled one (`ImageFont.load_default(size)`, Pillow >= 10.1 with FreeType), so rendering needs
no system fonts: a fresh Debian machine with only the Python wheels renders the same pixels as this one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

from clipbook.toyworld.world import IMAGE_SIZE

# romanised syllables and trade words of firm names (the paper's firms are Japanese; any fixed lexicon serves)
SYLLABLES = ("ka", "ki", "ko", "ku", "sa", "shi", "su", "so", "ta", "to", "na", "ni", "no", "ha", "hi", "ho",
             "ma", "mi", "mo", "ya", "yo", "ra", "ri", "ro", "wa", "da", "do", "ga", "go", "ba", "be", "ze")
TRADE_WORDS = ("shoji", "bank", "mining", "textile", "steel", "electric", "shipping", "trading", "sugar",
               "paper", "oil", "cement")

# OCR confusions: each maps a character sequence to what an engine misreads it as. Chosen from the classic
# confusion pairs of Latin OCR; all survive the tiny CLIP tokenizer's lower-casing.
CONFUSIONS = {
    "o": ("0", "c", "a"), "a": ("o", "e"), "e": ("c", "o"), "c": ("e", "o"), "i": ("l", "1", "j"),
    "l": ("1", "i", "t"), "t": ("f", "l"), "s": ("5", "z"), "z": ("2", "s"), "b": ("h", "6", "8"),
    "h": ("b", "n"), "n": ("h", "ri", "m"), "m": ("rn", "nn"), "u": ("v", "ii"), "g": ("q", "9"),
    "k": ("x", "lc"), "r": ("n",), "d": ("cl",), "y": ("v",), "w": ("vv",), "rn": ("m",), "cl": ("d",),
    "ri": ("n",), "ii": ("u",),
}
# what fraction of the errors are substitutions, deletions, doublings and merged words
ERROR_KINDS = {"substitute": 0.7, "delete": 0.12, "double": 0.08, "merge": 0.10}


def _require_freetype() -> None:
    if not features.check("freetype2"):
        raise RuntimeError("rendered_text needs Pillow built with FreeType (pip's Pillow wheels have it) for "
                           "ImageFont.load_default(size=...); this Pillow has no FreeType")


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    _require_freetype()
    try:
        return ImageFont.load_default(size=size)
    except TypeError as err:  # Pillow < 10.1 has no size argument
        raise RuntimeError("rendered_text needs Pillow >= 10.1 (ImageFont.load_default(size=...)); "
                           f"this is Pillow {Image.__version__}") from err


def seeded_rng(*keys) -> np.random.Generator:
    """A generator determined by `keys` alone (not by Python's hash seed or call order)."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def firm_names(n: int, seed: int = 0, *, family_size: int = 2) -> list[str]:
    """`n` distinct firm names, in families of `family_size` that differ in one syllable of the stem.

    Args:
        n: how many names.
        seed: names depend on it alone.
        family_size: names per family of near-duplicates (1: no near-duplicates).

    Returns:
        names such as "kanemori shoji" and its sibling "kanemoro shoji", families in consecutive positions.
    """
    if n < 1 or family_size < 1:
        raise ValueError(f"firm_names needs n >= 1 and family_size >= 1; got n={n}, family_size={family_size}")
    rng = seeded_rng("firm-names", seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        stem = [str(rng.choice(SYLLABLES)) for _ in range(int(rng.integers(2, 4)))]
        trade = str(rng.choice(TRADE_WORDS))
        family = []
        for member in range(family_size):
            syllables = list(stem)
            if member:  # a sibling: one syllable of the stem changed
                position = int(rng.integers(len(syllables)))
                syllables[position] = str(rng.choice([s for s in SYLLABLES if s != stem[position]]))
            name = f"{''.join(syllables)} {trade}"
            if name not in seen:
                family.append(name)
                seen.add(name)
        names.extend(family[:n - len(names)])
    return names


def ocr_noise(text: str, rate: float, rng: np.random.Generator) -> str:
    """`text` as an OCR engine with per-character error rate `rate` reads it.

    Each character position errs with probability `rate`; an error is a visually confusable substitution (the
    longest entry of `CONFUSIONS` that starts there), a deletion, a doubled character, or, at a space, merged words,
    in the proportions of `ERROR_KINDS`.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"OCR error rate must be in [0, 1]; got {rate}")
    kinds, weights = list(ERROR_KINDS), np.array(list(ERROR_KINDS.values()))
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if rng.random() >= rate:
            out.append(char)
            i += 1
            continue
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if char == " ":
            out.append("" if kind in ("merge", "delete") else " ")
            i += 1
        elif kind == "substitute":
            pair = text[i:i + 2]
            source = pair if pair in CONFUSIONS and rng.random() < 0.5 else char
            choices = CONFUSIONS.get(source, (char,))
            out.append(str(choices[int(rng.integers(len(choices)))]))
            i += len(source)
        elif kind == "delete":
            i += 1
        else:  # doubled (a merge at a letter reads as a doubled letter)
            out.append(char + char)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class RenderNoise:
    """How much the printed crop is degraded (defaults: a legible but imperfect scan at 64 px)."""
    font_sizes: tuple[int, int] = (10, 14)  # font size drawn uniformly in this range (then fitted to the width)
    max_rotation: float = 4.0  # degrees
    max_shift: int = 4  # pixels of position jitter
    crop_probability: float = 0.3  # chance that one edge cuts into the text
    max_crop: int = 5  # pixels cut at that edge
    blur: tuple[float, float] = (0.0, 0.8)  # Gaussian blur radius range
    speckle: float = 0.03  # fraction of pixels flipped to ink or paper
    contrast: tuple[int, int] = (120, 220)  # paper minus ink brightness range


def _lines(text: str) -> list[str]:
    return [word for word in text.split(" ") if word] or [text]


def render_name(text: str, rng: np.random.Generator, noise: RenderNoise = RenderNoise(),
                size: int = IMAGE_SIZE) -> np.ndarray:
    """The printed crop of `text`: uint8 (size, size, 3), one word per line, degraded as `noise` says."""
    lines = _lines(text)
    font_size = int(rng.integers(noise.font_sizes[0], noise.font_sizes[1] + 1))
    # shrink the font until the longest line fits (long names print smaller, as in a register's columns)
    while font_size > 6:
        font = _font(font_size)
        widths = [font.getbbox(line)[2] - font.getbbox(line)[0] for line in lines]
        if max(widths) <= size - 4 and font_size * 1.15 * len(lines) <= size - 4:
            break
        font_size -= 1
    font = _font(font_size)
    contrast = int(rng.integers(noise.contrast[0], noise.contrast[1] + 1))
    paper = int(rng.integers(contrast, 256))
    ink = paper - contrast
    canvas = Image.new("L", (size, size), color=paper)
    draw = ImageDraw.Draw(canvas)
    line_height = int(round(font_size * 1.15))
    top = (size - line_height * len(lines)) // 2 + int(rng.integers(-noise.max_shift, noise.max_shift + 1))
    dx = int(rng.integers(-noise.max_shift, noise.max_shift + 1))
    for row, line in enumerate(lines):
        left, _, right, _ = font.getbbox(line)
        draw.text(((size - (right - left)) // 2 - left + dx, top + row * line_height), line, fill=ink, font=font)
    angle = float(rng.uniform(-noise.max_rotation, noise.max_rotation))
    canvas = canvas.rotate(angle, resample=Image.BILINEAR, fillcolor=paper)
    pixels = np.asarray(canvas, dtype=np.float32)
    if rng.random() < noise.crop_probability:  # the crop box cut into the print at one edge
        cut = int(rng.integers(1, noise.max_crop + 1))
        edge = int(rng.integers(4))
        if edge == 0:
            pixels[:cut] = paper
        elif edge == 1:
            pixels[-cut:] = paper
        elif edge == 2:
            pixels[:, :cut] = paper
        else:
            pixels[:, -cut:] = paper
    radius = float(rng.uniform(*noise.blur))
    if radius > 0:
        pixels = np.asarray(Image.fromarray(pixels.astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius)),
                            dtype=np.float32)
    flips = rng.random(pixels.shape) < noise.speckle
    pixels[flips] = np.where(rng.random(int(flips.sum())) < 0.5, ink, paper)
    tone = rng.uniform(0.85, 1.0, size=3)  # a yellowed or tinted page
    image = np.clip(pixels[..., None] * tone[None, None, :], 0, 255)
    return image.round().astype(np.uint8)


@dataclass
class RecordSet:
    """Records of named entities: images (N, H, W, 3) uint8, clean texts, OCR texts per quality, entity ids."""
    images: np.ndarray
    texts: list[str]
    ocr: dict[str, list[str]]
    entities: np.ndarray
    copies: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, mask: np.ndarray) -> "RecordSet":
        index = np.flatnonzero(mask)
        return RecordSet(self.images[index], [self.texts[i] for i in index],
                         {quality: [texts[i] for i in index] for quality, texts in self.ocr.items()},
                         self.entities[index], self.copies[index])


def record_set(names: list[str], copies: int, ocr_rates: dict[str, float], seed: int = 0,
               noise: RenderNoise = RenderNoise(), *, entity_ids: list[int] | None = None) -> RecordSet:
    """`copies` records of every name: a rendered crop and, for each OCR quality, that crop's OCR text.

    Args:
        names: the entities' clean names.
        copies: records per entity (each with its own rendering and OCR noise).
        ocr_rates: OCR quality name -> per-character error rate, e.g. {"clean": 0.03, "noisy": 0.15}.
        seed: everything depends on (seed, entity id, copy) alone, so a subset of names renders the same records.
        noise: how the crops are degraded.
        entity_ids: the entities' ids (default 0..len(names)-1).

    Returns:
        a RecordSet ordered by entity, then copy.
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1; got {copies}")
    entity_ids = list(range(len(names))) if entity_ids is None else list(entity_ids)
    if len(entity_ids) != len(names):
        raise ValueError(f"{len(entity_ids)} entity ids for {len(names)} names")
    images, texts, entities, copy_ids = [], [], [], []
    ocr: dict[str, list[str]] = {quality: [] for quality in ocr_rates}
    for entity, name in zip(entity_ids, names):
        for copy in range(copies):
            images.append(render_name(name, seeded_rng("render", seed, entity, copy), noise))
            for quality, rate in ocr_rates.items():
                ocr[quality].append(ocr_noise(name, rate, seeded_rng("ocr", quality, seed, entity, copy)))
            texts.append(name)
            entities.append(entity)
            copy_ids.append(copy)
    return RecordSet(np.stack(images), texts, ocr, np.array(entities), np.array(copy_ids))


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance / len(reference): how OCR quality is usually reported."""
    return levenshtein(reference, hypothesis) / max(len(reference), 1)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), by the two-row dynamic programme."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]
