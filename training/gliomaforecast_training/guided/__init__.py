"""The growth-model-guided DDIM forecaster's networks (Mechanistic learning, METHODS.md section 2): an
unconditional DDPM on FLAIR slices and a tumour-burden regressor R(x_t, t) whose input gradient is part of its
ONNX graph."""
