"""The multi-task diffusion forecaster (future FLAIR + probability map from the last two scans): :mod:`.diffusion`.
Its crops (and those of guided and latent) come from :mod:`gliomaforecast.forecasters.crops`.

Layer 3: imports the forecaster base, the diffusion samplers and the layers below.
"""
