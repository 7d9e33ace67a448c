"""What each megabyte of a binary buys: symbol sizes grouped by crate (cargo bloat's method).

    python3 benches/bloat.py UNSTRIPPED_BINARY [TOP]

Reads `nm --print-size --demangle` of an unstripped build and charges each symbol, code and
data alike, to the crate its demangled path starts with (`<A as B>::f` to A's crate). Symbols
that are not Rust paths are C: static glibc and ring's C and assembly. What no symbol covers
(ELF headers, unwind tables, relocation and string tables) is printed as the remainder.
"""
import collections
import os
import re
import subprocess
import sys

# A crate name as it starts a demangled path; Rust's own crates are reported as `std`.
PATH = re.compile(r"^[<&*\s]*(?:mut\s+|dyn\s+|const\s+)*([A-Za-z_][A-Za-z0-9_]*)::")
STD = {"core", "alloc", "std", "compiler_builtins", "std_detect", "panic_unwind", "rustc_demangle",
       "gimli", "addr2line", "miniz_oxide_std", "hashbrown_std", "object", "memchr_std"}


def crate_of(name):
    m = PATH.match(name)
    if not m:
        return "[C: glibc, ring]"
    crate = m.group(1)
    return "std" if crate in STD else crate


def main():
    binary = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    out = subprocess.run(["nm", "--print-size", "--demangle", "--defined-only", binary],
                         capture_output=True, text=True, check=True).stdout
    sizes = collections.Counter()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2].lower() not in "tdrbv":
            continue
        if parts[2].lower() == "b":  # .bss takes no room in the file
            continue
        sizes[crate_of(parts[3])] += int(parts[1], 16)
    stripped = binary + ".stripped"
    subprocess.run(["strip", "-o", stripped, binary], check=True)
    total = os.path.getsize(stripped)
    os.unlink(stripped)
    attributed = sum(sizes.values())
    print(f"{'crate':28} {'KiB':>8} {'share':>6}")
    for crate, size in sizes.most_common(top):
        print(f"{crate:28} {size / 1024:8.0f} {size / total:6.1%}")
    rest = sum(size for _, size in sizes.most_common()[top:])
    print(f"{'(other crates)':28} {rest / 1024:8.0f} {rest / total:6.1%}")
    print(f"{'(no symbol: headers, unwind, tables)':28} {(total - attributed) / 1024:8.0f} {(total - attributed) / total:6.1%}")
    print(f"{'stripped file':28} {total / 1024:8.0f}")


if __name__ == "__main__":
    main()
