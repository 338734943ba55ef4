"""The pretraining population: synthetic people who are in no split of any synthetic dataset, seen in visible light.

The synthetic generator (:mod:`idkl_lib.data._synthetic_people`) derives everything about a person from the seed
sequence ``(seed, purpose, pid, ...)``: the identity's appearance from ``(seed, IDENTITY, pid)``, the images of a
camera from ``(seed, IMAGES, pid, camera, infrared)``, the camera's scene from ``(seed, CAMERA, camera, ...)``. A
synthetic dataset numbers its identities ``1..num_train_ids + num_test_ids`` and :func:`idkl_lib.data.write_synthetic`
refuses any dataset that reaches :data:`idkl_lib.data.synthetic.RESERVED_PID_START`. The pretraining population uses
identity numbers from that reserved range only, and its own camera numbers (:data:`PRETRAIN_CAMERAS`, which no
layout uses), so for every seed its seed-sequence entropy differs from every split identity's in the pid entry: no
pretraining person is drawn from the stream of a training or test person, and no pretraining image from the stream
of a training or test image. :func:`check_disjoint` states the rule and refuses a configuration that breaks it.

This is the CPU stand-in for ImageNet: a large population the test never sees, visible light only, learned with a
generic objective.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..data._synthetic_render import _Writer
from ..data.synthetic import GENERATOR_VERSION, RESERVED_PID_START

PRETRAIN_CAMERAS: tuple[int, ...] = (101, 102, 103, 104)
"""Visible camera numbers of the pretraining images (the layouts use cameras 1-9)."""


@dataclass(frozen=True)
class Population:
    """Rendered pretraining images: ``images`` (N, H, W, 3) uint8, ``labels`` (N,) int64 in ``0..num_ids - 1``."""

    images: np.ndarray
    labels: np.ndarray
    pids: tuple[int, ...]
    seconds: float


def population_pids(first_pid: int, num_ids: int) -> range:
    """The identity numbers of a population of ``num_ids`` people starting at ``first_pid``."""
    return range(first_pid, first_pid + num_ids)


def check_disjoint(first_pid: int, num_ids: int, split_ids: int | None = None) -> None:
    """Refuse a pretraining population that could share an identity with a split.

    Args:
        first_pid: First identity number of the population.
        num_ids: Its number of identities.
        split_ids: Identities of a dataset it will be used with (its ids are ``1..split_ids``); ``None`` checks against
            every dataset the generator may write (``1..RESERVED_PID_START - 1``).

    Raises:
        ValueError: the population's identity range meets a split's range (or leaves the reserved range).
    """
    if num_ids < 2:
        raise ValueError(f"pretraining population: num_ids={num_ids} must be at least 2 (it is a classification task)")
    last = first_pid + num_ids - 1
    limit = RESERVED_PID_START - 1 if split_ids is None else max(split_ids, RESERVED_PID_START - 1)
    if first_pid <= limit:
        raise ValueError(
            f"pretraining population: identities {first_pid}..{last} overlap the split identities 1..{limit} of the "
            f"synthetic datasets; a pretraining population must start at or above {RESERVED_PID_START} "
            "(idkl_lib.data.synthetic.RESERVED_PID_START), so that no pretraining person is a training or test person"
        )
    if last >= np.iinfo(np.int64).max:
        raise ValueError(f"pretraining population: identity numbers up to {last} do not fit a seed sequence")


def render_population(
    seed: int, first_pid: int, num_ids: int, images_per_id: int, height: int, width: int
) -> Population:
    """Render ``images_per_id`` visible images of each of ``num_ids`` reserved identities, spread over the
    pretraining cameras (:data:`PRETRAIN_CAMERAS`), in memory.

    Raises:
        ValueError: see :func:`check_disjoint`; ``images_per_id < 1``.
    """
    check_disjoint(first_pid, num_ids)
    if images_per_id < 1:
        raise ValueError(f"pretraining population: images_per_id={images_per_id} must be at least 1")
    start = time.perf_counter()
    writer = _Writer(seed, height, width)
    per_cam = [images_per_id // len(PRETRAIN_CAMERAS)] * len(PRETRAIN_CAMERAS)
    for i in range(images_per_id % len(PRETRAIN_CAMERAS)):
        per_cam[i] += 1
    images = np.empty((num_ids * images_per_id, height, width, 3), np.uint8)
    labels = np.repeat(np.arange(num_ids, dtype=np.int64), images_per_id)
    row = 0
    pids = population_pids(first_pid, num_ids)
    for pid in pids:
        for cam, n in zip(PRETRAIN_CAMERAS, per_cam, strict=True):
            if n:
                rendered, _ = writer.render(pid, cam, False, n)
                images[row : row + n] = rendered
                row += n
    return Population(images, labels, tuple(pids), time.perf_counter() - start)


__all__ = [
    "GENERATOR_VERSION",
    "PRETRAIN_CAMERAS",
    "Population",
    "check_disjoint",
    "population_pids",
    "render_population",
]
