"""/proc readings shared by the bench drivers: a process tree's pids, CPU
seconds and resident memory, and the machine's busy CPU seconds. Standard
library only, so any bench venv can import it."""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def read_stat(pid: int):
    """Fields of /proc/PID/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    return {
        "ppid": int(rest[1]),
        "utime": int(rest[11]),
        "stime": int(rest[12]),
        "cutime": int(rest[13]),
        "cstime": int(rest[14]),
        "rss_pages": int(rest[21]),
        "comm": s[s.find("(") + 1:s.rfind(")")],
    }


def tree_pids(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = read_stat(int(name))
        if st:
            children.setdefault(st["ppid"], []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_s(root: int) -> float:
    """utime+stime of the live tree plus children it has reaped (cutime)."""
    ticks = 0
    for p in tree_pids(root):
        st = read_stat(p)
        if st:
            ticks += st["utime"] + st["stime"] + st["cutime"] + st["cstime"]
    return ticks / CLK_TCK


def tree_rss_mb(root: int) -> float:
    """Resident memory of the live tree, summed."""
    return round(sum((read_stat(p) or {"rss_pages": 0})["rss_pages"] for p in tree_pids(root))
                 * PAGE / 2**20, 1)


def system_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK
