"""FP8 e4m3fn in numpy, and DeepSeek-V3's 128x128 block scaling.

e4m3fn: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN;
largest finite 448 (0.1111.110 = 1.75 * 2^8); subnormals 0.0000.mmm = m/8 * 2^-6.
`encode` rounds to nearest with ties to even and saturates to +-448 (NaN -> 0x7F).

Block scaling (DeepSeek-V3 README_WEIGHTS.md): weight W [out, in] is stored as fp8 codes plus
`weight_scale_inv` float32 [ceil(out/128), ceil(in/128)]; real value = fp8 * scale_inv of its block.
"""

import numpy as np

MAX_FINITE = 448.0
BLOCK = 128


def _decode_table():
    codes = np.arange(256, dtype=np.int64)
    sign = (codes >> 7) & 1
    exp = (codes >> 3) & 0xF
    man = codes & 7
    sub = man / 8.0 * 2.0 ** -6
    norm = (1.0 + man / 8.0) * np.power(2.0, exp - 7.0)
    val = np.where(exp == 0, sub, norm)
    val = np.where(sign == 1, -val, val)
    val[(exp == 15) & (man == 7)] = np.nan
    return val


DECODE = _decode_table()            # float64[256]
_POSITIVE = DECODE[:127].copy()     # codes 0x00..0x7E, strictly increasing from 0 to 448


def decode(codes):
    """uint8 codes -> float64 values (exact)."""
    return DECODE[np.asarray(codes, dtype=np.uint8)]


def encode(x):
    """float values -> uint8 e4m3fn codes (round to nearest even, saturate to +-448, NaN -> 0x7F)."""
    x = np.asarray(x, dtype=np.float64)
    neg = np.signbit(x)
    nan = np.isnan(x)
    a = np.minimum(np.abs(np.where(nan, 0.0, x)), MAX_FINITE)
    hi = np.searchsorted(_POSITIVE, a, side="left")          # first code with value >= a
    hi = np.minimum(hi, 126)
    lo = np.maximum(hi - 1, 0)
    d_lo = a - _POSITIVE[lo]
    d_hi = _POSITIVE[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo)
    code = np.where(d_hi == 0, hi, code)
    code = code.astype(np.uint8) | (neg.astype(np.uint8) << 7)
    code = np.where(nan, np.uint8(0x7F), code)
    return code.astype(np.uint8)


def quantize_blockwise(w, block=BLOCK):
    """float32 weight [out, in] -> (codes uint8 [out, in], scale_inv float32 [ceil(out/b), ceil(in/b)]).
    Per block: scale = amax / 448 (rounded to float32; 1.0 for an all-zero block); codes = encode(w / scale)."""
    w = np.asarray(w, dtype=np.float32)
    out_f, in_f = w.shape
    nbo, nbi = -(-out_f // block), -(-in_f // block)
    codes = np.zeros((out_f, in_f), dtype=np.uint8)
    scale = np.zeros((nbo, nbi), dtype=np.float32)
    for bo in range(nbo):
        for bi in range(nbi):
            blk = w[bo * block:(bo + 1) * block, bi * block:(bi + 1) * block].astype(np.float64)
            amax = float(np.max(np.abs(blk)))
            s = np.float32(amax / MAX_FINITE) if amax > 0 else np.float32(1.0)
            scale[bo, bi] = s
            codes[bo * block:(bo + 1) * block, bi * block:(bi + 1) * block] = encode(blk / np.float64(s))
    return codes, scale


def dequantize_blockwise(codes, scale_inv, block=BLOCK):
    """(codes [out, in], scale_inv [ceil(out/b), ceil(in/b)]) -> float64 [out, in]."""
    vals = decode(codes)
    out_f, in_f = vals.shape
    s = np.asarray(scale_inv, dtype=np.float64)
    if s.shape != (-(-out_f // block), -(-in_f // block)):
        raise ValueError(f"scale_inv shape {list(s.shape)} does not match weight {[out_f, in_f]} with block {block}")
    full = np.repeat(np.repeat(s, block, axis=0), block, axis=1)[:out_f, :in_f]
    return vals * full


def self_test():
    """Checks the codec against the format's definition; raises AssertionError on failure."""
    assert DECODE[0x7E] == 448.0 and DECODE[0xFE] == -448.0
    assert np.isnan(DECODE[0x7F]) and np.isnan(DECODE[0xFF])
    assert DECODE[0x01] == 2.0 ** -9 and DECODE[0x08] == 2.0 ** -6 and DECODE[0x38] == 1.0
    assert np.all(np.diff(_POSITIVE) > 0)
    # every finite code round-trips (except -0 which encodes to 0x80 as well)
    for c in range(256):
        if np.isnan(DECODE[c]):
            continue
        assert int(encode(DECODE[c])) == c, c
    # ties go to the even code: halfway between 1.0 (0x38) and 1.125 (0x39) -> 0x38; 1.125..1.25 -> 0x3A
    assert int(encode(1.0625)) == 0x38 and int(encode(1.1875)) == 0x3A
    # halfway between the two smallest subnormals
    assert int(encode(2.0 ** -10)) == 0x00 and int(encode(3 * 2.0 ** -10)) == 0x02
    # saturation and NaN
    assert int(encode(1e9)) == 0x7E and int(encode(-1e9)) == 0xFE and int(encode(464.0)) == 0x7E
    assert int(encode(np.nan)) == 0x7F
    # random values: result is a nearest representable value
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000) * np.exp(rng.uniform(-8, 6, 20000))
    y = decode(encode(x))
    xs = np.clip(x, -448, 448)
    err = np.abs(y - xs)
    cand = np.abs(_POSITIVE[None, :] - np.abs(xs)[:, None]).min(axis=1)
    assert np.all(err <= cand + 0.0), "encode is not round-to-nearest"


if __name__ == "__main__":
    self_test()
    print("fp8 self-test ok")
