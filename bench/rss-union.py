#!/usr/bin/env python3
"""bench/rss-union.py PID...: the resident memory of a group of processes,
each physical page counted once (KiB). Summed VmRSS counts a page once per
process that maps it (a hundred supervisors of one binary: its text a
hundred times); this is what the group holds in RAM. Reads the page frame
numbers of every present page from /proc/PID/pagemap (root only)."""
import struct
import sys

PAGE = 4096
PRESENT = 1 << 63
PFN_MASK = (1 << 55) - 1


def frames(pid):
    out = set()
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        pagemap = open(f"/proc/{pid}/pagemap", "rb")
    except OSError:
        return out  # the process is gone
    with pagemap:
        for line in maps:
            parts = line.split()
            if parts[1].startswith("---"):
                continue  # reserved, never resident
            if len(parts) > 5 and parts[5] == "[vsyscall]":
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            pagemap.seek(start // PAGE * 8)
            data = pagemap.read((end - start) // PAGE * 8)
            for (entry,) in struct.iter_unpack("<Q", data):
                if entry & PRESENT and entry & PFN_MASK:
                    out.add(entry & PFN_MASK)
    return out


def main():
    pages = set()
    for pid in sys.argv[1:]:
        pages |= frames(pid)
    print(len(pages) * PAGE // 1024)


if __name__ == "__main__":
    main()
