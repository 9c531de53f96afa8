"""Reader and writer for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a header followed by the array in C order, every number big-endian::

    bytes 0-1    zero
    byte  2      type code (see _DTYPES)
    byte  3      number of dimensions d
    4*d bytes    the size of each dimension, uint32
    the rest     the data: exactly prod(sizes) items

Files are usually distributed gzip-compressed; the reader tells the two apart by their
first bytes, so a file's name does not matter.
"""
import contextlib
import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..fileio import atomic_write  # noqa: F401  (re-exported for callers of this module)

_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_DIMS = 4  # MNIST uses 1 (labels) and 3 (images); more means a corrupt header


class DataError(ValueError):
    """A data file is missing, corrupt, or could not be fetched."""


def read_idx(path):
    """Read an IDX file, gzip-compressed or plain, into a native-endian NumPy array."""
    path = Path(path)
    raw = _read_bytes(path)
    dtype, shape, offset = _parse_header(path, raw)
    expected, actual = math.prod(shape) * dtype.itemsize, len(raw) - offset
    if actual != expected:
        problem = "truncated" if actual < expected else f"{actual - expected} trailing bytes"
        raise DataError(f"{path}: {problem}: header says {'x'.join(map(str, shape))} "
                        f"{dtype.name} = {expected} bytes of data, file has {actual}")
    array = np.frombuffer(raw, dtype, count=math.prod(shape), offset=offset)
    return array.reshape(shape).astype(dtype.newbyteorder("="))  # a writable copy


def write_idx(path, array):
    """Write `array` as an IDX file (gzip-compressed if `path` ends in .gz), atomically."""
    path, array = Path(path), np.asarray(array)
    code = _CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; "
                         f"use one of {sorted({dt.name for dt in _DTYPES.values()})}")
    if not 1 <= array.ndim <= MAX_DIMS:
        raise ValueError(f"IDX arrays need 1..{MAX_DIMS} dimensions, got shape {array.shape}")
    header = struct.pack(f">2xBB{array.ndim}I", code, array.ndim, *array.shape)
    with atomic_write(path) as f:
        # mtime=0 makes .gz output reproducible; the name stored inside is path minus .gz
        gz = gzip.GzipFile(path.name, "wb", fileobj=f, mtime=0) if path.suffix == ".gz" else None
        with gz or contextlib.nullcontext(f) as out:
            out.write(header)
            out.write(array.astype(_DTYPES[code]).tobytes())


def _read_bytes(path):
    """The file's content, decompressed if it is gzip."""
    with open(path, "rb") as f:
        gz = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not gz:
            return f.read()
        try:
            with gzip.GzipFile(fileobj=f) as g:
                return g.read()
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupt gzip data: {err}") from None


def _parse_header(path, raw):
    """Check the header; return (big-endian dtype, shape, offset of the data)."""
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file: {len(raw)} bytes, too short for the 4-byte magic number")
    if raw[:2] != b"\0\0":
        raise DataError(f"{path}: not an IDX or gzip file: starts with 0x{raw[:4].hex()} "
                        f"(IDX files start with two zero bytes, gzip files with 0x1f8b)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x} "
                        f"(known: {', '.join(f'0x{c:02x}' for c in _DTYPES)})")
    if not 1 <= ndim <= MAX_DIMS:
        raise DataError(f"{path}: corrupt IDX header: {ndim} dimensions (expected 1..{MAX_DIMS})")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need {offset} header bytes, "
                        f"file has {len(raw)}")
    return _DTYPES[code], struct.unpack(f">{ndim}I", raw[4:offset]), offset
