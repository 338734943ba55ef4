"""Rendering of the synthetic persons written by :mod:`idkl_lib.data.synthetic`: cameras, the drawing of a person
(whose appearance, colours, infrared brightness and modality-specific details :mod:`idkl_lib.data._synthetic_people`
defines), the images and their files.

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

from ._synthetic_people import (
    _K_CAMERA,
    _K_IMAGES,
    _Evidence,
    _Garment,
    _hsv,
    _Identity,
    _make_evidence,
    _make_identity,
    _rng,
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
