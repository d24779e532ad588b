"""A trained model on disk: node arrays, entity statistics, category strings and a manifest.

Directory layout (written by `screener train`, read by `screener worker --model` and `backtest --model`):
`manifest.json` (format, version, features, categories, lane thresholds, training data hashes,
validation metrics), `trees.npz` (the TreeEnsemble's arrays), `entity_state.npz` (entity counts at the
end of training, all outcomes applied) and `lightgbm.txt` (LightGBM's own dump, for audits and tests).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from screener.model.trees import TreeEnsemble

FORMAT_VERSION = 1
MANIFEST, TREES, ENTITY_STATE, LIGHTGBM_TEXT = "manifest.json", "trees.npz", "entity_state.npz", "lightgbm.txt"


class ModelError(Exception):
    """A model directory that cannot be used (missing files, another format version, a feature mismatch)."""


@dataclass
class SavedModel:
    """A model directory's contents."""

    manifest: dict
    ensemble: TreeEnsemble
    entity_state: dict[str, np.ndarray]

    @property
    def version(self) -> str:
        """The model's version string (from the manifest)."""
        return str(self.manifest["version"])


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (training data fingerprints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(out: str | Path, manifest: dict, ensemble: TreeEnsemble, entity_state: dict[str, np.ndarray],
               lightgbm_text: str) -> Path:
    """Write a model directory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ensemble.save(out / TREES)
    np.savez_compressed(out / ENTITY_STATE, **entity_state)
    (out / LIGHTGBM_TEXT).write_text(lightgbm_text)
    (out / MANIFEST).write_bytes(orjson.dumps({"format": FORMAT_VERSION, **manifest}, option=orjson.OPT_INDENT_2))
    return out


def load_model(directory: str | Path) -> SavedModel:
    """Read a model directory (ModelError saying what is wrong when it cannot be used)."""
    d = Path(directory)
    missing = [n for n in (MANIFEST, TREES, ENTITY_STATE) if not (d / n).is_file()]
    if missing:
        raise ModelError(f"{d}: not a model directory (missing {', '.join(missing)})")
    manifest = orjson.loads((d / MANIFEST).read_bytes())
    if manifest.get("format") != FORMAT_VERSION:
        raise ModelError(f"{d}: model format {manifest.get('format')!r}, this screener reads {FORMAT_VERSION}")
    ensemble = TreeEnsemble.load(d / TREES)
    if ensemble.feature_names != manifest["features"]:
        raise ModelError(f"{d}: trees.npz and manifest.json list different features")
    with np.load(d / ENTITY_STATE, allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    return SavedModel(manifest, ensemble, state)
