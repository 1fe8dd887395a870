#!/usr/bin/env python3
"""Writes tests/data/gguf/tiny.gguf with llama.cpp's own gguf-py (GGUFWriter), so that seek's GGUF reader
is tested against a file it did not write, and seek's writer against gguf-py's bytes (tests/unit/test_gguf.cpp).

    /usr/bin/python3 scripts/peer/make_gguf_fixture.py --gguf-py /work/peers/llama.cpp/gguf-py OUT.gguf

Every metadata value type, arrays of integers, floats, bools and strings, and four tensors: F32 [3],
F16 [5], F32 [2, 3] (row-major; GGUF stores extents [3, 2]) and Q8_0 [2, 32] (raw blocks). The values
are fixed so the C++ test can check them; keep the two in step.
"""
import argparse
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf-py", required=True, help="path to llama.cpp's gguf-py directory")
    ap.add_argument("out", help="the .gguf file to write")
    args = ap.parse_args()
    sys.path.insert(0, args.gguf_py)
    import numpy as np
    from gguf import GGUFValueType as T, GGUFWriter, GGMLQuantizationType as Q

    w = GGUFWriter(args.out, arch="seek-test")  # adds general.architecture first
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_uint64("test.u64", 1 << 40)
    w.add_int64("test.i64", -(1 << 50))
    w.add_float64("test.f64", -2.5e-300)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "héllo, gguf")
    w.add_array("test.strs", ["a", "", "ünïcode", "<|end▁of▁sentence|>"])
    w.add_array("test.i32s", [1, -2, 3])  # gguf-py types Python ints as INT32
    w.add_array("test.f32s", [0.5, -1.25])  # and Python floats as FLOAT32
    w.add_array("test.bools", [True, False, True])
    w.add_key_value("test.u8s", [0, 255, 7], T.ARRAY, sub_type=T.UINT8)
    w.add_key_value("test.i64s", [-(1 << 62), 5], T.ARRAY, sub_type=T.INT64)
    w.add_key_value("test.f64s", [1e300, -0.0], T.ARRAY, sub_type=T.FLOAT64)

    w.add_tensor("v.f32", np.array([1.0, -2.0, 3.5], dtype=np.float32))
    w.add_tensor("v.f16", np.array([0.5, 1.0, -1.5, 2.0, 65504.0], dtype=np.float16))
    w.add_tensor("m.f32", np.arange(6, dtype=np.float32).reshape(2, 3) * 0.25)
    q8 = (np.arange(2 * 34, dtype=np.uint32) % 251).astype(np.uint8).reshape(2, 34)
    w.add_tensor("m.q8_0", q8, raw_dtype=Q.Q8_0)  # bytes [2, 34] -> values [2, 32]

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
