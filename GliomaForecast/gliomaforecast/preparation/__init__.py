"""Preparing a clinic's scans before any model runs (docs/preparation.md):

* :mod:`.registration`: rigid or affine registration of one session onto another (SimpleITK's
  ImageRegistrationMethod, Mattes mutual information, transforms in ITK's convention and in millimetres), a measured
  quality (edge correlation) that refuses a session that will not register, resampling, .tfm files;
* :mod:`.sessions`: which sequence pair registers a later session onto the planning scan, and its transform
  (estimated, given by a DICOM Spatial Registration object, or the identity);
* :mod:`.templates`, :mod:`.anatomy`, :mod:`.brain`, :mod:`.tissue`: a brain mask and WM/GM/CSF maps derived from a
  scan that has none (a template registered onto it, its maps propagated, refined by the scan's intensities);
* :mod:`.prepare`: a whole case brought onto the planning grid (``gliomaforecast prepare``, import-dicom, the Slicer
  panel's "Prepare scans"), with the provenance of what was registered and derived;
* :mod:`.motion`: known rigid motions and moved cases, to measure all of this against the truth.

Layer 2: imports only the base modules (errors, geometry) and :mod:`gliomaforecast.io`; never a forecaster, the
orchestration or an output.
"""
