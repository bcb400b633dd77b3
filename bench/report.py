#!/usr/bin/env python3
"""Turn the figures run.sh recorded into the benchmark report (Markdown).

    report.py DIR     DIR holds times.tsv, sizes.tsv, packages.tsv and meta.env

The targets of issue 5 live here, not in tests: each figure is printed with
its target and PASS or FAIL. Times are medians over the repetitions; a ratio
is the median of the per-repetition ratios (parcel and the peer ran back to
back in each repetition). Peak memory is the largest over the repetitions.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

MIB = 1024 * 1024
RSS_LIMIT_MIB = 256
SCALING_LIMIT = 1.20

# (parcel op, peer op or ops summed, label, target ratio or None for information)
TIME_ROWS = [
    ("create-noverify", ("create",), "create --no-verify", 0.75),
    ("create", ("create",), "create (default: reads back and verifies)", 0.75),
    ("create-noverify", ("create", "create-sync"), "create --no-verify vs peer + `sync -f OUT`", None),
    ("verify", ("verify",), "verify (default: decompresses and checks all content)", 0.50),
    ("verify-media", ("verify",), "verify --media (volume hashes only, as the peer)", 0.50),
    ("import", ("import",), "import (both durable: peer ends with `sync -f DEST`)", 1.00),
]
PARCEL_OPS = [
    ("create-noverify", "create --no-verify"),
    ("create", "create"),
    ("verify", "verify"),
    ("verify-media", "verify --media"),
    ("import", "import"),
]


def load(directory: Path):
    meta = {}
    for line in (directory / "meta.env").read_text().splitlines():
        key, _, value = line.partition("=")
        meta[key] = value
    times = defaultdict(dict)  # (pkg, tool, op) -> rep -> row
    for line in (directory / "times.tsv").read_text().splitlines():
        pkg, tool, op, rep, wall, user, sys_, rss, load_ = line.split("\t")
        times[(pkg, tool, op)][int(rep)] = {
            "wall": float(wall),
            "cpu": float(user) + float(sys_),
            "rss": int(rss) * 1024,
            "load": float(load_),
        }
    sizes = defaultdict(dict)  # (pkg, tool) -> rep -> bytes
    for line in (directory / "sizes.tsv").read_text().splitlines():
        pkg, tool, rep, size = line.split("\t")
        sizes[(pkg, tool)][int(rep)] = int(float(size))
    packages = []
    for line in (directory / "packages.tsv").read_text().splitlines():
        name, role, files, size, spec = line.split("\t")
        packages.append({"name": name, "role": role, "files": int(files), "bytes": int(size), "spec": spec})
    return meta, times, sizes, packages


def median(values):
    return statistics.median(values) if values else float("nan")


def verdict(value, target):
    return "PASS" if value <= target else "FAIL"


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


class Report:
    def __init__(self, meta, times, sizes, packages):
        self.meta, self.times, self.sizes, self.packages = meta, times, sizes, packages
        self.lines = []
        self.failures = []
        self.passes = 0

    def out(self, line=""):
        self.lines.append(line)

    def judge(self, what, value, target, unit=""):
        result = verdict(value, target)
        if result == "PASS":
            self.passes += 1
        else:
            over = (value / target - 1) * 100
            self.failures.append(f"{what}: {value:.2f}{unit} against ≤ {target:.2f}{unit} ({over:.0f}% over)")
        return result

    def runs(self, pkg, tool, op):
        return self.times.get((pkg, tool, op), {})

    def paired_ratios(self, pkg, parcel_op, peer_ops):
        mine = self.runs(pkg, "parcel", parcel_op)
        ratios = []
        for rep, run in mine.items():
            peer = [self.runs(pkg, "peer", op).get(rep) for op in peer_ops]
            if all(peer):
                ratios.append(run["wall"] / sum(p["wall"] for p in peer))
        return ratios

    def peer_walls(self, pkg, peer_ops):
        per_rep = defaultdict(float)
        for op in peer_ops:
            for rep, run in self.runs(pkg, "peer", op).items():
                per_rep[rep] += run["wall"]
        return list(per_rep.values())

    def header(self):
        m = self.meta
        titles = {
            "latest": "parcel against the shell pipeline",
            "quick": "parcel against the shell pipeline (--quick: small packages, figures not meaningful)",
            "scale": "parcel at scale",
            "scale-quick": "parcel at scale (--scale --quick: small stand-ins, figures not meaningful)",
        }
        self.out(f"# Benchmark: {titles.get(m['mode'], m['mode'])}")
        self.out()
        self.out(f"- Command: `{m['command']}` ({m['date']}, {int(m['elapsed']) // 60} min {int(m['elapsed']) % 60} s)")
        self.out(f"- parcel: {m['parcel']}, commit {m['commit']}, release build")
        self.out(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}, {m['filesystem']}")
        self.out(f"- Load average (1, 5, 15 min): {m['load_start']} at start, {m['load_end']} at the end (shared machine)")
        self.out(f"- Peer: `tar | zstd -{m['level']} -T0 | split -b 4GiB`, `sha256sum`, signature by {m['signer']}; {m['zstd']}")
        self.out(f"- parcel: `--volume-size {m['volume']} --level {m['level']}`; each import into a fresh copy of the destination home")
        if m["mode"] in ("latest", "quick"):
            reps = "1 repetition" if m["reps"] == "1" else f"{m['reps']} repetitions"
            self.out(f"- {reps} (the larger mixed package: 1); in each, parcel and the peer run back to back, in an order that rotates so that each command goes first equally often")
        self.out(
            "- Warm page cache (dropping it is not possible on a shared machine; both outputs are read once, untimed,"
            " before the verify group, since parcel's create reads its volumes back past the cache); an untimed `sync` before every timed"
            " command; the measuring phase holds `flock /tmp/parcel-heavy.lock` (jobs that take it do not overlap;"
            " builds and tests that do not take it may)"
        )
        self.out("- Wall and CPU times from GNU time; peak memory is the largest resident set (VmHWM) of the parcel process")
        self.out()
        self.out("## Packages")
        self.out()
        self.out("| package | files | size | what |")
        self.out("|---|--:|--:|---|")
        what = {
            "tree": "copy of the Rust toolchain that builds parcel (installed software tree)",
            "mixed": "incompressible random files of 1 KiB and up, 40% log-like text",
            "mixed-large": "as above, four times larger (memory scaling)",
        }
        for p in self.packages:
            desc = what.get(p["role"], p["spec"])
            if p["spec"].startswith("small-files"):
                desc = "small files of 1 to 2,000 bytes, 1,000 per folder, half text-like"
            elif p["spec"].startswith("big-file"):
                desc = "one file of random A, C, G, T, like a genome sequence (zstd -3 leaves about a third)"
            self.out(f"| {p['name']} | {p['files']:,} | {human(p['bytes'])} | {desc} |")
        self.out()

    def timing(self):
        timed = [p["name"] for p in self.packages if p["role"] in ("tree", "mixed")]
        large = [p["name"] for p in self.packages if p["role"] == "mixed-large"]
        self.out("## Time: parcel / peer (median wall time)")
        self.out()
        self.out("| package | command | parcel s | peer s | parcel / peer | target | result |")
        self.out("|---|---|--:|--:|--:|--:|---|")
        for pkg in timed + large:
            once = pkg in large
            for parcel_op, peer_ops, label, target in TIME_ROWS:
                ratios = self.paired_ratios(pkg, parcel_op, peer_ops)
                if not ratios:
                    continue
                mine = median([r["wall"] for r in self.runs(pkg, "parcel", parcel_op).values()])
                peer = median(self.peer_walls(pkg, peer_ops))
                ratio = median(ratios)
                if target is None or once:
                    shown = f"≤ {target:.2f}" if target is not None else "—"
                    result = "info (1 run)" if once else "info"
                else:
                    shown = f"≤ {target:.2f}"
                    result = self.judge(f"{pkg} {label}: parcel / peer", ratio, target)
                self.out(f"| {pkg} | {label} | {mine:.2f} | {peer:.2f} | {ratio:.3f} | {shown} | {result} |")
        self.out()

    def size(self):
        self.out("## Output size: parcel / peer")
        self.out()
        self.out("| package | parcel | peer | parcel / peer | target | result |")
        self.out("|---|--:|--:|--:|--:|---|")
        for p in self.packages:
            pkg = p["name"]
            mine, peer = self.sizes.get((pkg, "parcel"), {}), self.sizes.get((pkg, "peer"), {})
            reps = sorted(set(mine) & set(peer))
            if not reps:
                continue
            ratio = median([mine[r] / peer[r] for r in reps])
            judged = p["role"] in ("tree", "mixed")
            result = self.judge(f"{pkg} output size: parcel / peer", ratio, 1.02) if judged else "info"
            self.out(
                f"| {pkg} | {human(median([mine[r] for r in reps]))} | {human(median([peer[r] for r in reps]))}"
                f" | {ratio:.4f} | ≤ 1.02 | {result} |"
            )
        self.out()

    def memory(self):
        self.out(f"## Peak resident memory of parcel (largest over the runs; target ≤ {RSS_LIMIT_MIB} MiB)")
        self.out()
        ops = [op for op, _ in PARCEL_OPS if any(k[1] == "parcel" and k[2] == op for k in self.times)]
        self.out("| package | " + " | ".join(dict(PARCEL_OPS)[op] + " MiB" for op in ops) + " | result |")
        self.out("|---|" + "--:|" * len(ops) + "---|")
        for p in self.packages:
            pkg = p["name"]
            cells, results = [], []
            for op in ops:
                runs = self.runs(pkg, "parcel", op)
                if not runs:
                    cells.append("—")
                    continue
                rss = max(r["rss"] for r in runs.values()) / MIB
                cells.append(f"{rss:.1f}")
                results.append(self.judge(f"{pkg} parcel {op} peak memory", rss, RSS_LIMIT_MIB, " MiB"))
            result = "FAIL" if "FAIL" in results else "PASS"
            self.out(f"| {pkg} | " + " | ".join(cells) + f" | {result} |")
        self.out()

    def scaling(self):
        small = [p for p in self.packages if p["role"] == "mixed"]
        large = [p for p in self.packages if p["role"] == "mixed-large"]
        if not small or not large:
            return
        s, l = small[0]["name"], large[0]["name"]
        self.out(f"## Memory scaling: {l} against {s} (target: {l} ≤ {SCALING_LIMIT:.2f} × {s})")
        self.out()
        self.out(f"| command | {s} MiB | {l} MiB | ratio | target | result |")
        self.out("|---|--:|--:|--:|--:|---|")
        for op, label in PARCEL_OPS:
            a, b = self.runs(s, "parcel", op), self.runs(l, "parcel", op)
            if not a or not b:
                continue
            ra = max(r["rss"] for r in a.values()) / MIB
            rb = max(r["rss"] for r in b.values()) / MIB
            ratio = rb / ra
            result = self.judge(f"parcel {label} memory {l} / {s}", ratio, SCALING_LIMIT)
            self.out(f"| {label} | {ra:.1f} | {rb:.1f} | {ratio:.3f} | ≤ {SCALING_LIMIT:.2f} | {result} |")
        self.out()

    def cpu(self):
        self.out("## CPU time (median user + system seconds; CPU / wall shows how many cores were busy)")
        self.out()
        self.out("| package | command | parcel CPU s | parcel CPU / wall | peer CPU s | peer CPU / wall |")
        self.out("|---|---|--:|--:|--:|--:|")
        for p in self.packages:
            pkg = p["name"]
            for op, label in PARCEL_OPS:
                mine = self.runs(pkg, "parcel", op)
                if not mine:
                    continue
                cpu = median([r["cpu"] for r in mine.values()])
                use = median([r["cpu"] / max(r["wall"], 0.01) for r in mine.values()])
                peer_op = op.split("-")[0]
                peer = self.runs(pkg, "peer", peer_op)
                if peer:
                    pc = median([r["cpu"] for r in peer.values()])
                    pu = median([r["cpu"] / max(r["wall"], 0.01) for r in peer.values()])
                    peer_cells = f"{pc:.2f} | {pu:.2f}"
                else:
                    peer_cells = "— | —"
                self.out(f"| {pkg} | {label} | {cpu:.2f} | {use:.2f} | {peer_cells} |")
        loads = [r["load"] for runs in self.times.values() for r in runs.values()]
        if loads:
            self.out()
            self.out(
                f"1-minute load average just before each timed command: median {median(loads):.2f},"
                f" largest {max(loads):.2f} (the benchmark itself contributes up to about 2)."
            )
        self.out()

    def scale(self):
        self.out(f"## Scale: create, verify, import once each (target: parcel peak memory ≤ {RSS_LIMIT_MIB} MiB)")
        self.out()
        self.out("| package | command | parcel s | parcel CPU s | parcel peak MiB | target | result | peer s | parcel / peer |")
        self.out("|---|---|--:|--:|--:|--:|---|--:|--:|")
        for p in self.packages:
            pkg = p["name"]
            for op in ("create", "verify", "import"):
                mine = self.runs(pkg, "parcel", op).get(1)
                if not mine:
                    continue
                rss = mine["rss"] / MIB
                result = self.judge(f"{pkg} parcel {op} peak memory", rss, RSS_LIMIT_MIB, " MiB")
                peer = self.runs(pkg, "peer", op).get(1)
                peer_cells = f"{peer['wall']:.1f} | {mine['wall'] / peer['wall']:.3f}" if peer else "— | —"
                label = "create (default: reads back)" if op == "create" else op
                self.out(
                    f"| {pkg} | {label} | {mine['wall']:.1f} | {mine['cpu']:.1f} | {rss:.1f} | ≤ {RSS_LIMIT_MIB}"
                    f" | {result} | {peer_cells} |"
                )
        self.out()
        self.out("Peer times are for information (one run; the peer's create is not synced, its import is).")
        self.out()

    def summary(self):
        self.out("## Summary")
        self.out()
        total = self.passes + len(self.failures)
        self.out(f"{self.passes} of {total} targets met.")
        if self.failures:
            self.out()
            self.out("Failed:")
            self.out()
            for failure in self.failures:
                self.out(f"- {failure}")
        self.out()

    def render(self):
        self.header()
        if self.meta["mode"].startswith("scale"):
            self.scale()
            self.size()
        else:
            self.timing()
            self.size()
            self.memory()
            self.scaling()
            self.cpu()
        self.summary()
        return "\n".join(self.lines)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(Report(*load(Path(argv[1]))).render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
