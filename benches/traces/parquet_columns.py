#!/usr/bin/env python3
"""Where the bytes of Parquet files go: compressed / uncompressed bytes of every column,
summed over the files' row groups, read from their footers (a small Thrift compact
protocol decoder, so no pyarrow is needed).

    python benches/traces/parquet_columns.py DATA_DIR/files/default/traces/*/*.parquet
"""

import struct
import sys


class Compact:
    def __init__(self, buf):
        self.b, self.i = buf, 0

    def byte(self):
        v = self.b[self.i]
        self.i += 1
        return v

    def varint(self):
        shift = out = 0
        while True:
            b = self.byte()
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out

    def zigzag(self):
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, t):
        if t in (1, 2):  # bool true / false
            return t == 1
        if t == 3:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if t in (4, 5, 6):
            return self.zigzag()
        if t == 7:
            v = struct.unpack("<d", self.b[self.i:self.i + 8])[0]
            self.i += 8
            return v
        if t == 8:
            n = self.varint()
            v = bytes(self.b[self.i:self.i + n])
            self.i += n
            return v
        if t in (9, 10):
            h = self.byte()
            n, et = h >> 4, h & 0x0F
            if n == 15:
                n = self.varint()
            return [self.value(et) if et not in (1, 2) else self.byte() == 1 for _ in range(n)]
        if t == 11:
            h = self.byte()
            n = h and self.varint() if False else None  # maps do not occur in the footer
            raise ValueError("map in footer")
        if t == 12:
            return self.struct()
        raise ValueError(f"thrift type {t}")

    def struct(self):
        out, fid = {}, 0
        while True:
            h = self.byte()
            if h == 0:
                return out
            t, delta = h & 0x0F, h >> 4
            fid = fid + delta if delta else self.zigzag()
            out[fid] = self.value(t)


def footer(path):
    with open(path, "rb") as f:
        f.seek(-8, 2)
        n, magic = struct.unpack("<i4s", f.read(8))
        assert magic == b"PAR1", path
        f.seek(-8 - n, 2)
        return Compact(f.read(n)).struct()


def main(paths):
    sizes, rows, total = {}, 0, 0
    import os
    for p in paths:
        total += os.path.getsize(p)
        meta = footer(p)
        rows += meta[3]
        for rg in meta[4]:
            for cc in rg[1]:
                md = cc[3]
                name = ".".join(x.decode() for x in md[3])
                c, u = sizes.get(name, (0, 0))
                sizes[name] = (c + md[7], u + md[6])
    r = max(rows, 1)
    print(f"{rows} rows in {len(paths)} files, {total} bytes, {total / r:.2f} B/row")
    print(f"{'column':<44} {'compressed':>12} {'B/row':>8} {'uncompr. B/row':>15}")
    csum = 0
    for name, (c, u) in sizes.items():
        csum += c
        print(f"{name:<44} {c:>12} {c / r:>8.2f} {u / r:>15.2f}")
    print(f"{'(column chunks)':<44} {csum:>12} {csum / r:>8.2f}")
    print(f"{'(footer, indexes, blooms)':<44} {total - csum:>12} {(total - csum) / r:>8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
