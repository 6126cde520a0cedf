"""List the registered ONNX models and verify their files (sha256); exit 2 when one is missing or altered."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import models as registry
from ..resources import ENV_VAR

NAME = "models"
HELP = "list and verify the ONNX models (Resources/Models or $GLIOMAFORECAST_MODELS_DIR)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models-dir", type=Path, default=None, help=f"models folder (default ${ENV_VAR}, else Resources/Models)"
    )


def run(args: argparse.Namespace) -> int:
    folder = args.models_dir if args.models_dir is not None else registry.default_models_dir()
    specs = registry.load_registry(folder)
    for spec in specs.values():
        registry.verify(spec)  # InputError -> one line on stderr, exit 2
    print(f"{len(specs)} model(s) in {folder}, all files verified (sha256)")
    for spec in specs.values():
        ins = ", ".join(f"{t.name}{list(t.shape)}" for t in spec.inputs)
        outs = ", ".join(f"{t.name}{list(t.shape)}" for t in spec.outputs)
        print(f"  {spec.id} {spec.version}  {spec.file}  sha256 {spec.sha256[:12]}  in: {ins}  out: {outs}")
    return 0
