"""Die with the parent: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``.

A PyInstaller one-file binary is two processes: the bootloader (the parent) unpacks
to /tmp/_MEI* and runs Python (the child). The bootloader forwards SIGTERM/SIGINT,
but when it is SIGKILLed the child keeps running, keeps its ports and leaves the
unpacked files behind. Asking the kernel to send the child SIGTERM when its parent
dies turns that into an ordinary clean shutdown. Linux only; a no-op elsewhere.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

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


def _remove_bundle_if_orphaned(parent: int) -> None:
    """At exit: if the bootloader died first, nobody else will remove /tmp/_MEI*."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and os.getppid() != parent and Path(bundle).name.startswith("_MEI"):
        shutil.rmtree(bundle, ignore_errors=True)


def die_with_parent_if_frozen() -> bool:
    """Call at the start of `pinc run` and `pinc demo`: only the frozen binary needs it."""
    if not is_frozen():
        return False
    atexit.register(_remove_bundle_if_orphaned, os.getppid())
    return set_parent_death_signal()
