"""Client network identity for rate limits and audit: IPv4 address, IPv6 /64; and the
coarse family of a user agent (what an audit entry keeps of it)."""

from __future__ import annotations

import ipaddress


def network_prefix(address: str | None) -> str:
    """`203.0.113.7` -> `203.0.113.7/32`, `2001:db8::1` -> `2001:db8::/64`; junk -> `unknown`."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return f"{ip}/32"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def client_address(
    forwarded_for: str | None, remote_addr: str | None, trusted_hops: int = 1
) -> str | None:
    """The client's address as seen by the trusted front end.

    Google's front ends *append* the address they saw to X-Forwarded-For, so anything
    to the left can be forged by the client. With `trusted_hops` proxies of ours in
    front (1: Cloud Run's front end; 2: the external load balancer, which also appends
    its own address) the client is the entry `trusted_hops` from the right.
    """
    if forwarded_for and trusted_hops > 0:
        entries = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if len(entries) >= trusted_hops:
            return entries[-trusted_hops]
    return remote_addr


# (family, lower-case markers), first match wins: specific clients before the browsers
# whose names they also carry (Edge and Opera say "chrome", Chrome says "safari").
_AGENT_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("genx", ("genx",)),
    ("curl", ("curl/",)),
    ("wget", ("wget/",)),
    ("python", ("python-requests", "python-urllib", "httpx", "aiohttp")),
    ("edge", ("edg/", "edge/")),
    ("opera", ("opr/", "opera")),
    ("firefox", ("firefox/",)),
    ("chrome", ("chrome/", "chromium/", "crios/")),
    ("safari", ("safari/",)),
    ("bot", ("bot", "crawler", "spider")),
)


def agent_family(user_agent: str | None) -> str:
    """A user agent reduced to its family (`firefox`, `curl`, ...; `other`, `none`):
    enough to tell a browser from a script in a dispute, too coarse to tell people
    apart. The full string is never stored."""
    text = (user_agent or "").strip().lower()
    if not text:
        return "none"
    for family, markers in _AGENT_FAMILIES:
        if any(marker in text for marker in markers):
            return family
    return "other"
