"""Paths as the outputs show them (report.html, forecast.json, growth.json): never absolute, since folder names can
carry a patient's name. A file inside the case folder is shown relative to it (as the manifest names it); any
other file by its name only."""

from __future__ import annotations

from pathlib import Path


def shown_path(path: str | Path | None, case_dir: str | Path | None = None) -> str:
    """``path`` relative to ``case_dir`` when it lies inside it, else its file name; "" for None."""
    if path is None:
        return ""
    path = Path(path)
    if case_dir is not None:
        try:
            return Path(path).resolve().relative_to(Path(case_dir).resolve()).as_posix()
        except ValueError:
            pass
    return path.name
