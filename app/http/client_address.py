"""Who sent a request: the peer address, or, when the peer is a trusted proxy (DEEPSERVE_TRUSTED_PROXIES), the
client that proxy names in X-Forwarded-For. Parsed here and only here; the rate limit counts by it and the admin
routes' loopback rule asks it.

The peer is the one address nobody can forge over TCP, so it decides unless it is a proxy the operator listed.
Behind one, X-Forwarded-For is read from the right (each proxy appends the address it saw) and the first address
that is not a trusted proxy is the client: whatever a client writes to the left of it is ignored. A header that is
too long or holds something other than IP addresses where it is read falls back to the peer, and every address is
parsed and normalised, so the rate limiter's table holds short fixed-size keys, never raw header text.

uvicorn has an X-Forwarded-For reader of its own (`proxy_headers`, on by default for a 127.0.0.1 peer) that rewrites
the scope's client before the app sees it, which would let anything on this host, a local proxy included, name any
address. Every command that runs the service turns it off (UVICORN_PROXY_OPTIONS).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from starlette.types import Scope

IPAddress = IPv4Address | IPv6Address
MAX_FORWARDED_BYTES = 4096  # a chain of about 100 proxies; longer is not a proxy chain
MAX_ADDRESS_CHARS = 45  # the longest IPv6 text (with an embedded IPv4 address)
# The uvicorn.run options of `deepserve serve` (the container images, the KServe runtimes and the tests pass
# --no-proxy-headers on uvicorn's command line): the app reads X-Forwarded-For itself, here.
UVICORN_PROXY_OPTIONS: dict[str, Any] = {"proxy_headers": False}


def parse_address(text: str) -> IPAddress | None:
    """An IP address, normalised (an IPv4-mapped IPv6 address as the IPv4 one; no zone); None for anything else:
    names, ports, junk."""
    text = text.strip()
    if len(text) > MAX_ADDRESS_CHARS:
        return None
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address):
        return address.ipv4_mapped or IPv6Address(int(address))  # int() drops a `%zone`
    return address


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted: list[IPv4Network | IPv6Network] = [ip_network(n, strict=False) for n in trusted_proxies]

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)

    def peer(self, scope: Scope) -> IPAddress | None:
        """The address at the other end of the connection; None on a Unix socket."""
        client = scope.get("client")
        return parse_address(str(client[0])) if client else None

    def client(self, scope: Scope) -> IPAddress | None:
        """The peer, or behind trusted proxies the right-most X-Forwarded-For address that is not one of them."""
        peer = self.peer(scope)
        if peer is None or not self.is_trusted(peer):
            return peer
        forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
        if not forwarded.strip() or len(forwarded) > MAX_FORWARDED_BYTES:
            return peer
        address: IPAddress | None = peer
        for entry in reversed(forwarded.decode("latin-1").split(",")):
            address = parse_address(entry)
            if address is None:
                return peer
            if not self.is_trusted(address):
                return address
        return address  # every hop a trusted proxy: the first one made the request

    def is_local(self, scope: Scope) -> bool:
        """A request made on this host: a loopback peer that is not a trusted proxy (one relays others' requests).
        Never a header's say."""
        peer = self.peer(scope)
        return peer is not None and peer.is_loopback and not self.is_trusted(peer)


def bucket(address: IPAddress | None) -> str:
    """The rate limit's key for a client address: IPv6 by its /64, the block one subscriber is given (a client
    could otherwise take a new address for every request); `unknown` without one (a Unix socket)."""
    if address is None:
        return "unknown"
    if isinstance(address, IPv6Address):
        return str(ip_network((address, 64), strict=False))
    return str(address)
