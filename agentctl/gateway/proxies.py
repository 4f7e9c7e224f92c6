"""Which address is the client: the TCP peer, unless the peer is a trusted proxy.

`X-Forwarded-For` is a list anyone can write. It is read only when the peer is in
`trusted_proxies`, and then right to left: each hop that is itself a trusted proxy
vouches for the one before it; the first address that is not trusted is the client.
An entry that is not an IP address ends the walk at the last hop that vouched for it,
so a forged or garbled header can never make a caller look like someone else. Several
`X-Forwarded-For` lines read as one list, in order (RFC 9110 field combination).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from multidict import CIMultiDictProxy

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str, headers: CIMultiDictProxy[str]) -> str:
        if not self.networks or not self.trusts(peer):
            return peer
        lines = headers.getall("X-Forwarded-For", [])
        if not lines:
            return peer
        client = peer
        for hop in reversed(",".join(lines).split(",")):
            hop = hop.strip()
            try:
                hop = str(ipaddress.ip_address(hop))
            except ValueError:
                return client  # garbled: the last address that a trusted hop vouched for
            client = hop
            if not self.trusts(hop):
                return hop
        return client
