"""Data layer: every embedding product becomes one in-memory model (see model.py).

Nothing in this package imports qgis, so it runs and tests in plain Python.
"""
