"""Which model made a feature: a checkpoint's fingerprint (its configuration's hash and its file's hash).

Features of two models cannot be compared; a feature file records the fingerprint of the model it came from, an ONNX
export carries the fingerprint of its checkpoint, and search refuses to mix fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HASH_CHARS", "ModelFingerprint", "config_hash", "file_hash"]

HASH_CHARS = 16
"""Hex digits kept of each SHA-256 (64 bits: collisions between a user's checkpoints are not a concern)."""


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of a configuration as canonical JSON (sorted keys), first :data:`HASH_CHARS` hex digits."""
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, first :data:`HASH_CHARS` hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class ModelFingerprint:
    """The identity of a trained model.

    Attributes:
        config_hash: :func:`config_hash` of the checkpoint's training configuration.
        file_hash: :func:`file_hash` of the checkpoint file (an ONNX export keeps its checkpoint's).
    """

    config_hash: str
    file_hash: str

    def __str__(self) -> str:
        return f"config {self.config_hash} / checkpoint {self.file_hash}"

    def as_dict(self) -> dict[str, str]:
        """``{"config_hash": ..., "file_hash": ...}``."""
        return {"config_hash": self.config_hash, "file_hash": self.file_hash}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelFingerprint:
        """Inverse of :meth:`as_dict`; ``ValueError`` when a hash is missing."""
        try:
            return cls(str(values["config_hash"]), str(values["file_hash"]))
        except KeyError as exc:
            raise ValueError(f"model fingerprint lacks {exc.args[0]!r}: {dict(values)}") from None

    @classmethod
    def of_checkpoint(cls, path: str | os.PathLike[str], config: Mapping[str, Any]) -> ModelFingerprint:
        """The fingerprint of the checkpoint at ``path`` whose stored configuration is ``config``."""
        return cls(config_hash(config), file_hash(path))
