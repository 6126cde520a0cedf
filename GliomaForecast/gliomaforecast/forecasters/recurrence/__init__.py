"""The PREDICT-GBM recurrence U-Net ensemble: the forecaster (:mod:`.unet`) and its planning-scan inputs on the 2 mm
working grid (:mod:`.inputs`).

Layer 3: imports the forecaster base, the model registry and the layers below.
"""
