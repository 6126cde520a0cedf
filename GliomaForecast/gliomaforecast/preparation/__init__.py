"""Preparing a clinic's scans before any model runs: the longitudinal registration of every later MRI session onto
the planning scan (:mod:`.registration`: rigid or affine, SimpleITK's ImageRegistrationMethod with Mattes mutual
information, transforms in ITK's convention and in millimetres, a measured quality that refuses a session that
will not register, and the resampling of images and labels onto the planning grid).

Layer 2: imports only the base modules (errors, geometry) and :mod:`gliomaforecast.io`; never a forecaster, the
orchestration or an output.
"""
