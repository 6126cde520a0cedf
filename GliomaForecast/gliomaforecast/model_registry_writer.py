"""The writer of ``models.json``, beside its reader (:mod:`gliomaforecast.models`).

Training and export code builds an entry (a dict as in models.json) and calls :func:`write_registry_entry`,
which checks it with the reader's own parser and the files' sha256 before inserting it (replacing any entry
with the same id, which then moves to the end) and writes the manifest atomically as indented JSON.

For a model family, :func:`file_entry` describes each ONNX file (name, sha256 computed here, inputs and
outputs with units) and :func:`family_entry` groups them under one id::

    entry = family_entry("ldm", "1.0.0", {
        "encoder": file_entry(folder / "ldm_encoder.onnx", inputs=[...], outputs=[...]),
        "denoiser": file_entry(folder / "ldm_denoiser.onnx", inputs=[...], outputs=[...])},
        training={...}, metrics={...})
    write_registry_entry(folder, entry)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .io.images import write_text_atomic
from .models import SCHEMA, parse_entry, parse_family_entry, sha256_of, verify


def file_entry(
    path: str | Path, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]], **fields: Any
) -> dict[str, Any]:
    """One ONNX file of a registry entry: ``{"file": name, "sha256": ..., "inputs": [...], "outputs": [...]}``
    plus ``fields``. ``path`` must lie in the models folder the entry is written to (only its name is kept)."""
    path = Path(path)
    return {
        "file": path.name,
        "sha256": sha256_of(path),
        "inputs": [dict(t) for t in inputs],
        "outputs": [dict(t) for t in outputs],
        **fields,
    }


def family_entry(
    model_id: str, version: str, members: Mapping[str, Mapping[str, Any]], **fields: Any
) -> dict[str, Any]:
    """A family's registry entry: ``{"id", "version", "files": {member: file entry}, **fields}``."""
    if not members:
        raise InputError(None, "files", f"model family '{model_id}' needs at least one member file")
    return {"id": model_id, "version": version, "files": {str(k): dict(v) for k, v in members.items()}, **fields}


def write_registry_entry(models_dir: str | Path, entry: Mapping[str, Any], *, check_files: bool = True) -> Path:
    """Append ``entry``, or replace the entry with its id where it stands, in ``models_dir/models.json``,
    atomically; returns the manifest path.

    The entry is parsed as the reader will parse it (single model or family), and with ``check_files`` every
    file it names must exist in ``models_dir`` with the recorded sha256. A new manifest gets the schema
    ``gliomaforecast.models/1``."""
    folder = Path(models_dir)
    manifest = folder / "models.json"
    where = f"model '{entry.get('id', '?')}'"
    spec = (
        parse_family_entry(entry, folder, manifest, where)
        if "files" in entry
        else parse_entry(entry, folder, manifest, where)
    )
    if check_files:
        verify(spec)
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(manifest, "models.json", f"not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("models"), list):
            raise InputError(manifest, "schema", f"expected '{SCHEMA}' with a 'models' list")
    else:
        data = {"schema": SCHEMA, "models": []}
    ids = [m.get("id") for m in data["models"]]
    if entry["id"] in ids:  # replaced in place: the manifest keeps its order
        data["models"][ids.index(entry["id"])] = dict(entry)
    else:
        data["models"].append(dict(entry))
    return write_text_atomic(manifest, json.dumps(data, indent=2) + "\n")
