"""Default settings shared by the core, the CLI, the evaluation, the Slicer logic and its parameter node.

One place for every default that a user can change; nothing else spells these numbers.
"""

from __future__ import annotations

MARGIN_MM = 15.0  # standard CTV margin (mm), ESTRO-EANO / PREDICT-GBM
BETA_PER_MM = 0.1  # logistic slope of the tumor-probability map (1/mm)
MU_MM = 15.0  # distance (mm) from the GTV at which the tumor probability is 0.5
SAMPLES = 8  # growth-model draws per forecast (uncertainty)
N_BOOTSTRAP = 100  # bootstrap refits of the growth model
BOOTSTRAP_NOISE = 0.10  # relative sd of the multiplicative bootstrap noise
SEED = 0
DEVICE = "auto"  # onnxruntime device: auto (CUDA when it really loads, else CPU), cpu or cuda
DEVICES = ("auto", "cpu", "cuda")
