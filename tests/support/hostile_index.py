"""Copies of the fixture AEF index whose tile paths are rewritten, for the index-confinement tests.

    annual = write_mirror(tmp_path / "hostile", aef_mirror, lambda relative: "../../" + relative)

relative is a row's path inside v1/annual/ (e.g. 2024/31N/x...-0000000000-0000000000.tiff); rewrite returns the
path to list instead, or None to keep the row as published (an s3:// URI, placed in the mirror). Only the index is
written: a test links or copies tiles itself when the mirror should hold them.
"""

from pathlib import Path

MARKER = "v1/annual/"


def write_mirror(root, source_mirror, rewrite):
    """root/v1/annual/aef_index.parquet: the index of source_mirror with its paths rewritten; returns the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(Path(source_mirror) / MARKER / "aef_index.parquet")
    paths = []
    for path in table.column("path").to_pylist():
        relative = path[path.find(MARKER) + len(MARKER) :]
        new = rewrite(relative)
        paths.append(path if new is None else new)
    position = table.schema.get_field_index("path")
    table = table.set_column(position, table.schema.field(position), pa.array(paths, pa.string()))
    annual = Path(root) / MARKER
    annual.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, annual / "aef_index.parquet", row_group_size=2)
    return annual
