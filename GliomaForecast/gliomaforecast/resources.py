"""Where the extension's resources (ONNX models, the sample patient) are found.

In a source tree (a git checkout, an editable install, or the Slicer extension) they are the top-level
``Resources/`` folder; a wheel installs them under ``<prefix>/share/gliomaforecast/`` (pyproject
``data-files``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE_RESOURCES = Path(__file__).resolve().parents[2] / "Resources"
INSTALLED_RESOURCES = Path(sys.prefix) / "share" / "gliomaforecast"
ENV_VAR = "GLIOMAFORECAST_MODELS_DIR"  # the models folder, when set


def resources_dir() -> Path:
    """The folder holding ``Models/`` and ``SampleData/``: the source tree's ``Resources`` when present,
    else the installed copy."""
    return SOURCE_RESOURCES if (SOURCE_RESOURCES / "Models").is_dir() else INSTALLED_RESOURCES


def default_models_dir() -> Path:
    """``$GLIOMAFORECAST_MODELS_DIR`` if set, else ``Models`` of :func:`resources_dir` (the ONNX registry and the
    growth prior live there)."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else resources_dir() / "Models"
