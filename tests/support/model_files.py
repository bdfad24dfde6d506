"""Hostile and damaged GeoEmbed model files, built from a valid one taken apart (zip members, header, arrays) and put
back together with one thing changed, and pickles that would run code. Written with zipfile and np.save here, not
with geoembed's writer, so the tests do not trust the code they test."""

import io
import json
import pickle
import zipfile

import numpy as np


class WritesAFile:
    """Unpickling this creates the file `marker`: the proof that a loader unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_that_writes(path, marker, protocol=pickle.HIGHEST_PROTOCOL):
    """An old-style GeoEmbed model pickle whose loading would create marker."""
    path.write_bytes(pickle.dumps({"format": "geoembed-model-1", "model": WritesAFile(marker)}, protocol=protocol))
    return path


def members_of(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def header_npy(header):
    return npy(np.array(json.dumps(header)))


def header_of(members):
    return json.loads(str(np.load(io.BytesIO(members["header.npy"]))))


def arrays_of(members):
    return {name[:-4]: np.load(io.BytesIO(data)) for name, data in members.items() if name != "header.npy"}


def rewrite(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def set_array(name, make):
    """A change_arrays for tampered: array `name` replaced by make(arrays)."""
    return lambda arrays: arrays.update({name: make(arrays)})


def tampered(source, path, change_header=None, change_arrays=None):
    """A copy of the model file source with its header and/or arrays changed in place by the given functions."""
    members = members_of(source)
    header, arrays = header_of(members), arrays_of(members)
    if change_header:
        change_header(header)
    if change_arrays:
        change_arrays(arrays)
    rebuilt = {"header.npy": header_npy(header)}
    rebuilt.update({f"{name}.npy": npy(values) for name, values in arrays.items()})
    return rewrite(path, rebuilt)


def with_member(source, path, name, data):
    """A copy of source with member name set to the raw bytes data (added or replaced)."""
    members = members_of(source)
    members[name] = data
    return rewrite(path, members)


def npy_claiming(shape, dtype="<f8", data=b"\0" * 64):
    """Raw .npy bytes whose header declares shape but which hold only data."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}"
    header = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + data


def object_array_that_writes(marker):
    """Raw .npy bytes of an object array: loading it with allow_pickle=True would create marker."""
    return npy(np.array([WritesAFile(marker)], dtype=object), allow_pickle=True)
