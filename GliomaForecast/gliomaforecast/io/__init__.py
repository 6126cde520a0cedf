"""Reading and writing, with exact geometry: images and segmentations (:mod:`.images`: NIfTI, NRRD, .seg.nrrd,
atomic output folders), file integrity (:mod:`.integrity`), the output-folder lock (:mod:`.write_guard`), the case
manifest (:mod:`.case`) and the paths shown to users (:mod:`.shown_paths`).

Layer 1: imports only the base modules (errors, defaults, checks, geometry, resources) and :mod:`gliomaforecast.sdf`.
"""
