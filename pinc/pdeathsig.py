"""Die with the parent: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``.

A PyInstaller one-file binary is two processes: the bootloader (the parent) unpacks
to /tmp/_MEI* and runs Python (the child). The bootloader forwards SIGTERM/SIGINT,
but when it is SIGKILLed the child keeps running, keeps its ports and leaves the
unpacked files behind. Asking the kernel to send the child SIGTERM when its parent
dies turns that into an ordinary clean shutdown. Linux only; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def is_frozen() -> bool:
    """True inside a PyInstaller binary."""
    return bool(getattr(sys, "frozen", False))


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` when the parent process dies. True if it is set."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
            return False
    except (OSError, AttributeError) as exc:
        log.warning("prctl unavailable: %s", exc)
        return False
    # The parent may have died before prctl ran: we were reparented, so no signal will come.
    # (Compare with the pid seen before, not with 1: in a container the parent can be pid 1.)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def die_with_parent_if_frozen() -> bool:
    """Call at the start of `pinc run` and `pinc demo`: only the frozen binary needs it."""
    if is_frozen():
        return set_parent_death_signal()
    return False
