"""The GeoEmbed model file: data only, so opening a model from someone else cannot run code.

A model file is a NumPy .npz (a zip of .npy arrays) holding:
  header.npy  one JSON string: format name and version, method, class names, band names, product, training report,
              library versions at training, and the predictor's kind and counts (which fix every array's shape);
              a regression model (geoembed:regress) has "task": "regression" and the target field's name in
              "target" instead of class names (a header without "task" is a classifier's, as before);
  <name>.npy  the predictor's numbers (analysis/predictors.py), plain little-endian integers or floats.

Reading checks the file before trusting it: zip magic (a pickle, as older GeoEmbed versions saved, is named as such
and never opened), exactly the members the header's kind calls for, each member's declared dtype and shape against
the header before anything is allocated, sizes below MAX_MODEL_BYTES, and the values themselves (tree links, indices
in range). Arrays are read with NumPy's header parser and np.frombuffer: never with pickle.
"""

import json
import os
import struct
import zipfile
import zlib

import numpy as np

from ..loaders.errors import GeoEmbedError
from ..loaders.remote.locations import atomic_file
from .neural_network import NeuralNetworkPredictor
from .predictors import KINDS as PREDICTOR_KINDS
from .predictors import ModelDataError

FORMAT = "geoembed-model"
VERSION = 1
EXTENSION = "npz"
MAX_MODEL_BYTES = 2**30  # all arrays together, uncompressed: far above any model train makes from sampled pixels
MAX_HEADER_BYTES = 16 * 2**20
MAX_CLASSES = 65534  # the class raster is UInt16 with 0 = nodata
MAX_BANDS = 65536
ZIP_MAGIC = b"PK\x03\x04"
ZIP_END = b"PK\x05\x06"  # end of central directory record: member count and directory size
ZIP64_LOCATOR = b"PK\x06\x07"
MAX_MEMBERS = 16  # a header and the arrays of the largest layout (a neural network: 3 + 2 per layer)
MAX_DIRECTORY_BYTES = 64 * 1024
PICKLE_PROTOCOL = b"\x80"  # first byte of pickles of protocol 2 and later
RETRAIN = "retrain it with geoembed:train"
TASKS = {  # task: (what makes such models, what to do with a bad file)
    "classification": ("geoembed:train", RETRAIN),
    "regression": ("geoembed:regress", "retrain it with geoembed:regress"),
}
KINDS = {**PREDICTOR_KINDS, NeuralNetworkPredictor.kind: NeuralNetworkPredictor}
_COUNTS = ("classes", "rows", "k", "samples", "trees", "nodes", "leaves")  # predictor params that must be counts


def check_size(predictor, method):
    """A model whose arrays exceed MAX_MODEL_BYTES could be saved but never loaded: say so before any output."""
    size = sum(np.asarray(values).nbytes for values in predictor.arrays().values())
    if size > MAX_MODEL_BYTES:
        raise GeoEmbedError(
            f"The {method} model takes {size / 2**30:.1f} GiB, more than a GeoEmbed model file may hold "
            f"({MAX_MODEL_BYTES / 2**30:.0f} GiB); train on fewer samples (fewer or smaller polygons) or another METHOD."
        )


def save(path, predictor, fields):
    """Write predictor and the descriptive fields (method, class_names or, for a regressor, target, band_names,
    product, report, versions)."""
    check_size(predictor, fields["method"])
    task = {"task": predictor.task} if predictor.task != "classification" else {}  # classifier headers as before
    header = {"format": FORMAT, "version": VERSION, **task, **fields, "predictor": {"kind": predictor.kind, **predictor.params()}}
    arrays = {name: _plain(values) for name, values in predictor.arrays().items()}
    with atomic_file(path) as tmp, open(tmp, "wb") as out:
        np.savez_compressed(out, header=np.array(json.dumps(header, default=_json_number)), **arrays)
    return path


def load(path, what="MODEL", task="classification"):
    """(fields, predictor) of a model file written by save() for task ("classification": fields method,
    class_names, band_names, product, report, versions; "regression": target instead of class_names); anything else,
    a model of the other task included, is a one-line GeoEmbedError."""
    retrain = TASKS[task][1]
    _check_head(path, what, task)
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(archive, path, what, task)
    except GeoEmbedError:
        raise
    except ModelDataError as exc:
        raise GeoEmbedError(f"{what} {path} is not a valid GeoEmbed model: {exc}; {retrain}.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, ValueError, TypeError, KeyError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GeoEmbedError(f"{what} {path} is not a GeoEmbed model ({reason}); {retrain}.") from None


def _check_head(path, what, task="classification"):
    maker, retrain = TASKS[task]
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - 22 - 65535))  # the end record sits within the last 64 KiB (its comment)
            tail = handle.read()
    except FileNotFoundError:
        raise GeoEmbedError(f"{what} {path} does not exist; give a model file saved by {maker}.") from None
    except IsADirectoryError:
        raise GeoEmbedError(f"{what} {path} is a folder; give a model file saved by {maker}.") from None
    except OSError as exc:
        raise GeoEmbedError(f"{what} {path} cannot be read ({exc.strerror or exc}); check the file.") from None
    if not head:
        raise GeoEmbedError(f"{what} {path} is empty, not a GeoEmbed model; {retrain}.")
    if head.startswith(PICKLE_PROTOCOL):
        raise GeoEmbedError(
            f"{what} {path} is a Python pickle (as older GeoEmbed versions saved models), which can run code; "
            f"it is not opened: {retrain}."
        )
    if head != ZIP_MAGIC:
        raise GeoEmbedError(f"{what} {path} is not a GeoEmbed model (no model header); {retrain}.")
    if size > MAX_MODEL_BYTES:
        raise GeoEmbedError(f"{what} {path} is {size / 2**30:.1f} GiB, too large for a GeoEmbed model; {retrain}.")
    _check_directory(tail, path, what, retrain)


def _check_directory(tail, path, what, retrain=RETRAIN):
    """Refuse before zipfile parses it a directory of many members (each becomes a Python object) or a ZIP64 one
    (whose counts would override the small ones): save() writes neither."""
    at = tail.rfind(ZIP_END)
    if at < 0 or len(tail) - at < 22:
        raise GeoEmbedError(f"{what} {path} is not a GeoEmbed model (a truncated zip); {retrain}.")
    entries, directory_bytes = struct.unpack("<xxxxxxxxxxHI", tail[at : at + 16])
    if entries > MAX_MEMBERS or directory_bytes > MAX_DIRECTORY_BYTES or tail[max(0, at - 20) : at].startswith(ZIP64_LOCATOR):
        raise GeoEmbedError(f"{what} {path} is not a GeoEmbed model (a zip of {entries} members); {retrain}.")


def _read(archive, path, what, task):
    members = {}
    for info in archive.infolist():
        if info.filename in members or not info.filename.endswith(".npy"):
            raise ModelDataError(f"it holds a duplicate or unexpected member '{info.filename[:60]}'")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelDataError(f"its member {info.filename} is encrypted or compressed in an unusual way")
        members[info.filename] = info
    if sum(info.file_size for info in members.values()) > MAX_MODEL_BYTES:
        raise ModelDataError(f"its arrays would take more than {MAX_MODEL_BYTES // 2**30} GiB")
    if "header.npy" not in members:
        raise ModelDataError("it has no header")
    header = _header(_array(archive, members["header.npy"], ("<U",), (), MAX_HEADER_BYTES)[()])
    _check_task(header, path, what, task)
    kind = KINDS[header["predictor"]["kind"]]
    bands = len(header["band_names"])
    layout = _layout(kind, header, bands)
    expected = {f"{name}.npy" for name in layout} | {"header.npy"}
    if set(members) != expected:
        missing, extra = sorted(expected - set(members)), sorted(set(members) - expected)
        raise ModelDataError(f"its arrays do not match its header (missing {missing or 'none'}, extra {extra or 'none'})")
    arrays = {name: _array(archive, members[f"{name}.npy"], dtypes, shape) for name, (dtypes, shape) in layout.items()}
    predictor = kind.from_arrays(arrays, header["predictor"], bands, len(header.get("class_names", ())))
    names = "class_names" if task == "classification" else "target"
    fields = {key: header[key] for key in ("method", names, "band_names", "product", "report", "versions")}
    return fields, predictor


def _check_task(header, path, what, task):
    """A classifier given where a regression model is wanted, or the other way round: said in one line."""
    found = header.get("task", "classification")
    if found == task:
        return
    if task == "regression":
        raise GeoEmbedError(
            f"{what} {path} is a classifier (saved by geoembed:train), not a regression model; give a model saved by "
            "geoembed:regress (OUTPUT_MODEL), or apply this one with geoembed:classify."
        )
    raise GeoEmbedError(
        f"{what} {path} is a regression model (saved by geoembed:regress), not a classifier; apply it with "
        "geoembed:regress (MODEL), or give a model saved by geoembed:train."
    )


def _layout(kind, header, bands):
    """The arrays the header's predictor calls for, checked to fit MAX_MODEL_BYTES before any is read."""
    params = header["predictor"]
    for name in _COUNTS:
        if name in params and not (type(params[name]) is int and 0 <= params[name] <= 2**40):
            raise ModelDataError(f"its predictor count '{name}' is not a count")
    if kind.task == "classification" and not 1 <= params.get("classes", 0) <= len(header["class_names"]):
        raise ModelDataError("its predictor has more classes than class names")
    try:
        layout = kind.layout(params, bands)
    except (KeyError, TypeError) as exc:
        raise ModelDataError(f"its predictor lacks {exc}") from None
    itemsize = 8
    total = sum(int(np.prod(shape, dtype=np.float64)) * itemsize for _, shape in layout.values())
    if total > MAX_MODEL_BYTES:
        raise ModelDataError(f"its header declares arrays of {total / 2**30:.1f} GiB")
    return layout


def _array(archive, info, dtypes, shape, limit=MAX_MODEL_BYTES):
    """One member, its .npy header checked (dtype among dtypes, C order, shape) before its data is read."""
    name = info.filename[:-4]
    if info.file_size > limit:
        raise ModelDataError(f"its {name} array claims {info.file_size} bytes")
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            declared, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            declared, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ModelDataError(f"its {name} array has .npy version {version}")
        plain = dtype.str in dtypes or (dtypes == ("<U",) and dtype.kind == "U" and dtype.byteorder in "<=")
        if not plain or dtype.hasobject:
            raise ModelDataError(f"its {name} array is of type {dtype.str}, not one of {', '.join(dtypes)}")
        if fortran:
            raise ModelDataError(f"its {name} array is in Fortran order")
        if tuple(declared) != tuple(shape):
            raise ModelDataError(f"its {name} array has shape {tuple(declared)}, not {tuple(shape)} as its header says")
        nbytes = int(np.prod(declared, dtype=np.int64)) * dtype.itemsize
        if nbytes > limit or info.file_size != stream.tell() + nbytes:
            raise ModelDataError(f"its {name} array's size does not match its shape")
        data = stream.read(nbytes)
        if len(data) != nbytes or stream.read(1):
            raise ModelDataError(f"its {name} array's size does not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(declared)


def _header(text):
    try:
        header = json.loads(str(text))  # a 0-d unicode array
    except (ValueError, RecursionError):
        raise ModelDataError("its header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelDataError("its header does not name the GeoEmbed model format")
    version = header.get("version")
    if type(version) is not int:
        raise ModelDataError("its header has no format version number")
    if version != VERSION:
        raise ModelDataError(f"it is format version {version}; this GeoEmbed reads version {VERSION}")
    task = header.get("task", "classification")
    if task not in TASKS:
        raise ModelDataError(f"its task is not one of {', '.join(TASKS)}")
    if task == "classification":
        _check_names(header, "class_names", MAX_CLASSES)
    elif not isinstance(header.get("target"), str) or len(header["target"]) > 1000:
        raise ModelDataError("its header's target is not a field name")
    _check_names(header, "band_names", MAX_BANDS)
    for key, kind in (("method", str), ("product", (str, type(None))), ("report", dict), ("versions", dict), ("predictor", dict)):
        if not isinstance(header.get(key), kind):
            raise ModelDataError(f"its header's {key} is missing or not of the right type")
    if header["predictor"].get("kind") not in KINDS:
        raise ModelDataError(f"its predictor kind is not one of {', '.join(KINDS)}")
    if KINDS[header["predictor"]["kind"]].task != task:
        raise ModelDataError(f"its predictor kind {header['predictor']['kind']} is not a {task} model")
    return header


def _check_names(header, key, limit):
    names = header.get(key)
    if not isinstance(names, list) or not 1 <= len(names) <= limit or not all(isinstance(n, str) for n in names):
        raise ModelDataError(f"its header's {key} is not a list of 1 to {limit} names")


def _plain(values):
    """Little-endian int32 (int64 if needed), or float32/float64 as fitted: the only dtypes a model file may hold."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        small = values.size == 0 or (values.min() >= -(2**31) and values.max() < 2**31)
        return np.array(values, dtype="<i4" if small else "<i8", order="C")  # np.array keeps a 0-d array 0-d
    return np.array(values, dtype="<f4" if values.dtype == np.float32 else "<f8", order="C")


def _json_number(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")
