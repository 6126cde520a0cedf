"""Single-scan latent diffusion: the forecaster (:mod:`.diffusion`), its VQ codebook (:mod:`.codebook`) and inputs
(:mod:`.inputs`). Crops come from :mod:`gliomaforecast.forecasters.crops`.

Layer 3: imports the forecaster base, the diffusion samplers and the layers below.
"""
