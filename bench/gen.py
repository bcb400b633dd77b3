#!/usr/bin/env python3
"""Generate the synthetic benchmark packages (Python 3.11, standard library only).

    gen.py mixed DEST BYTES [SEED]     incompressible files of many sizes plus log-like text
    gen.py small-files DEST COUNT      COUNT small files (about 1 KB each) in folders of 1,000
    gen.py big-file DEST BYTES         one file of random A, C, G, T (zstd: about a third)

The random bytes come from os.urandom, so no two runs give the same bytes, but
the file layout (names and sizes) follows SEED. Text is generated line by line,
never repeated, so that neither parcel's chunk deduplication nor zstd's window
finds copies that a real package would not have.
"""

import math
import os
import random
import sys

MIB = 1024 * 1024

HOSTS = [f"node{n:02d}.site.example" for n in range(24)]
SERVICES = ["sshd", "kernel", "cron", "nginx", "postgres", "parcel", "systemd", "dhcpd", "ntpd"]
MESSAGES = [
    "accepted connection from",
    "session opened for user",
    "request completed",
    "checkpoint starting: time",
    "temperature above threshold on",
    "link is up at 1000 Mbps on",
    "cache miss for key",
    "retrying upload of",
    "disk usage at",
    "configuration reloaded by",
]


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """A size between low and high, spread evenly over orders of magnitude."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def write_random(path: str, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def text_lines(rng: random.Random, start: int):
    """Endless log-like lines; no two lines are equal (a counter and random ids)."""
    n = start
    bits = rng.getrandbits
    while True:
        n += 1
        yield (
            f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{bits(6) % 60:02d}."
            f"{bits(10) % 1000:03d}Z {HOSTS[bits(5) % 24]} {SERVICES[bits(4) % 9]}[{1000 + bits(14)}]: "
            f"{MESSAGES[bits(4) % 10]} {bits(32):08x} seq={n} dur={bits(12)}ms\n"
        )


def write_text(path: str, size: int, rng: random.Random, start: int) -> None:
    lines = text_lines(rng, start)
    with open(path, "w", encoding="ascii") as f:
        left = size
        while left > 0:
            block = "".join(next(lines) for _ in range(2000))[:left]
            f.write(block)
            left -= len(block)


def mixed(dest: str, total: int, seed: int) -> None:
    """60% incompressible files (1 KiB to total/8, one of total/10), 40% text."""
    rng = random.Random(seed)
    random_budget = total * 6 // 10
    text_budget = total - random_budget
    largest = max(64 * 1024, total // 8)
    plan = [("bin", total // 10)]
    used = total // 10
    while used < random_budget:
        size = min(log_uniform(rng, 1024, largest), random_budget - used)
        plan.append(("bin", size))
        used += size
    used = 0
    while used < text_budget:
        size = min(log_uniform(rng, 1024, 8 * MIB), text_budget - used)
        plan.append(("txt", size))
        used += size
    rng.shuffle(plan)
    for i, (kind, size) in enumerate(plan):
        folder = os.path.join(dest, f"d{i % 16:02d}", f"e{i % 7}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"f{i:05d}.{kind}")
        if kind == "bin":
            write_random(path, size)
        else:
            write_text(path, size, rng, i * 10_000_000)


def small_files(dest: str, count: int, seed: int) -> None:
    """count files of 1 to 2,000 bytes, half text-like, half random, 1,000 per folder."""
    rng = random.Random(seed)
    for i in range(count):
        if i % 1000 == 0:
            folder = os.path.join(dest, f"g{i // 1000:04d}")
            os.makedirs(folder, exist_ok=True)
        size = 1 + rng.getrandbits(11) % 2000
        data = os.urandom(size) if i % 2 else os.urandom((size + 1) // 2).hex()[:size].encode()
        with open(os.path.join(folder, f"s{i:07d}"), "wb") as f:
            f.write(data)


DNA = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)


def big_file(dest: str, total: int) -> None:
    """One sequence-like file: random bases, 2 bits of entropy a byte."""
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "big.seq"), "wb") as f:
        left = total
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n).translate(DNA))
            left -= n


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    kind, dest, amount = argv[1], argv[2], int(argv[3])
    seed = int(argv[4]) if len(argv) > 4 else 1
    if kind == "mixed":
        mixed(dest, amount, seed)
    elif kind == "small-files":
        small_files(dest, amount, seed)
    elif kind == "big-file":
        big_file(dest, amount)
    else:
        print(f"gen.py: unknown kind {kind!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
