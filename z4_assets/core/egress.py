"""Egress, observed rather than asserted: what the run record says about the network is what was tried.

In the training image (Z4_CONTAINER_DIGEST set by the container runner) the process looks at its
network interfaces and tries a TCP connection to a public address and to a port on loopback;
every attempt must fail, else the run stops. On a host run nothing is isolated, and the record
says exactly that instead of claiming a policy.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

from z4_assets.core.errors import Z4Error

PUBLIC_PROBE = ("1.1.1.1", 443)   # a public anycast address: reachable from any host with egress
PROBE_TIMEOUT_S = 3.0


def attempt(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to HOST:PORT opened, else the error it failed with."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def interfaces() -> list[str]:
    try:
        return sorted(p.name for p in Path("/sys/class/net").iterdir())
    except OSError:
        return ["unknown"]


@lru_cache(maxsize=1)
def observed_in_container(loopback_port: int = 0) -> str:
    """'deny-all (observed ...)' with how it was checked; raises Z4Error when any attempt got out."""
    port = loopback_port or int(os.environ.get("Z4_EGRESS_LOOPBACK_PORT", "5000"))
    checks = {f"tcp {h}:{p}": attempt(h, p) for h, p in (PUBLIC_PROBE, ("127.0.0.1", port))}
    opened = [k for k, err in checks.items() if err is None]
    nics = interfaces()
    if opened or any(n != "lo" for n in nics):
        raise Z4Error(f"egress is open inside the training image: {', '.join(opened) or 'no probe opened'}; "
                      f"interfaces {nics} (run it with --network=none)")
    how = "; ".join(f"{k} failed ({err[:80]})" for k, err in checks.items())
    return f"deny-all (observed in the container: interfaces {nics}; {how})"


def observed(configured: str) -> str:
    """The egress_policy the run record holds."""
    if os.environ.get("Z4_CONTAINER_DIGEST", "").strip():
        return observed_in_container()
    return f"none: host run, no network isolation enforced or observed (configured: {configured})"
