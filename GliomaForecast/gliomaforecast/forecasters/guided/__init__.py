"""Growth-guided DDIM (regressor guidance steered by the mechanistic growth model): the forecaster (:mod:`.ddim`),
its slice inputs (:mod:`.inputs`), the growth model's burden targets (:mod:`.targets`) and the probability maps of
its generations (:mod:`.maps`). Crops come from the shared crop library :mod:`gliomaforecast.forecasters.crops`.

Layer 3: imports the forecaster base, the diffusion samplers and the layers below.
"""
