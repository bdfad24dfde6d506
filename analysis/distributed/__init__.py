"""Block-wise analyses on a Dask cluster (dask.distributed): the CLUSTER parameter of the Processing algorithms.

The output grid is cut into pieces of whole output blocks (pieces.py); each piece is one task. A worker opens the
input itself (a path or URL: it reads only the blocks of its piece, by range requests for a remote mirror), computes
its piece with the same analysis code as a run in QGIS, block for block, and writes it as a GeoTIFF into a hidden
scratch folder beside the output (tasks.py). The client follows the tasks (progress, cancel, errors), then merges the
pieces into the output with the same writer as a run in QGIS (runner.py), so both give the same file, bit for bit.
cluster.py connects to a scheduler or starts worker processes on this machine; jobs.py is what providers call.

Nothing here imports qgis: workers import GeoEmbed as a plain Python package.
"""
