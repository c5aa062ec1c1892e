"""Run lengths of pycocotools' compressed RLE strings, decoded without writing a mask.

pycocotools trusts its input: ``decode`` writes every run into a buffer of the declared image size without
bounds checks, so a string whose runs add up to more than height x width overflows the heap. synth.coco
therefore checks every string's runs first. The strings of a whole file are decoded in one vectorised pass:
one by one, numpy's per-call overhead costs more than the work (about 0.1 ms per string).

The format (pycocotools' rleToString): each run is a signed number in 5-bit chunks, least significant first,
stored as ``chr(chunk + 48)``; bit 0x20 of a chunk says "more chunks follow", bit 0x10 of the last chunk is
the sign. From the third run on, each number is the difference to the run two places back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_CHUNKS = 6  # 30 bits: more than any run of an image within synth.coco's size limits needs


def decode_runs(strings: Sequence[str], max_run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(runs, owner, valid): every run of every string in order, the index of the string each run belongs
    to, and per string whether it is well formed (only characters '0'..'o', no truncated or overlong
    number, every run in 0..max_run). The runs of a string that is not well formed mean nothing."""
    n = len(strings)
    valid = np.fromiter((s.isascii() for s in strings), dtype=bool, count=n)
    if not valid.all():
        strings = [s if ok else "" for s, ok in zip(strings, valid, strict=True)]
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    raw = np.frombuffer("".join(strings).encode("ascii"), np.uint8)
    owner = np.repeat(np.arange(n), lens)
    valid[owner[(raw < 48) | (raw > 111)]] = False
    c = (raw - 48) & 0x3F  # keeps refused characters in range for the arithmetic below
    string_end = np.zeros(c.size, dtype=bool)
    string_end[np.cumsum(lens)[lens > 0] - 1] = True
    number_end = (c & 0x20) == 0
    valid[owner[string_end & ~number_end]] = False  # the last number is cut off
    ends = np.flatnonzero(number_end | string_end)  # a number never runs on into the next string
    lengths = np.diff(ends, prepend=-1)
    run_owner = owner[ends]
    valid[run_owner[lengths > MAX_CHUNKS]] = False
    values = np.zeros(ends.size, dtype=np.int64)
    for j in range(MAX_CHUNKS):  # chunk j of a number: j places after its first character
        has = lengths > j
        values[has] |= (c[ends[has] - lengths[has] + 1 + j] & 0x1F).astype(np.int64) << (5 * j)
    sign = np.int64(1) << (5 * np.minimum(lengths, MAX_CHUNKS))
    values = np.where(c[ends] & 0x10, values - sign, values)  # sign bit of the last chunk
    runs = _undo_deltas(values, run_owner, n)
    valid[run_owner[(runs < 0) | (runs > max_run)]] = False
    return runs, run_owner, valid


def _undo_deltas(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Runs from stored numbers: run k (k >= 3) = number k + run k-2, i.e. cumulative sums over the odd
    positions from 1 and the even positions from 2, restarted at every string."""
    k = np.arange(values.size) - np.searchsorted(owner, np.arange(n))[owner]
    runs = values.copy()
    for parity, first in ((1, 1), (0, 2)):
        idx = np.flatnonzero((k % 2 == parity) & (k >= first))
        if not idx.size:
            continue
        total = np.cumsum(values[idx])
        o = owner[idx]
        seg_start = np.flatnonzero(np.concatenate(([True], o[1:] != o[:-1])))
        before = total[seg_start] - values[idx][seg_start]
        runs[idx] = total - np.repeat(before, np.diff(np.append(seg_start, idx.size)))
    return runs


def compressed_totals(strings: Sequence[str], max_run: int) -> np.ndarray:
    """Per string: the pixels its runs cover, or -1 when it is not a well-formed compressed RLE string."""
    runs, owner, valid = decode_runs(strings, max_run)
    totals = np.zeros(len(strings), dtype=np.int64)
    has_runs = np.flatnonzero(np.bincount(owner, minlength=len(strings)))
    if has_runs.size:
        totals[has_runs] = np.add.reduceat(runs, np.searchsorted(owner, has_runs))
    return np.where(valid, totals, -1)
