"""Tools layer: pure functions on embedding blocks (numpy only; no qgis)."""
