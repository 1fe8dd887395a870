"""Minimal safetensors reader/writer (numpy only; no `safetensors` package needed).

File layout (https://github.com/huggingface/safetensors):
  8 bytes   little-endian u64 N = length of the JSON header
  N bytes   JSON: {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
                   "__metadata__": {str: str}}   (metadata optional)
  rest      raw little-endian tensor bytes; offsets are relative to the end of the header.

Storage representation used here (what `read` returns and `write` takes):
  F64/F32/F16/I64/I32/I16/I8/U8 -> numpy array of that type
  BF16                          -> numpy uint16 (the upper 16 bits of the float32 pattern)
  F8_E4M3                       -> numpy uint8  (raw e4m3fn codes, see fp8.py)
`to_float64` turns any of them into float64 values (FP8 without its block scale).

Not supported: big-endian hosts, other FP8 flavours, BOOL.
"""

import json
import struct

import numpy as np

# dtype string -> numpy storage dtype (little-endian)
STORAGE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F8_E4M3": np.dtype("u1"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
}


def f32_to_bf16_bits(x):
    """float -> bf16 bit pattern (uint16), round to nearest, ties to even. NaN stays NaN."""
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    lsb = (u >> 16) & 1
    rounded = ((u + 0x7FFF + lsb) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        rounded = np.where(nan, ((u >> 16) | 0x40).astype(np.uint16), rounded)
    return rounded.reshape(f.shape)


def bf16_bits_to_f32(bits):
    """bf16 bit pattern (uint16) -> float32 (exact)."""
    b = np.ascontiguousarray(np.asarray(bits, dtype=np.uint16))
    return (b.astype(np.uint32) << 16).view(np.float32).reshape(b.shape)


def round_to_bf16(x):
    """float -> the float32 value of its bf16 rounding."""
    return bf16_bits_to_f32(f32_to_bf16_bits(x))


def encode(dtype, values):
    """float/int values -> storage array for `dtype` (F8_E4M3 is not handled here: see fp8.py)."""
    if dtype == "BF16":
        return f32_to_bf16_bits(values)
    if dtype == "F8_E4M3":
        raise ValueError("encode F8_E4M3 with fp8.encode (it needs a block scale)")
    return np.ascontiguousarray(np.asarray(values).astype(STORAGE[dtype]))


def to_float64(dtype, array):
    """storage array -> float64 values (F8_E4M3: raw code values, without block scale)."""
    if dtype == "BF16":
        return bf16_bits_to_f32(array).astype(np.float64)
    if dtype == "F8_E4M3":
        try:
            from . import fp8
        except ImportError:
            import fp8
        return fp8.decode(array)
    return np.asarray(array).astype(np.float64)


def write(path, tensors, metadata=None):
    """Write {name: (dtype_string, storage_array)} to `path`. Tensors are stored in name order;
    the header is padded with spaces to a multiple of 8 bytes (as the reference library does)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        if dtype not in STORAGE:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        arr = np.ascontiguousarray(arr)
        if arr.dtype != STORAGE[dtype]:
            raise ValueError(f"{path}: tensor {name}: dtype {dtype} needs storage {STORAGE[dtype]}, got {arr.dtype}")
        data = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata is not None:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
    return offset  # bytes of tensor data


def read(path):
    """Read a safetensors file -> ({name: (dtype_string, storage_array)}, metadata dict or None).
    Checks that every tensor's byte range matches its shape and lies inside the file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: file too short for a safetensors header")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past end of file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    base = 8 + n
    metadata = header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        dtype = info["dtype"]
        if dtype not in STORAGE:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = info["data_offsets"]
        st = STORAGE[dtype]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * st.itemsize:
            raise ValueError(f"{path}: tensor {name}: shape {list(shape)} {dtype} needs "
                             f"{count * st.itemsize} bytes, offsets give {end - begin}")
        if base + end > len(blob):
            raise ValueError(f"{path}: tensor {name}: data runs past end of file")
        arr = np.frombuffer(blob, dtype=st, count=count, offset=base + begin).reshape(shape).copy()
        out[name] = (dtype, arr)
    return out, metadata
