"""Who each synthetic person is, before a camera sees them (:mod:`idkl_lib.data._synthetic_render` draws them).

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

Everything is drawn from ``numpy`` generators seeded by ``(seed, purpose, ids...)`` (:func:`_rng`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
