"""Rendering of the synthetic persons written by :mod:`idkl_lib.data.synthetic`.

Each identity is a person-like figure (head, neck, torso, arms, legs, shoes) with its own body shape
(head size, torso length, shoulder and hip width, limb thickness), clothing (a two-tone upper/lower layout: light over
dark, dark over light or both mid-tone; each garment plain or with a bold, coarse pattern: stripes of a given
orientation and frequency, checks or dots; long or short sleeves; trousers, shorts or a skirt), hair and accessories
(hat, shoulder bag or backpack, each either very dark or very light). Visible cameras render colour under a per-camera
white balance, brightness and background scene. Infrared cameras render a grayscale in which colour is lost but what
survives infrared imaging stays the same cue in both modalities:

* every colour is built from a hue and a luminance (:func:`_colour`); the infrared brightness of a surface follows
  its visible *luminance* (75%, as near-infrared reflectance of dyed fabric partly does) plus a per-material factor
  (25%), never its hue (:func:`_nir`), so the upper/lower two-tone layout, the pattern (its type, orientation,
  frequency, and a contrast of the same sign: a print shares the fabric factor) and light/dark accessories survive;
* skin shows a body-heat level that is almost the same for everyone, so there is no infrared-only identity cue
  (an earlier version drew garment infrared brightness per identity independently of anything visible; models then
  memorised it on the training identities and did not transfer to unseen ones);
* shape and proportions (head, torso, shoulders, hips, limbs, skirt, sleeves, hair, hat, bag) are drawn identically.

Modality-specific evidence (``modality_specific_evidence``, default 0: none). IDKL assumes that the modality-specific
features hold identity evidence the shared feature misses. With a level ``e`` in (0, 1], every identity also gets
details that only one modality shows, drawn from their own seed stream (so ``e = 0`` leaves every file byte-identical):

* visible only: two identity-specific colour patches (an emblem on the chest, a patch on the lower garment) whose hue
  is the identity's own and whose luminance equals the garment's, so infrared, which follows luminance, cannot see
  them; ``e`` is their opacity;
* infrared only: two identity-specific thermal marks (a warm or cool band across the torso and a mark on one leg, at
  identity-specific heights and sizes), painted in infrared images only; ``e`` scales their contrast.

Patterns are coarse (4-8 cycles per person height) so that they survive 64-pixel-high images. Every image adds
jitter (position, scale, lean, limb spread, facing flip, front/back view), background shift and clutter, camera and
per-image exposure (infrared included, so absolute brightness is no shortcut), blur and noise. Everything is drawn from
``numpy`` generators seeded by ``(seed, purpose, ids...)``, so the same arguments give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

# purpose keys of the seed sequences
_K_IDENTITY, _K_CAMERA, _K_IMAGES, _K_SPLIT, _K_PERM, _K_NAMES, _K_EVIDENCE = range(1, 8)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


# ----------------------------------------------------------------------------------------------- appearance


@dataclass(frozen=True)
class _Garment:
    pattern: int  # 0 plain, 1 stripes, 2 checks, 3 dots
    freq: float  # cycles per person height
    angle: float  # stripe orientation (radians)
    phase: float
    rgb_a: np.ndarray  # (3,) base colour
    rgb_b: np.ndarray  # (3,) pattern colour
    ir_a: float  # infrared brightness: follows the luminance of rgb_a (see _nir), never its hue
    ir_b: float


@dataclass(frozen=True, eq=False)
class _Identity:
    head_r: float
    torso_len: float
    shoulder: float
    hip: float
    leg_r: float
    leg_sep: float
    arm_r: float
    sleeve: float  # fraction of the arm covered by the upper garment
    hem: float  # body height (0 head top .. 1 feet) where the lower garment ends
    skirt: bool
    long_hair: bool
    hat: bool
    bag: int  # 0 none, 1 shoulder bag, 2 backpack
    bag_side: int
    upper: _Garment
    lower: _Garment
    rgb: dict[str, np.ndarray]  # skin, hair, hat, bag, shoe -> (3,)
    ir: dict[str, float]  # same keys -> thermal brightness (skin = body heat)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def _colour(hue: float, sat: float, lum: float) -> np.ndarray:
    """An RGB colour of hue ``hue`` and luminance exactly ``lum``: a grey of that luminance plus ``sat`` x the largest
    chroma of that hue that stays in gamut (chroma has zero luminance, so the hue never changes the brightness)."""
    pure = _hsv(hue, 1.0, 1.0)
    chroma = pure - float(pure @ _LUMA)
    room = np.where(chroma > 0, (1.0 - lum) / np.maximum(chroma, 1e-6), lum / np.maximum(-chroma, 1e-6))
    return np.clip(lum + sat * float(room.min()) * chroma, 0.0, 1.0).astype(np.float32)


def _nir(lum: float, fabric: float) -> float:
    """Infrared brightness of a surface: mostly its visible luminance (near-infrared reflectance of dyed fabric follows
    its visible brightness), partly a per-material factor, never its hue."""
    return float(0.12 + 0.78 * (0.75 * lum + 0.25 * fabric))


def _garment(rng: np.random.Generator, patterns: list[float], lum: float) -> _Garment:
    v = float(lum)
    room_up, room_down = 0.95 - v, v - 0.05
    step = rng.uniform(0.4, 0.65)
    v2 = float(np.clip(v + step if room_up >= room_down else v - step, 0.05, 0.95))  # bold pattern contrast
    fabric = rng.uniform()  # shared by base and pattern (a print on one fabric): the contrast keeps its sign
    pattern = int(rng.choice(len(patterns), p=patterns))
    return _Garment(
        pattern=pattern,
        freq=rng.uniform(3.5, 5.5) if pattern == 3 else rng.uniform(4.0, 8.0),  # coarse: survives 64-pixel images
        angle=float(rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4])),
        phase=rng.uniform(0.0, 2 * np.pi),
        rgb_a=_colour(rng.uniform(), rng.uniform(0.2, 0.95), v),
        rgb_b=_colour(rng.uniform(), rng.uniform(0.0, 0.9), v2),
        ir_a=_nir(v, fabric),
        ir_b=_nir(v2, fabric),
    )


def _make_identity(seed: int, pid: int) -> _Identity:
    rng = _rng(seed, _K_IDENTITY, pid)
    heat = rng.uniform(0.78, 0.92)  # skin: nearly the same for everyone, so it is no identity shortcut
    shoulder = rng.uniform(0.085, 0.175)
    head_r = rng.uniform(0.052, 0.085)
    torso_len = rng.uniform(0.24, 0.38)
    hip_y = 2.05 * head_r + 0.01 + torso_len
    lower_style = rng.choice(3, p=[0.5, 0.28, 0.22])  # trousers, shorts, skirt
    hem = 0.95 if lower_style == 0 else hip_y + (0.985 - hip_y) * rng.uniform(0.3, 0.55)
    # two-tone layout: the upper and lower garments are a light/dark pair (either way round) or both mid-tone
    layout = rng.choice(3)
    light, dark = rng.uniform(0.62, 0.92), rng.uniform(0.06, 0.3)
    up_lum, low_lum = (light, dark) if layout == 0 else (dark, light) if layout == 1 else rng.uniform(0.3, 0.6, 2)
    lum = {
        "skin": rng.uniform(0.3, 0.85),
        "hair": rng.uniform(0.04, 0.55),
        "hat": rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.75, 0.95)]),
        "bag": rng.choice([rng.uniform(0.03, 0.15), rng.uniform(0.8, 0.97)]),
        "shoe": rng.uniform(0.05, 0.6),
    }
    hue = {"skin": rng.uniform(0.02, 0.09), "hair": rng.uniform(0.0, 0.12)}
    sat = {"skin": rng.uniform(0.25, 0.6), "hair": rng.uniform(0.2, 0.8)}
    rgb = {k: _colour(hue.get(k, rng.uniform()), sat.get(k, rng.uniform(0.1, 0.9)), float(v)) for k, v in lum.items()}
    ir = {"skin": heat, **{k: _nir(float(lum[k]), rng.uniform()) for k in ("hair", "hat", "bag", "shoe")}}
    return _Identity(
        head_r=head_r,
        torso_len=torso_len,
        shoulder=shoulder,
        hip=shoulder * rng.uniform(0.65, 1.05),
        leg_r=rng.uniform(0.028, 0.062),
        leg_sep=rng.uniform(0.4, 0.7),
        arm_r=rng.uniform(0.02, 0.042),
        sleeve=1.0 if rng.uniform() < 0.55 else rng.uniform(0.25, 0.45),
        hem=float(hem),
        skirt=bool(lower_style == 2),
        long_hair=bool(rng.uniform() < 0.35),
        hat=bool(rng.uniform() < 0.3),
        bag=int(rng.choice(3, p=[0.4, 0.3, 0.3])),
        bag_side=int(rng.choice([-1, 1])),
        upper=_garment(rng, [0.25, 0.45, 0.15, 0.15], float(up_lum)),
        lower=_garment(rng, [0.6, 0.2, 0.2, 0.0], float(low_lum)),
        rgb=rgb,
        ir=ir,
    )


@dataclass(frozen=True, eq=False)
class _Evidence:
    """Identity details visible in one modality only (see the module docstring), in body coordinates."""

    chest: tuple[float, float, float]  # visible emblem: x, y, radius
    chest_rgb: np.ndarray  # (3,) its colour: the upper garment's luminance, the identity's hue
    lower: tuple[float, float, float, float]  # visible patch on the lower garment: x0, x1, y0, y1 (x mirrored by side)
    lower_rgb: np.ndarray
    band: tuple[float, float]  # infrared band across the torso: centre (fraction of the torso), half height
    band_delta: float  # its brightness change (signed)
    leg: tuple[float, float, float]  # infrared mark on one leg: side (-1/1), centre (fraction of the leg), half height
    leg_delta: float


def _make_evidence(seed: int, pid: int, ident: _Identity) -> _Evidence:
    rng = _rng(seed, _K_EVIDENCE, pid)
    hue = rng.uniform()
    up, low = float(ident.upper.rgb_a @ _LUMA), float(ident.lower.rgb_a @ _LUMA)
    hip = 2.05 * ident.head_r + 0.01 + ident.torso_len
    chest_y = 2.05 * ident.head_r + 0.01 + ident.torso_len * rng.uniform(0.2, 0.55)
    x0 = rng.uniform(0.0, 0.5) * ident.hip
    lower_y = hip + (min(ident.hem, 0.95) - hip) * rng.uniform(0.1, 0.5)

    def sign() -> float:
        return float(rng.choice([-1.0, 1.0]))

    return _Evidence(
        chest=(rng.uniform(-0.4, 0.4) * ident.shoulder, chest_y, rng.uniform(0.035, 0.06)),
        chest_rgb=_colour(hue, 1.0, up),
        lower=(x0, x0 + rng.uniform(0.04, 0.08), lower_y, lower_y + rng.uniform(0.05, 0.1)),
        lower_rgb=_colour((hue + rng.uniform(0.25, 0.75)) % 1.0, 1.0, low),
        band=(rng.uniform(0.2, 0.8), rng.uniform(0.03, 0.07)),
        band_delta=sign() * rng.uniform(0.2, 0.35),
        leg=(sign(), rng.uniform(0.15, 0.85), rng.uniform(0.04, 0.08)),
        leg_delta=sign() * rng.uniform(0.2, 0.35),
    )


def _draw_evidence(c: _Canvas, ident: _Identity, ev: _Evidence, infrared: bool, level: float) -> None:
    """Paint the identity's modality-specific details (after the person) with strength ``level``."""
    X, Y = c.X, c.Y
    neck = 2.05 * ident.head_r + 0.01
    hip = neck + ident.torso_len
    if not infrared:
        c.paint(_ellipse(X, Y, ev.chest[0], ev.chest[1], ev.chest[2], ev.chest[2]), ev.chest_rgb, level)
        x0, x1, y0, y1 = ev.lower
        c.paint(_box(X, Y, x0, x1, y0, y1), ev.lower_rgb, level)
        return
    y = neck + ident.torso_len * ev.band[0]
    torso = np.maximum(np.abs(X) - ident.shoulder, np.maximum(neck - Y, Y - hip))
    tone = np.array([np.clip(ident.upper.ir_a + ev.band_delta, 0.0, 1.0)], np.float32)
    c.paint(np.maximum(torso, np.abs(Y - y) - ev.band[1]), tone, level)
    side, at, half = ev.leg
    y = hip + (0.975 - hip) * at
    leg, _ = _capsule(
        X, Y, (side * ident.hip * ident.leg_sep, hip), (side * ident.hip * ident.leg_sep, 0.975), ident.leg_r
    )
    tone = np.array([np.clip(ident.lower.ir_a + ev.leg_delta, 0.0, 1.0)], np.float32)
    c.paint(np.maximum(leg, np.abs(Y - y) - half), tone, level)


@dataclass(frozen=True, eq=False)
class _Camera:
    infrared: bool
    background: np.ndarray  # (H, W + W // 2, C) static scene, cropped at a random offset per image
    gain: np.ndarray  # (C,) white balance x brightness (visible) or thermal gain (infrared)
    offset: float
    noise: float
    blur: float  # pixels at 128-pixel height


def _make_camera(seed: int, camid: int, infrared: bool, height: int, width: int) -> _Camera:
    """Static scene of a camera: geometry keyed by ``camid`` (shared by both modalities of an LLCM camera),
    appearance keyed by ``(camid, modality)``."""
    geom = _rng(seed, _K_CAMERA, camid)
    look = _rng(seed, _K_CAMERA, camid, int(infrared))
    channels = 1 if infrared else 3
    wide = width + width // 2

    def tone() -> np.ndarray:
        if infrared:
            return np.array([look.uniform(0.06, 0.42)], dtype=np.float32)
        return _hsv(look.uniform(), look.uniform(0.0, 0.6), look.uniform(0.2, 0.95))

    y = (np.arange(height, dtype=np.float32)[:, None, None] + 0.5) / height
    x = (np.arange(wide, dtype=np.float32)[None, :, None] + 0.5) / wide
    horizon = geom.uniform(0.5, 0.8)
    top, mid, floor = tone(), tone(), tone()
    wall = top + (mid - top) * np.clip(y / horizon, 0, 1)
    stripes = 0.04 * np.sin(2 * np.pi * geom.uniform(3, 12) * (y - horizon) / (1 - horizon + 1e-3))
    scene = np.where(y < horizon, wall, floor * (1 + stripes)) * np.ones_like(x)
    for _ in range(int(geom.integers(0, 4))):  # pillars, doors, shelves
        x0, w = geom.uniform(0, 1), geom.uniform(0.05, 0.25)
        y0 = geom.uniform(0, horizon * 0.6)
        inside = (x >= x0) & (x <= x0 + w) & (y >= y0) & (y <= horizon + 0.02)
        scene = np.where(inside, tone(), scene)
    if infrared:
        gain = np.array([look.uniform(0.8, 1.12)], dtype=np.float32)
        offset, noise, blur = look.uniform(-0.04, 0.08), look.uniform(0.02, 0.045), look.uniform(0.5, 1.1)
    else:
        gain = np.clip(1 + look.normal(0, 0.1, 3), 0.75, 1.25).astype(np.float32) * look.uniform(0.65, 1.15)
        offset, noise, blur = 0.0, look.uniform(0.01, 0.03), look.uniform(0.2, 0.8)
    background = scene.astype(np.float32).reshape(height, wide, channels)
    return _Camera(bool(infrared), background, gain.astype(np.float32), float(offset), float(noise), float(blur))


# ------------------------------------------------------------------------------------------------- geometry


def _capsule(X: np.ndarray, Y: np.ndarray, a: tuple, b: tuple, r: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the segment ``a -> b`` thickened by ``r``, and the position ``t`` in 0..1 along it."""
    ax, ay = a
    bax, bay = b[0] - ax, b[1] - ay
    px, py = X - ax, Y - ay
    t = np.clip((px * bax + py * bay) / (bax * bax + bay * bay + 1e-9), 0.0, 1.0)
    return np.hypot(px - bax * t, py - bay * t) - r, t


def _box(X: np.ndarray, Y: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.maximum(np.maximum(x0 - X, X - x1), np.maximum(y0 - Y, Y - y1))


def _ellipse(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return (np.hypot((X - cx) / a, (Y - cy) / b) - 1.0) * min(a, b)


def _pattern(g: _Garment, X: np.ndarray, Y: np.ndarray) -> np.ndarray | None:
    """Pattern weight in 0..1 (0 = base colour, 1 = pattern colour), or None for a plain garment."""
    if g.pattern == 0:
        return None
    f = 2 * np.pi * g.freq
    if g.pattern == 1:
        s = np.sin(f * (X * np.cos(g.angle) + Y * np.sin(g.angle)) + g.phase)
    elif g.pattern == 2:
        s = np.sin(f * X + g.phase) * np.sin(f * Y + g.phase)
    else:
        u = (X * g.freq + g.phase) % 1.0 - 0.5
        v = (Y * g.freq) % 1.0 - 0.5
        s = 4.0 * (0.3 - np.hypot(u, v))
    return np.clip(0.5 + 1.5 * s, 0.0, 1.0)


class _Canvas:
    """A batch of ``n`` images being painted, with the body coordinates of the person in each.

    Body coordinates: ``Y`` = 0 at the top of the head and ~1 at the soles, ``X`` = 0 on the body axis (mirrored when
    the person faces the other way), both in units of the person's height; ``px`` = pixels per body unit.
    """

    def __init__(self, img: np.ndarray, X: np.ndarray, Y: np.ndarray, px: np.ndarray, shade: np.ndarray) -> None:
        self.img, self.X, self.Y, self.px, self.shade = img, X, Y, px, shade

    def paint(self, d: np.ndarray, colour: np.ndarray, weight: np.ndarray | float = 1.0) -> None:
        """Composite ``colour`` ((C,) or (n, H, W, C)) where the signed distance ``d`` (n, H, W) is negative,
        anti-aliased over one pixel, scaled by ``weight``."""
        alpha = np.clip(0.5 - d[..., None] * self.px, 0.0, 1.0) * weight
        rows = np.flatnonzero(alpha.any(axis=(0, 2, 3)))  # composite only the rows the shape covers
        if rows.size == 0:
            return
        band = slice(rows[0], rows[-1] + 1)
        if colour.ndim == 4:
            colour = colour[:, band]
        img = self.img[:, band]
        img += (colour * self.shade[:, band] - img) * alpha[:, band]

    def below(self, t: np.ndarray, edge: float) -> np.ndarray:
        """(n, H, W, 1) weight, 1 where ``t < edge``, soft over about one pixel."""
        return np.clip((edge - t) * self.px[..., 0] * 0.5 + 0.5, 0.0, 1.0)[..., None]


def _draw_person(
    c: _Canvas, ident: _Identity, infrared: bool, back: np.ndarray, abduct: np.ndarray, spread: np.ndarray
) -> None:
    """Paint one identity (back to front: legs, skirt, torso, hair, arms, neck, head, hat, bag) on every image.

    ``back`` (n, 1, 1) is 1 for images seen from behind; ``abduct``/``spread`` (n, 1, 1) move the hands/feet out.
    """
    X, Y = c.X, c.Y
    back4 = back[..., None]

    def col(key: str) -> np.ndarray:
        return np.array([ident.ir[key]], np.float32) if infrared else ident.rgb[key]

    def garment(g: _Garment) -> np.ndarray:
        a, b = (np.array([g.ir_a], np.float32), np.array([g.ir_b], np.float32)) if infrared else (g.rgb_a, g.rgb_b)
        pm = _pattern(g, X, Y)
        return a if pm is None else a + (b - a) * pm[..., None]

    r, sh, hw = ident.head_r, ident.shoulder, ident.hip
    neck = 2.05 * r + 0.01
    hip = neck + ident.torso_len
    upper, lower, skin = garment(ident.upper), garment(ident.lower), col("skin")
    for side in (-1.0, 1.0):  # legs: lower garment above the hem, skin below, shoes at the bottom
        d, _ = _capsule(
            X, Y, (side * hw * ident.leg_sep, hip - 0.02), (side * (hw * ident.leg_sep + spread), 0.975), ident.leg_r
        )
        c.paint(d, skin + (lower - skin) * c.below(Y, ident.hem))
        c.paint(np.maximum(d, 0.945 - Y), col("shoe"))
    if ident.skirt:
        t = np.clip((Y - hip) / max(ident.hem - hip, 1e-3), 0, 1)
        c.paint(np.maximum(np.abs(X) - hw * (1 + 0.45 * t), np.maximum(hip - 0.03 - Y, Y - ident.hem)), lower)
    if ident.long_hair:  # behind the torso when seen from the front
        c.paint(_box(X, Y, -0.8 * r, 0.8 * r, r, neck + 0.08), col("hair"), 1 - back4)
    t = np.clip((Y - neck) / ident.torso_len, 0, 1)
    c.paint(np.maximum(np.abs(X) - (sh + (hw - sh) * t), np.maximum(neck - Y, Y - hip)), upper)
    if ident.long_hair:  # over the back when seen from behind
        c.paint(_box(X, Y, -0.85 * r, 0.85 * r, r, neck + 0.1), col("hair"), back4)
    for side in (-1.0, 1.0):  # arms: sleeve down to ``sleeve``, then skin
        start = (side * (sh - 0.6 * ident.arm_r), neck + 0.025)
        hand = (side * (sh + 0.6 * ident.arm_r + abduct), hip + 0.04)
        d, along = _capsule(X, Y, start, hand, ident.arm_r)
        c.paint(d, skin + (upper - skin) * c.below(along, ident.sleeve))
    d, _ = _capsule(X, Y, (0.0, 1.6 * r), (0.0, neck + 0.02), 0.35 * r)
    c.paint(d, skin)
    cy, a = r + 0.005, 0.8 * r
    head = _ellipse(X, Y, 0.0, cy, a, r)
    c.paint(head, skin)
    c.paint(np.maximum(head, Y - (cy - 0.2 * r + 2.0 * back)), col("hair"))  # hair cap; the whole head from behind
    if ident.hat:
        c.paint(np.maximum(_ellipse(X, Y, 0.0, cy - 0.35 * r, 1.1 * a, 0.75 * r), Y - (cy - 0.2 * r)), col("hat"))
    if ident.bag == 1:  # shoulder bag with a strap across the chest
        s = ident.bag_side
        x0, x1 = sorted((s * (sh - 0.02), s * (sh + 0.1)))
        c.paint(_box(X, Y, x0, x1, hip - 0.1, hip + 0.07), col("bag"))
        d, _ = _capsule(X, Y, (-s * 0.7 * sh, neck + 0.02), (s * (sh + 0.03), hip - 0.1), 0.018)
        c.paint(d, col("bag"))
    elif ident.bag == 2:  # backpack: straps seen from the front, the pack from behind
        for side in (-1.0, 1.0):
            d, _ = _capsule(X, Y, (side * 0.55 * sh, neck), (side * 0.6 * sh, hip - 0.1), 0.02)
            c.paint(d, col("bag"), 1 - back4)
        c.paint(_box(X, Y, -0.8 * sh, 0.8 * sh, neck + 0.03, neck + 0.7 * ident.torso_len), col("bag"), back4)


def _render(
    ident: _Identity,
    cam: _Camera,
    n: int,
    rng: np.random.Generator,
    height: int,
    width: int,
    evidence: tuple[_Evidence, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` images of one identity seen by one camera.

    Returns:
        ``(images, back)``: ``(n, H, W, 3)`` uint8 for a visible camera or ``(n, H, W)`` uint8 for an infrared one,
        and ``(n,)`` bool, True where the person is seen from behind.
    """

    def per_image(lo: float, hi: float) -> np.ndarray:  # one value per image, (n, 1, 1)
        return rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)

    hp = per_image(0.84, 0.95) * height  # person height in pixels
    top = per_image(0.95, 1.0) * height - 0.985 * hp
    cx = (0.5 + per_image(-0.08, 0.08)) * width
    flip = np.where(per_image(0, 1) < 0.5, -1.0, 1.0).astype(np.float32)
    back = (per_image(0, 1) < 0.4).astype(np.float32)
    lean, spread, abduct = per_image(-0.06, 0.06), per_image(-0.01, 0.05), per_image(0.0, 0.05)
    shift = rng.integers(0, width // 2 + 1, n)

    ys = np.arange(height, dtype=np.float32)[None, :, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, None, :] + 0.5
    img = np.stack([cam.background[:, s : s + width] for s in shift])
    for _ in range(3):  # clutter behind the person
        cxc, cyc, hw, hh = per_image(0, width), per_image(0, height), per_image(2, width / 4), per_image(2, height / 5)
        d = np.maximum(np.abs(xs - cxc) - hw, np.abs(ys - cyc) - hh)
        tone = rng.uniform(0.05, 0.75, (n, 1, 1, img.shape[-1])).astype(np.float32)
        img += (tone - img) * np.clip(0.5 - d, 0, 1)[..., None]

    Y = (ys - top) / hp
    X = flip * (xs - cx) / hp - lean * (Y - 0.5)
    shade = (1.0 - 0.28 * np.clip(X / (ident.shoulder + 0.05), -1, 1) ** 2 - 0.08 * np.clip(Y, 0, 1))[..., None]
    canvas = _Canvas(img, X, Y, hp[..., None], shade)
    _draw_person(canvas, ident, cam.infrared, back, abduct, spread)
    if evidence is not None:  # modality-specific identity details (none at the default level 0)
        _draw_evidence(canvas, ident, evidence[0], cam.infrared, evidence[1])

    img = img * cam.gain * per_image(0.85, 1.15)[..., None] + cam.offset
    if cam.infrared:  # per-image exposure: absolute infrared brightness is no reliable identity cue
        img += per_image(-0.05, 0.05)[..., None]
    sigmas = (cam.blur + rng.uniform(0.0, 0.5, n)) * height / 128.0
    for i in range(n):
        img[i] = gaussian_filter(img[i], sigma=(sigmas[i], sigmas[i], 0.0), mode="nearest")
    img += cam.noise * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return (out[..., 0] if cam.infrared else out), back.reshape(n) > 0


# --------------------------------------------------------------------------------------------------- writers


class _Writer:
    """Renders the images of one dataset, caching identities and camera scenes."""

    def __init__(self, seed: int, height: int, width: int, evidence: float = 0.0, workers: int = 1) -> None:
        self.seed, self.height, self.width, self.evidence = seed, height, width, float(evidence)
        self.workers = workers  # processes the layout writers may use (the files do not depend on it)
        self._cameras: dict[tuple[int, bool], _Camera] = {}
        self._identities: dict[int, _Identity] = {}

    def identity(self, pid: int) -> _Identity:
        if pid not in self._identities:
            self._identities[pid] = _make_identity(self.seed, pid)
        return self._identities[pid]

    def render(self, pid: int, camid: int, infrared: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images of ``pid`` in camera ``camid`` and their back-view flags (see :func:`_render`)."""
        key = (camid, infrared)
        if key not in self._cameras:
            self._cameras[key] = _make_camera(self.seed, camid, infrared, self.height, self.width)
        rng = _rng(self.seed, _K_IMAGES, pid, camid, int(infrared))
        ident = self.identity(pid)
        extra = (_make_evidence(self.seed, pid, ident), self.evidence) if self.evidence > 0 else None
        return _render(ident, self._cameras[key], n, rng, self.height, self.width, extra)


def _save(images: np.ndarray, paths: list[Path]) -> None:
    """Save uint8 images by suffix: ``.jpg`` as RGB JPEG (infrared as 3 equal channels, as in the SYSU-MM01 and
    LLCM releases), ``.bmp`` as RGB or 8-bit grayscale BMP (RegDB thermal; exercises ``.convert("RGB")``)."""
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for image, path in zip(images, paths, strict=True):
        if path.suffix == ".jpg":
            rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
            Image.fromarray(rgb).save(path, "JPEG", quality=92)
        else:
            Image.fromarray(image).save(path, "BMP")
