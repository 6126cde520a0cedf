"""Slicer-side code that needs MRML but not Qt: MRML <-> (array, Grid) adapters and ForecastLogic."""
