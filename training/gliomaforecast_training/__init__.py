"""GliomaForecast training package: virtual cohort, networks, losses, trainers and ONNX export.

Imports the core (``gliomaforecast``) plus torch and MONAI; produces Resources/Models/*.
"""
