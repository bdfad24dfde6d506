"""The QGIS Processing provider: algorithms translate parameters and call loaders/analysis."""
