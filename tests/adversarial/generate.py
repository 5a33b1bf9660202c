#!/usr/bin/env python3
"""Regenerates the adversarial fixtures in this folder (see README.md). Needs python3 and the
`zstd` command line tool; the output is deterministic."""
import bz2
import lzma
import os
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def offt(value):
    """bsdiff's sign-magnitude 64-bit integer."""
    if value < 0:
        return struct.pack("<Q", (-value) | (1 << 63))
    return struct.pack("<Q", value)


def bsdiff(triples, diff, extra, new_size):
    ctrl = b"".join(offt(a) + offt(c) + offt(s) for a, c, s in triples)
    ctrl_bz, diff_bz, extra_bz = bz2.compress(ctrl), bz2.compress(diff), bz2.compress(extra)
    return (b"BSDIFF40" + offt(len(ctrl_bz)) + offt(len(diff_bz)) + offt(new_size)
            + ctrl_bz + diff_bz + extra_bz)


def xz(data):
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE,
                         filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}])


def varints(values):
    out = bytearray()
    for v in values:
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def zigzag(v):
    return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1


def bsdiff_lzma(triples, diff, extra, target):
    streams = [xz(varints(a for a, _, _ in triples)), xz(varints(c for _, c, _ in triples)),
               xz(varints(zigzag(s) for _, _, s in triples)), xz(diff), xz(extra)]
    return (b"APBSDL01" + struct.pack("<Q", target)
            + b"".join(struct.pack("<Q", len(s)) for s in streams) + b"".join(streams))


# The base every delta fixture is applied to (the tests use the same bytes).
BASE = b"hello world, this is the base file of the adversarial delta fixtures\n"
# A valid patch: "hello" + "XYZ" -> "helloXYZ".
VALID_TRIPLES = [(5, 3, 0)]
VALID_DIFF = bytes(5)
VALID_EXTRA = b"XYZ"

# 1. qbsdiff 1.4.4 computes `32 + csize + dsize` on u64: with both lengths read as
#    -(2^63 - 1) (all bits set) the sum wraps to 34, passes its `> patch.len()` check, and
#    `split_at(csize)` panics. 136 bytes, like the patch seen in the wild.
write("bsdiff-wrapping-lengths.bsdiff",
      b"BSDIFF40" + b"\xff" * 16 + offt(100) + bytes(104))
# 2. A valid header and empty streams declaring a 256 MiB output: qbsdiff's path reserved
#    the whole output before reading a byte.
write("bsdiff-huge-output.bsdiff", bsdiff([], b"", b"", 256 << 20))
# 3. A negative add length in a control triple.
write("bsdiff-negative-add.bsdiff", bsdiff([(-5, 3, 0)], b"", b"XYZ", 8))
# 4. A triple reading past the end of the base.
write("bsdiff-reads-past-base.bsdiff", bsdiff([(len(BASE) + 1, 0, 0)], bytes(len(BASE) + 1), b"", len(BASE) + 1))
# 5. The valid patch, and cut in half.
valid = bsdiff(VALID_TRIPLES, VALID_DIFF, VALID_EXTRA, 8)
write("bsdiff-valid.bsdiff", valid)
write("bsdiff-truncated.bsdiff", valid[: len(valid) // 2])
# 6. Two million triples that produce nothing (each used to cost a seek), then the output.
EMPTY = 2_000_000
empty = [(0, 0, 1), (0, 0, -1)] * (EMPTY // 2)
write("bsdiff-lzma-empty-triples.bsdl", bsdiff_lzma(empty + VALID_TRIPLES, VALID_DIFF, VALID_EXTRA, 8))
write("bsdiff-empty-triples.bsdiff", bsdiff(empty + VALID_TRIPLES, VALID_DIFF, VALID_EXTRA, 8))
# 7. bsdiff-lzma valid, truncated, and declaring 2^64 - 1 bytes of output.
valid_lzma = bsdiff_lzma(VALID_TRIPLES, VALID_DIFF, VALID_EXTRA, 8)
write("bsdiff-lzma-valid.bsdl", valid_lzma)
write("bsdiff-lzma-truncated.bsdl", valid_lzma[: len(valid_lzma) - 7])
write("bsdiff-lzma-copy-overflow.bsdl",
      bsdiff_lzma([(0, (1 << 64) - 1, 0), (0, 2, 0)], b"", b"", (1 << 64) - 1))
# 8. zstd frames declaring a large window and no content size, one raw block "x".
def zstd_frame(window_log, payload=b"x"):
    block = struct.pack("<I", 1 | (len(payload) << 3))[:3]  # last block, raw
    return b"\x28\xb5\x2f\xfd" + b"\x00" + bytes([(window_log - 10) << 3]) + block + payload
write("zstd-patch-2gib-window.zst-patch", zstd_frame(31))
write("blob-32mib-window.zst", zstd_frame(25))
# 9. A zstd bomb: 64 MiB of zeros in a few kilobytes, listed as 1,000 bytes.
write("blob-bomb.zst", subprocess.run(["zstd", "-19", "-c", "--no-check"], input=bytes(64 << 20),
                                      capture_output=True, check=True).stdout)
# 10. Garbage: the same 256 pseudo-random bytes for every decoder.
state, garbage = 1, bytearray()
for _ in range(256):
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    garbage.append(state >> 56)
write("garbage.bin", bytes(garbage))
