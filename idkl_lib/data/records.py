"""Record types shared by every dataset parser, the sampler and the evaluation protocols.

Modality convention used everywhere in ``idkl_lib``: ``0 = visible (RGB)``, ``1 = infrared``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

VISIBLE: int = 0
INFRARED: int = 1
MODALITY_NAMES: dict[int, str] = {VISIBLE: "visible", INFRARED: "infrared"}


@dataclass(frozen=True)
class Sample:
    """One image of one person seen by one camera.

    Attributes:
        path: Absolute path of the image file.
        pid: Identity label. Training records are relabelled to ``0..num_train_ids-1``;
            query/gallery records keep the dataset's original identity number.
        camid: Camera id as the dataset names it (SYSU-MM01: 1..6; RegDB: 2 visible / 3 thermal;
            LLCM: the ``cNN`` number in the file name).
        modality: ``VISIBLE`` (0) or ``INFRARED`` (1).
    """

    path: str
    pid: int
    camid: int
    modality: int


@dataclass(frozen=True)
class VIDataset:
    """A parsed visible-infrared re-ID dataset: training records and the test sets.

    ``query`` holds the infrared test images and ``gallery`` the visible test images, as in the
    reference code; protocols that search visible -> infrared swap the two.

    Attributes:
        name: ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        root: Dataset root folder.
        train: Training records, ``pid`` relabelled to ``0..num_train_ids-1`` in sorted original-id order.
        query: Infrared test records (original ids).
        gallery: Visible test records (original ids).
        num_train_ids: Number of training identities (the classifier size).
        meta: Dataset-specific extras (e.g. RegDB ``trial``, SYSU ``train_id_map``).
    """

    name: str
    root: Path
    train: tuple[Sample, ...]
    query: tuple[Sample, ...]
    gallery: tuple[Sample, ...]
    num_train_ids: int
    meta: dict[str, object] = field(default_factory=dict, compare=False)
