"""GliomaForecast core library: glioma growth forecasting and radiotherapy target volumes.

Arrays are numpy in (z, y, x) order; spacing is in mm in the same order; time in days; dose in Gy;
volumes in mL. The core never imports slicer, qt, vtk, torch or monai.
"""

__version__ = "0.1.0"
