"""Files whose headers lie or that are made to exhaust a reader, each built in well under a second and a few MB.

Used by tests/unit/test_limits.py and tests/qgis/test_hostile_headers.py. Every builder writes into the path given and
returns it (as str).
"""

import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format
from osgeo import gdal, osr

UTM31 = 32631
TESSERA_STEM = "grid_0.15_45.05"  # a Tessera tile name (regex EMBEDDING in loaders/products/tessera.py)


def _create_tiff(path, width, height, bands, data_type, options):
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, data_type, options)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM31)
    dataset.SetProjection(srs.ExportToWkt())
    dataset = None


def _ifd_entries(data):
    """[(offset of the entry, tag, type, count)] of the first IFD of a little-endian classic TIFF."""
    assert data[:4] == b"II*\x00", "GDAL writes little-endian classic TIFF for small files"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    entries = []
    for index in range(count):
        at = ifd + 2 + 12 * index
        tag, kind, number = struct.unpack_from("<HHI", data, at)
        entries.append((at, tag, kind, number))
    return entries


def _patch_tags(path, values):
    """Set single-valued tags in place: {tag: value}; a value over 65535 turns the entry into a LONG."""
    data = bytearray(Path(path).read_bytes())
    for at, tag, _kind, number in _ifd_entries(data):
        if tag in values and number == 1:
            struct.pack_into("<HHII", data, at, tag, 4 if values[tag] > 0xFFFF else 3, 1, 0)
            struct.pack_into("<I" if values[tag] > 0xFFFF else "<H", data, at + 8, values[tag])
    Path(path).write_bytes(bytes(data))


def huge_header_tiff(path, width=10**6, height=10**6, bands=10**4):
    """A 4 KB GeoTIFF whose header claims width x height pixels of `bands` Float32 bands (no data behind it)."""
    _create_tiff(path, 512, 512, 1, gdal.GDT_Float32, ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "SPARSE_OK=YES"])
    _patch_tags(path, {256: width, 257: height, 277: bands})
    return str(path)


def huge_header_vrt(path, side=10**6, bands=10**4):
    """A VRT (XML header only) claiming side x side pixels and `bands` bands."""
    band = '<VRTRasterBand dataType="Float32" band="{}"/>'
    text = (
        f'<VRTDataset rasterXSize="{side}" rasterYSize="{side}"><SRS>EPSG:{UTM31}</SRS>'
        "<GeoTransform>500000, 10, 0, 5000000, 0, -10</GeoTransform>"
        + "".join(band.format(i + 1) for i in range(bands))
        + "</VRTDataset>"
    )
    Path(path).write_text(text)
    return str(path)


def deflate_bomb_tiff(path, side=32768, bands=4):
    """A valid 4 MB GeoTIFF whose one DEFLATE tile inflates to side x side x bands bytes (4 GiB by default):
    GDAL inflates a whole block to read one pixel of it."""
    options = ["TILED=YES", f"BLOCKXSIZE={side}", f"BLOCKYSIZE={side}", "COMPRESS=DEFLATE", "SPARSE_OK=YES"]
    _create_tiff(path, side, side, bands, gdal.GDT_Byte, options + ["INTERLEAVE=PIXEL"])
    stream = _zeros_deflate(side * side * bands)
    data = bytearray(Path(path).read_bytes())
    for at, tag, _kind, _number in _ifd_entries(data):
        if tag == 324:  # TileOffsets: the stream goes at the end of the file
            struct.pack_into("<HHII", data, at, tag, 4, 1, len(data))
        elif tag == 325:  # TileByteCounts
            struct.pack_into("<HHII", data, at, tag, 4, 1, len(stream))
    Path(path).write_bytes(bytes(data) + stream)
    return str(path)


def _zeros_deflate(total, segment=1 << 26):
    """A zlib stream of `total` zero bytes, built from one flushed segment repeated (so it takes no time to make)."""
    assert total % segment == 0
    compressor = zlib.compressobj(9)
    first = compressor.compress(bytes(segment)) + compressor.flush(zlib.Z_FULL_FLUSH)
    header, body = first[:2], first[2:]  # a full flush leaves no reference to earlier data: the body repeats
    adler = ((total % 65521) << 16) | 1  # adler32 of `total` zeros
    return header + body * (total // segment) + b"\x03\x00" + struct.pack(">I", adler)


def npy_header_only(path, shape, descr="|i1", data=b"", fortran=False):
    """A .npy file whose header claims `shape` of `descr` followed by `data` only."""
    with open(path, "wb") as handle:
        npy_format.write_array_header_2_0(handle, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
        handle.write(data)
    return str(path)


class _Touch:
    """Unpickling this creates a file: proof that a loader unpickled what it was given."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def object_npy(path, marker):
    """A .npy of dtype object whose pickle, if ever loaded, creates `marker`."""
    np.save(path, np.array([_Touch(marker)], dtype=object), allow_pickle=True)
    return str(path)


def tessera_tile(folder, embedding, scales=None):
    """A Tessera tile folder: grid_*.npy built by embedding(path) (a builder above), _scales.npy, landmask .tiff."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = embedding(folder / f"{TESSERA_STEM}.npy")
    if scales is None:
        np.save(folder / f"{TESSERA_STEM}_scales.npy", np.ones((4, 4), np.float32))
    else:
        scales(folder / f"{TESSERA_STEM}_scales.npy")
    _create_tiff(folder / f"{TESSERA_STEM}.tiff", 4, 4, 1, gdal.GDT_Byte, [])
    return path


def _point(lon, lat):
    return struct.pack("<BIdd", 1, 1, lon, lat)


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _patch_footer(path, old, new):
    """Replace the last occurrence of bytes `old` in the Parquet footer by `new` (same length)."""
    assert len(old) == len(new)
    data = bytearray(Path(path).read_bytes())
    (footer_length,) = struct.unpack_from("<I", data, len(data) - 8)
    start = len(data) - 8 - footer_length
    at = bytes(data[start:]).rfind(old)
    assert at > 0, "pattern not in the footer"
    data[start + at : start + at + len(old)] = new
    Path(path).write_bytes(bytes(data))


def wide_list_parquet(path, per_row=10**8):
    """A Clay-like GeoParquet of one row whose metadata says its embedding list holds per_row values.

    The row really holds 2^20 + 7 values (4 MB, whose count has a 4-byte varint like 10^8's); the footer's
    ColumnMetaData.num_values (compact Thrift field 5, i64, header 0x16) is then set to per_row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    real = (1 << 20) + 7
    embeddings = pa.ListArray.from_arrays(pa.array([0, real], pa.int32()), pa.array(np.full(real, 0.5, np.float32)))
    table = pa.table({"embeddings": embeddings, "geometry": pa.array([_point(6.0, 45.0)], pa.binary())})
    pq.write_table(table, path, compression="zstd")
    assert len(_varint(2 * real)) == len(_varint(2 * per_row))
    _patch_footer(path, b"\x16" + _varint(2 * real), b"\x16" + _varint(2 * per_row))
    return str(path)


def fixed_width_parquet(path, width=10**5):
    """A Clay-like GeoParquet of one row of fixed_size_list<float>[width] embeddings (all null: the file is small)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("embeddings", pa.list_(pa.float32(), width)), ("geometry", pa.binary())])
    values = pa.nulls(width, pa.float32())
    table = pa.table(
        {"embeddings": pa.FixedSizeListArray.from_arrays(values, width), "geometry": [_point(6.0, 45.0)]}, schema=schema
    )
    pq.write_table(table, path, compression="zstd")
    return str(path)


def lying_rows_parquet(path, rows=3, claimed=50):
    """A Clay-like GeoParquet of `rows` rows whose row group claims `claimed` rows (file metadata and columns: rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert rows < 64 and claimed < 64  # one-byte zigzag varints: the footer keeps its length
    table = pa.table(
        {
            "embeddings": pa.array([[0.5, 0.5]] * rows, pa.list_(pa.float32())),
            "geometry": pa.array([_point(6.0 + i * 0.01, 45.0) for i in range(rows)], pa.binary()),
        }
    )
    pq.write_table(table, path, compression="none")
    # Compact Thrift: RowGroup{1: columns, 2: total_byte_size (i64), 3: num_rows (i64)}: num_rows is the last
    # "0x16 <varint>" of that value in the footer (the file's own num_rows comes first, the columns' counts differ).
    _patch_footer(path, bytes([0x16, rows * 2]), bytes([0x16, claimed * 2]))
    return str(path)


def truncated_copy(source, path, fraction=0.5):
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return str(path)
