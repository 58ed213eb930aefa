"""Open files: every held connection is one, and a process may hold only so many.

A held stream costs the consumer fleet one socket and the provider one
socket. Linux counts both against the process's open-files limit
(``RLIMIT_NOFILE``): the soft limit is what the process may open now, the
hard limit what it may raise the soft one to (raising the hard limit needs
privileges a lab run does not have). So one process holds at most about
"hard limit" connections, and a fleet of more streams than that must spread
over processes; the provider, one process by design, cannot, and a run that
asks it for more is refused connections: its accept loop gets EMFILE.

A connection also needs a local port. Every connection from one source
address to the provider's one address and port takes a port of its own from
the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``), so past
that many a fleet binds its processes to other loopback source addresses
(127.0.0.2, ...; the whole of 127.0.0.0/8 is this machine).
"""

from __future__ import annotations

import contextlib
import ipaddress
import resource
from pathlib import Path

import psutil

# Files a process holds besides its connections: its databases and their journals, logs, stats files, pipes, the loop's own.
RESERVE = 512
# Ports of the ephemeral range kept for everything else on the machine that connects from the same address.
PORTS_RESERVE = 1024
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Linux's default range (32768-60999), used where the kernel does not say.
DEFAULT_PORTS = 60999 - 32768 + 1
# A server this close to its soft limit accepts no more connections (the loop and its accepts need a few files of their own).
AT_LIMIT_SLACK = 16
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def raise_soft_limit(wanted: int | None = None) -> int:
    """Set the soft open-files limit to ``wanted`` (at most the hard limit), or to the hard limit; returns the soft limit now.

    A lab server raises it at start, so what a run measures is the machine's limit and
    not a shell's lower default; a test lowers it to reach the limit with a small run.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard))
    if target != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connections_per_process(limit: int | None = None) -> int:
    """How many connections one process may hold: the open-files limit it may raise itself to, less ``RESERVE``.

    ``limit`` replaces the process's hard limit (tests); an unlimited one counts as
    the ephemeral port range, which one source address cannot exceed anyway.
    """
    if limit is None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = hard if hard != resource.RLIM_INFINITY else (soft if soft != resource.RLIM_INFINITY else ephemeral_ports())
    return max(1, int(limit) - RESERVE)


def ephemeral_ports() -> int:
    """Local ports one source address has for connections to one destination (the kernel's ephemeral range)."""
    try:
        low, high = (int(x) for x in PORT_RANGE.read_text().split()[:2])
    except (OSError, ValueError):
        return DEFAULT_PORTS
    return max(1, high - low + 1)


def connections_per_address(ports: int | None = None) -> int:
    """Connections one source address may open to one provider, leaving ``PORTS_RESERVE`` ports for the rest."""
    ports = ephemeral_ports() if ports is None else ports
    return max(1, ports - PORTS_RESERVE) if ports > 2 * PORTS_RESERVE else ports


def loopback_source(k: int) -> str:
    """Worker ``k``'s own loopback source address: 127.0.0.2, 127.0.0.3, ... (never 127.0.0.1, the servers' own)."""
    address = LOOPBACK.network_address + 2 + k
    if address not in LOOPBACK or address == LOOPBACK.broadcast_address:
        raise ValueError(f"no loopback source address left for worker {k}")
    return str(address)


def in_use(pid: int) -> tuple[int, int] | None:
    """(files open now, soft open-files limit) of process ``pid``; None when it cannot be read (gone, not allowed)."""
    try:
        p = psutil.Process(pid)
        soft = int(p.rlimit(psutil.RLIMIT_NOFILE)[0])
        return int(p.num_fds()), soft
    except (psutil.Error, OSError, AttributeError):
        return None


def at_limit(pid: int) -> tuple[int, int] | None:
    """(open, soft limit) when process ``pid`` has (nearly) every file it may open, else None."""
    now = in_use(pid)
    if now is None or now[1] == resource.RLIM_INFINITY:
        return None
    return now if now[0] >= now[1] - AT_LIMIT_SLACK else None
