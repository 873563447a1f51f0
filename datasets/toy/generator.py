"""Procedural images and web-like captions: the whole "internet" the toy CLIP is pretrained on.

A scene is a few objects (shape, colour, texture, size, count, position) on a background scene with clutter, drawn in
one rendering style. Everything is a pure function of a :class:`numpy.random.Generator`, so a seed fixes an image
and its caption exactly. Styles other than ``photo`` play the role of ImageNet-Sketch/-R/-A; captions mention a random
subset of the attributes, as alt-texts do, so the text tower learns each word from noisy co-occurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 64
_SS = 2  # masks are drawn at 2x and box-filtered down: cheap anti-aliasing

SHAPES = [
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "cross",
    "diamond",
    "hexagon",
    "pentagon",
    "ring",
    "crescent",
    "arrow",
]
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 160, 50),
    "blue": (35, 70, 215),
    "purple": (130, 45, 170),
    "pink": (245, 140, 190),
    "brown": (125, 75, 35),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "gray": (130, 130, 130),
    "cyan": (40, 210, 220),
}
TEXTURES = ["solid", "striped", "dotted", "checkered", "zigzag", "gradient", "speckled", "grid"]
SCENES = ["studio", "sky", "grass", "beach", "water", "night", "brick", "snow", "forest", "road"]
SIZES = {"small": 0.17, "medium": 0.26, "large": 0.38}  # object diameter as a fraction of the image side
COUNT_WORDS = ["one", "two", "three", "four", "five", "six"]
POSITIONS = ["left", "right", "top", "bottom", "center"]
STYLES = ["photo", "sketch", "cartoon", "painting", "noisy", "lowres", "inverted"]
# Every scene attribute and its values, in label order (pretraining's auxiliary heads and `bench toy probe`).
ATTRIBUTES: dict[str, list] = {
    "shape": SHAPES,
    "colour": list(COLOURS),
    "texture": TEXTURES,
    "count": list(range(1, len(COUNT_WORDS) + 1)),
    "size": list(SIZES),
    "position": POSITIONS,
    "scene": SCENES,
    "style": STYLES,
}

# What the pretraining crawl looks like: mostly photos, some renditions (real CLIP saw sketches and cartoons too).
PRETRAIN_STYLE_P = {
    "photo": 0.56,
    "sketch": 0.1,
    "cartoon": 0.09,
    "painting": 0.06,
    "noisy": 0.08,
    "lowres": 0.07,
    "inverted": 0.04,
}


@dataclass(frozen=True)
class Scene:
    """Everything that determines an image (before the per-pixel randomness of rendering)."""

    shape: str
    colour: str
    texture: str
    size: str
    count: int
    position: str
    scene: str
    style: str = "photo"
    clutter: float = 0.3  # 0..1: amount of background distractor strokes
    distractors: int = 0  # extra objects of other shapes/colours (ImageNet-A-like hard cases)


def attribute_labels(s: Scene) -> list[int]:
    """The scene's value index for each of :data:`ATTRIBUTES` (the generator's own labels)."""
    return [values.index(getattr(s, name)) for name, values in ATTRIBUTES.items()]


def sample_scene(rng: np.random.Generator, style_p: dict[str, float] | None = None, **fixed: object) -> Scene:
    """A random scene; ``fixed`` pins attributes (a dataset pins the one it classifies)."""
    style_p = style_p or {"photo": 1.0}
    styles = list(style_p)
    p = np.array([style_p[s] for s in styles], dtype=float)
    scene = Scene(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        texture=TEXTURES[rng.integers(len(TEXTURES))] if rng.random() < 0.6 else "solid",
        size=list(SIZES)[rng.integers(len(SIZES))],
        count=int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.4, 0.15, 0.13, 0.11, 0.11, 0.1])),
        position=POSITIONS[rng.integers(len(POSITIONS))],
        scene=SCENES[rng.integers(len(SCENES))],
        style=styles[rng.choice(len(styles), p=p / p.sum())],
        clutter=float(rng.uniform(0.0, 0.5)),
    )
    return replace(scene, **fixed)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# Geometry


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[list[tuple[float, float]]]:
    """Outline(s) of a shape as polygons; the first is filled, later ones are cut out (holes)."""

    def ngon(n: int, radius: float, offset: float = 0.0, sx: float = 1.0) -> list[tuple[float, float]]:
        return [
            (
                cx + sx * radius * math.cos(rot + offset + 2 * math.pi * k / n),
                cy + radius * math.sin(rot + offset + 2 * math.pi * k / n),
            )
            for k in range(n)
        ]

    def rotate(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]

    if shape == "circle":
        return [ngon(32, r)]
    if shape == "ring":
        return [ngon(32, r), ngon(32, r * 0.55)]
    if shape == "square":
        return [ngon(4, r * 1.05, math.pi / 4)]
    if shape == "triangle":
        return [ngon(3, r * 1.1, -math.pi / 2)]
    if shape == "pentagon":
        return [ngon(5, r, -math.pi / 2)]
    if shape == "hexagon":
        return [ngon(6, r)]
    if shape == "diamond":
        return [rotate([(0, -1.1), (0.62, 0), (0, 1.1), (-0.62, 0)])]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else 0.42
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return [rotate(pts)]
    if shape == "cross":
        w = 0.33
        return [
            rotate(
                [
                    (-w, -1),
                    (w, -1),
                    (w, -w),
                    (1, -w),
                    (1, w),
                    (w, w),
                    (w, 1),
                    (-w, 1),
                    (-w, w),
                    (-1, w),
                    (-1, -w),
                    (-w, -w),
                ]
            )
        ]
    if shape == "arrow":
        return [rotate([(-1, -0.28), (0.15, -0.28), (0.15, -0.7), (1, 0), (0.15, 0.7), (0.15, 0.28), (-1, 0.28)])]
    if shape == "heart":
        pts = []
        for k in range(40):
            t = 2 * math.pi * k / 40
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            pts.append((x / 16.5, y / 16.5 + 0.1))
        return [rotate(pts)]
    if shape == "crescent":
        outer = ngon(32, r)
        c2 = (cx + 0.45 * r * math.cos(rot), cy + 0.45 * r * math.sin(rot))
        inner = [
            (c2[0] + 0.85 * r * math.cos(2 * math.pi * k / 32), c2[1] + 0.85 * r * math.sin(2 * math.pi * k / 32))
            for k in range(32)
        ]
        return [outer, inner]
    raise ValueError(f"unknown shape {shape!r}")


def _mask(shape: str, cx: float, cy: float, r: float, rot: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """Anti-aliased float mask in [0, 1] of one object."""
    img = Image.new("L", (size * _SS, size * _SS), 0)
    draw = ImageDraw.Draw(img)
    for i, poly in enumerate(_polygon(shape, cx * _SS, cy * _SS, r * _SS, rot)):
        draw.polygon(poly, fill=255 if i == 0 else 0)
    img = img.resize((size, size), Image.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def _positions(rng: np.random.Generator, s: Scene, r: float) -> list[tuple[float, float]]:
    """Object centres: a cluster around the named position, kept apart so that counts stay countable."""
    n = IMAGE_SIZE
    anchor = {
        "left": (0.3, 0.5),
        "right": (0.7, 0.5),
        "top": (0.5, 0.3),
        "bottom": (0.5, 0.7),
        "center": (0.5, 0.5),
    }[s.position]
    spread = 0.12 + 0.09 * (s.count - 1) ** 0.5
    out: list[tuple[float, float]] = []
    for _ in range(s.count):
        best, best_d = None, -1.0
        for _try in range(12):
            x = (anchor[0] + rng.uniform(-spread, spread)) * n
            y = (anchor[1] + rng.uniform(-spread, spread)) * n
            x, y = float(np.clip(x, r + 1, n - r - 1)), float(np.clip(y, r + 1, n - r - 1))
            d = min((math.hypot(x - a, y - b) for a, b in out), default=1e9)
            if d > 2.05 * r:
                best = (x, y)
                break
            if d > best_d:
                best, best_d = (x, y), d
        out.append(best)  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Pixels


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    return x, y


_X, _Y = _grid()


def _background(rng: np.random.Generator, scene: str) -> np.ndarray:
    """An HxWx3 float image of the named background scene."""
    n = IMAGE_SIZE
    x, y = _X, _Y
    img = np.empty((n, n, 3), np.float32)
    jitter = rng.uniform(-18, 18, size=3)
    if scene == "studio":
        g = rng.uniform(175, 225)
        img[:] = g
        img += (y / n * -25)[..., None]
    elif scene == "sky":
        t = (y / n)[..., None]
        img[:] = (1 - t) * np.array([80, 140, 230]) + t * np.array([170, 210, 250])
        for _ in range(rng.integers(1, 4)):
            cx, cy, rad = rng.uniform(0, n), rng.uniform(0, n * 0.7), rng.uniform(5, 11)
            d = ((x - cx) ** 2 / 2.5 + (y - cy) ** 2) / rad**2
            img += (np.clip(1 - d, 0, 1) * 90)[..., None]
    elif scene == "grass":
        img[:] = np.array([70, 150, 55])
        blades = rng.random((n, n)) < 0.12
        img[blades] = np.array([35, 100, 30])
        img += (np.sin(x * 0.9 + rng.uniform(0, 6)) * 8)[..., None]
    elif scene == "beach":
        horizon = rng.uniform(0.3, 0.5) * n
        sea = (y < horizon)[..., None]
        img[:] = np.where(sea, np.array([40, 110, 190]), np.array([225, 200, 140]))
        img += (rng.normal(0, 7, (n, n)))[..., None]
    elif scene == "water":
        img[:] = np.array([30, 90, 170])
        waves = np.sin(y * 0.7 + 2.5 * np.sin(x * 0.25 + rng.uniform(0, 6)))
        img += (waves * 22)[..., None]
    elif scene == "night":
        img[:] = np.array([15, 20, 50])
        stars = rng.random((n, n)) < 0.02
        img[stars] = 235
    elif scene == "brick":
        img[:] = np.array([165, 70, 45])
        row = (y // 8).astype(int)
        mortar = (y % 8 < 1.2) | (((x + (row % 2) * 8) % 16) < 1.2)
        img[mortar] = np.array([200, 195, 185])
    elif scene == "snow":
        img[:] = np.array([235, 240, 248])
        flakes = rng.random((n, n)) < 0.05
        img[flakes] = np.array([180, 190, 205])
    elif scene == "forest":
        img[:] = np.array([25, 75, 35])
        for _ in range(rng.integers(3, 6)):
            tx, w = rng.uniform(0, n), rng.uniform(2, 4)
            img[np.abs(x - tx) < w] = np.array([85, 55, 30])
    elif scene == "road":
        img[:] = np.array([75, 75, 80])
        mid = rng.uniform(0.4, 0.6) * n
        dashes = (np.abs(y - mid) < 1.2) & ((x % 12) < 6)
        img[dashes] = np.array([240, 220, 60])
        img += (rng.normal(0, 5, (n, n)))[..., None]
    else:
        raise ValueError(f"unknown scene {scene!r}")
    return img + jitter


def _texture(rng: np.random.Generator, texture: str, rgb: np.ndarray) -> np.ndarray:
    """The object's fill as an HxWx3 image: the colour modulated by the texture pattern."""
    x, y = _X, _Y
    if texture == "solid":
        return np.broadcast_to(rgb, (IMAGE_SIZE, IMAGE_SIZE, 3)).copy()
    # the second tone: a darker or lighter version of the same colour, so the colour word stays true
    lum = rgb.mean()
    other = rgb * 0.35 if lum > 90 else rgb * 0.4 + 150
    a = rng.uniform(0, math.pi)
    period = rng.uniform(4.5, 6.5)
    u = x * math.cos(a) + y * math.sin(a)
    v = -x * math.sin(a) + y * math.cos(a)
    if texture == "striped":
        p = (u % period) < period / 2
    elif texture == "dotted":
        p = ((u % period) - period / 2) ** 2 + ((v % period) - period / 2) ** 2 < (period * 0.28) ** 2
    elif texture == "checkered":
        p = ((u // (period * 0.7)) + (v // (period * 0.7))) % 2 == 0
    elif texture == "zigzag":
        tri = np.abs((v % period) - period / 2) * 1.2
        p = ((u + tri) % period) < period / 2
    elif texture == "gradient":
        t = np.clip((u - u.min()) / (u.max() - u.min() + 1e-6), 0, 1)[..., None]
        t = (t * 3) % 1.0
        return rgb * (1 - t) + other * t
    elif texture == "speckled":
        p = rng.random(x.shape) < 0.3
    elif texture == "grid":
        p = ((u % period) < 1.3) | ((v % period) < 1.3)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return np.where(p[..., None], other, rgb)


def _edges(mask: np.ndarray) -> np.ndarray:
    """A soft outline of a mask (its morphological gradient)."""
    m = Image.fromarray((mask * 255).astype(np.uint8))
    dil = np.asarray(m.filter(ImageFilter.MaxFilter(3)), np.float32)
    ero = np.asarray(m.filter(ImageFilter.MinFilter(3)), np.float32)
    return np.clip((dil - ero) / 255.0, 0, 1)


def render(rng: np.random.Generator, s: Scene) -> Image.Image:
    """Draw a scene as a 64x64 RGB image (deterministic given ``rng``'s state)."""
    n = IMAGE_SIZE
    r = SIZES[s.size] * n / 2 * rng.uniform(0.85, 1.15)
    if s.count >= 4:
        r = min(r, n * 0.12)
    elif s.count >= 2:
        r = min(r, n * 0.16)
    rgb = np.array(COLOURS[s.colour], np.float32) + rng.uniform(-14, 14, 3)
    objects: list[tuple[np.ndarray, np.ndarray]] = []  # (mask, fill)
    for cx, cy in _positions(rng, s, r):
        rot = rng.uniform(-0.3, 0.3) + (math.pi * rng.integers(4) / 2 if s.shape in ("arrow", "crescent") else 0)
        mask = _mask(s.shape, cx, cy, r * rng.uniform(0.92, 1.08), rot)
        objects.append((mask, _texture(rng, s.texture, rgb)))
    for _ in range(s.distractors):
        d_shape = SHAPES[rng.integers(len(SHAPES))]
        d_rgb = np.array(list(COLOURS.values())[rng.integers(len(COLOURS))], np.float32)
        dr = r * rng.uniform(0.5, 0.9)
        mask = _mask(d_shape, rng.uniform(dr, n - dr), rng.uniform(dr, n - dr), dr, rng.uniform(0, 6.3))
        objects.insert(rng.integers(len(objects) + 1), (mask, np.broadcast_to(d_rgb, (n, n, 3))))

    if s.style == "sketch":
        # pencil on paper: outlines in a dark version of the object colour, hatching for the fill, no background
        img = np.full((n, n, 3), rng.uniform(230, 250), np.float32) + rng.normal(0, 3, (n, n, 1))
        ink_rgb = np.array(COLOURS[s.colour], np.float32) * 0.75
        for mask, _fill in objects:
            edge = _edges(mask)
            a = rng.uniform(0.6, 1.2)
            hatch = ((_X * math.cos(a) + _Y * math.sin(a)) % 4 < 1).astype(np.float32) * mask * 0.35
            ink = np.clip(edge + hatch, 0, 1)[..., None]
            img = img * (1 - ink) + ink_rgb * ink
        for _ in range(int(s.clutter * 4)):
            x0, y0 = rng.uniform(0, n, 2)
            img[int(y0), int(x0) : int(x0) + 6] = 120
        return _to_image(img)

    img = _background(rng, "studio" if s.style == "cartoon" and rng.random() < 0.3 else s.scene)
    if s.style == "cartoon":
        img = np.round(img / 64) * 64 + 20  # flat, posterised backdrop
    # clutter: random strokes and blobs of random colours
    if s.clutter > 0:
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(pil)
        for _ in range(int(round(s.clutter * 8))):
            c = tuple(int(v) for v in rng.integers(0, 255, 3))
            x0, y0 = rng.uniform(0, n, 2)
            if rng.random() < 0.5:
                draw.line([(x0, y0), (x0 + rng.uniform(-12, 12), y0 + rng.uniform(-12, 12))], fill=c, width=1)
            else:
                rr = rng.uniform(1, 3)
                draw.ellipse([x0 - rr, y0 - rr, x0 + rr, y0 + rr], fill=c)
        img = np.asarray(pil, np.float32)
    if s.style == "photo" or s.style in ("noisy", "inverted", "lowres", "painting"):
        # light from a random direction, and a soft shadow under each object
        a = rng.uniform(0, 2 * math.pi)
        light = 1 + 0.18 * ((_X - n / 2) * math.cos(a) + (_Y - n / 2) * math.sin(a)) / n
        for mask, fill in objects:
            sh = np.roll(mask, (2, 2), axis=(0, 1))[..., None] * 0.35
            img = img * (1 - sh)
            m = mask[..., None]
            img = img * (1 - m) + fill * light[..., None] * m
    else:  # cartoon: flat fills with thick black outlines
        for mask, fill in objects:
            m = mask[..., None]
            img = img * (1 - m) + fill * m
            thick = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3))
            e = _edges(np.asarray(thick, np.float32) / 255.0)[..., None]
            img = img * (1 - e) + 10 * e

    if s.style == "photo":
        img = img + rng.normal(0, 3, img.shape)
    elif s.style == "noisy":
        img = img + rng.normal(0, rng.uniform(25, 45), img.shape)
    elif s.style == "inverted":
        img = 255 - img
    elif s.style == "lowres":
        k = int(rng.choice([12, 16, 20]))
        pil = _to_image(img).resize((k, k), Image.BILINEAR).resize((n, n), Image.NEAREST)
        return pil
    elif s.style == "painting":
        pil = _to_image(img).filter(ImageFilter.ModeFilter(5)).filter(ImageFilter.GaussianBlur(0.8))
        img = np.asarray(pil, np.float32) + rng.normal(0, 6, (n, n, 1))
    return _to_image(img)


def _to_image(img: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------------------------------------------------------------
# Captions

_STYLE_PREFIX = {
    "photo": ["a photo of", "a picture of", "an image of", "a close-up photo of", "a nice photo of"],
    "sketch": ["a sketch of", "a pencil sketch of", "a drawing of"],
    "cartoon": ["a cartoon of", "a cartoon drawing of"],
    "painting": ["a painting of", "an oil painting of"],
    "noisy": ["a noisy photo of", "a grainy photo of"],
    "lowres": ["a low resolution photo of", "a pixelated photo of"],
    "inverted": ["an inverted photo of", "a negative photo of"],
}
_GENERIC_PREFIX = ["a photo of", "a picture of", "an image of", "", "", "look at"]
_PLURAL = {"cross": "crosses"}
_SCENE_PHRASE = {
    "studio": ["in a studio", "on a plain background"],
    "sky": ["in the sky", "against the sky"],
    "grass": ["on the grass", "on a lawn"],
    "beach": ["on the beach", "at the beach"],
    "water": ["on the water", "floating on water"],
    "night": ["at night", "in the night sky"],
    "brick": ["on a brick wall", "in front of a brick wall"],
    "snow": ["in the snow", "on snow"],
    "forest": ["in the forest", "among trees"],
    "road": ["on the road", "on a street"],
}
_POSITION_PHRASE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def caption(rng: np.random.Generator, s: Scene) -> str:
    """A web-like alt-text: the object noun plus a random subset of the other attributes, in varying word order."""
    pieces: list[str] = []
    if s.count > 1 and rng.random() < 0.8:
        pieces.append(COUNT_WORDS[s.count - 1])
    elif s.count == 1 and rng.random() < 0.3:
        pieces.append("one")
    if rng.random() < 0.3:
        pieces.append(s.size if rng.random() < 0.7 else {"small": "tiny", "medium": "medium", "large": "big"}[s.size])
    if rng.random() < 0.85:
        pieces.append(s.colour)
    if s.texture != "solid" and rng.random() < 0.7:
        pieces.append(s.texture)
    elif s.texture == "solid" and rng.random() < 0.1:
        pieces.append("solid")
    noun_kind = rng.random()
    plural = s.count > 1
    if noun_kind < 0.8:
        noun = _PLURAL.get(s.shape, s.shape + "s") if plural else s.shape
        if not plural and rng.random() < 0.15:
            noun += " shape"
    elif noun_kind < 0.9:
        noun = "objects" if plural else "object"
    else:
        noun = "shapes" if plural else "shape"
    phrase = " ".join([*pieces, noun])
    if not (pieces and pieces[0] in COUNT_WORDS) and not plural:
        phrase = f"{_article(phrase)} {phrase}"
    elif not (pieces and pieces[0] in COUNT_WORDS):
        phrase = f"some {phrase}" if rng.random() < 0.5 else phrase
    # a texture is sometimes described as a pattern, a scene as a scene: the words of the dataset templates
    if s.texture != "solid" and s.texture not in pieces and rng.random() < 0.15:
        phrase += f" with a {s.texture} pattern"
    tail: list[str] = []
    if s.style != "sketch" and rng.random() < 0.6:
        if rng.random() < 0.25:
            tail.append(f"in a {s.scene} scene")
        else:
            tail.append(str(rng.choice(_SCENE_PHRASE[s.scene])))
    if rng.random() < 0.25:
        tail.append(_POSITION_PHRASE[s.position])
    prefix = str(rng.choice(_STYLE_PREFIX[s.style])) if rng.random() < 0.5 else str(rng.choice(_GENERIC_PREFIX))
    if rng.random() < 0.06:  # some alt-texts only describe the setting
        return f"{prefix} a {s.scene} scene".strip() + "."
    text = " ".join(p for p in [prefix, phrase, *tail] if p)
    return text + ("." if rng.random() < 0.7 else "")


def sample_pair(rng: np.random.Generator, style_p: dict[str, float] | None = None) -> tuple[Image.Image, str]:
    """One pretraining pair from the toy web: a random scene, its image and a caption."""
    s = sample_scene(rng, style_p or PRETRAIN_STYLE_P)
    return render(rng, s), caption(rng, s)


def sample_clear_scene(rng: np.random.Generator) -> Scene:
    """A "clear" photo: one or two medium-to-large objects, little clutter, photo style.

    Why: in the full crawl most shapes are small, cluttered, pixelated or noisy, and a small network trained on it
    alone does not learn shape or texture in a CPU budget (datasets/toy/README.md, measured). Real web crawls also
    hold many clean product-like photos; mixing them in (a curriculum) is what lets the toy CLIP learn to see shape.
    """
    return sample_scene(
        rng,
        {"photo": 1.0},
        count=int(rng.choice([1, 1, 2])),
        size=str(rng.choice(["medium", "large", "large"])),
        clutter=float(rng.uniform(0.0, 0.1)),
    )


def group_scenes(rng: np.random.Generator, n: int, style_p: dict[str, float] | None = None) -> list[Scene]:
    """``n`` scenes that share colour, background scene and style but show different shapes (hard negatives).

    Why: in a batch of independent pairs, colour and scene alone tell almost every caption from the others, so the
    contrastive loss barely rewards seeing shape or texture and a CPU-sized run never learns them. A batch made of such
    groups holds a web crawl's near-duplicates: only shape, texture, count, size and position separate the members of
    a group, while colour and scene still separate the groups.
    """
    first = sample_scene(rng, style_p or PRETRAIN_STYLE_P)
    shapes = rng.choice(len(SHAPES), size=min(n, len(SHAPES)), replace=False)
    return [
        replace(
            sample_scene(rng),
            shape=SHAPES[shapes[i % len(shapes)]],
            colour=first.colour,
            scene=first.scene,
            style=first.style,
        )
        for i in range(n)
    ]


def sample_group(
    rng: np.random.Generator, n: int, style_p: dict[str, float] | None = None
) -> list[tuple[Image.Image, str]]:
    """``n`` pretraining pairs from :func:`group_scenes`."""
    return [(render(rng, s), caption(rng, s)) for s in group_scenes(rng, n, style_p)]
