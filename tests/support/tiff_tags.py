"""A tiny TIFF directory reader: enough to check that fixtures carry the tags real AEF files carry."""

import struct

_TYPES = {1: "B", 2: "c", 3: "H", 4: "I", 5: "II", 7: "B", 11: "f", 12: "d", 16: "Q"}


def first_ifd_tags(path):
    """{tag: tuple of values} of the first image file directory (classic TIFF and BigTIFF)."""
    with open(path, "rb") as handle:
        data = handle.read()
    order = "<" if data[:2] == b"II" else ">"
    (magic,) = struct.unpack_from(order + "H", data, 2)
    big = magic == 43
    if big:
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        (count,) = struct.unpack_from(order + "Q", data, offset)
        entry_size, head, inline = 20, offset + 8, 8
    else:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        entry_size, head, inline = 12, offset + 2, 4
    tags = {}
    for index in range(count):
        entry = head + index * entry_size
        tag, kind = struct.unpack_from(order + "HH", data, entry)
        number = struct.unpack_from(order + ("Q" if big else "I"), data, entry + 4)[0]
        fmt = _TYPES.get(kind)
        if fmt is None:
            continue
        size = struct.calcsize(order + fmt) * number
        value_at = entry + (12 if big else 8)
        if size > inline:
            value_at = struct.unpack_from(order + ("Q" if big else "I"), data, value_at)[0]
        values = struct.unpack_from(order + fmt * number, data, value_at)
        tags[tag] = values
    return tags
