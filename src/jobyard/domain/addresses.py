"""Which IP addresses are internal: the one rule for outbound requests (webhooks).

An IPv6 address can carry an IPv4 address that a router or translator turns into an
IPv4 destination, so each such form is unwrapped and the IPv4 judged too:

- IPv4-mapped ``::ffff:0:0/96`` and IPv4-translated ``::ffff:0:0:0/96``: the last 32 bits;
- IPv4-compatible ``::/96`` (deprecated): the last 32 bits;
- 6to4 ``2002::/16``: bits 16-47;
- NAT64 well-known prefix ``64:ff9b::/96``: the last 32 bits;
- NAT64 local-use ``64:ff9b:1::/48`` (RFC 8215): the operator picks the prefix length, so
  the IPv4 is read at every RFC 6052 position a /48 to /96 prefix allows, and any internal
  reading makes the address internal;
- Teredo ``2001::/32``: the server (bits 32-63) and the client (the last 32 bits XORed with
  0xffffffff).
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
# RFC 6052 section 2.2: the byte offsets holding the IPv4 for prefixes of 48, 56, 64 and
# 96 bits (byte 8, bits 64-71, is always skipped).
_RFC6052_OFFSETS = ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12), (12, 13, 14, 15))


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address in _CGNAT:
        return "shared (CGNAT 100.64.0.0/10)"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified (0.0.0.0/8)"
    if address.is_multicast:
        return "multicast"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its form."""
    packed = address.packed
    last = ipaddress.IPv4Address(packed[12:])
    if address in _MAPPED:
        return [("IPv4-mapped", last)]
    if address in _TRANSLATED:
        return [("IPv4-translated", last)]
    if address in _COMPATIBLE:
        return [("IPv4-compatible", last)]
    if address in _SIX_TO_FOUR:
        return [("6to4", ipaddress.IPv4Address(packed[2:6]))]
    if address in _NAT64:
        return [("NAT64", last)]
    if address in _NAT64_LOCAL:
        readings = {ipaddress.IPv4Address(bytes(packed[i] for i in at)) for at in _RFC6052_OFFSETS}
        return [("local-use NAT64", v4) for v4 in sorted(readings)]
    if address in _TEREDO:
        server = ipaddress.IPv4Address(packed[4:8])
        client = ipaddress.IPv4Address(int(last) ^ 0xFFFFFFFF)
        return [("Teredo server", server), ("Teredo client", client)]
    return []


def internal_reason(address: Address) -> str | None:
    """Why an address is private or internal (e.g. "loopback"), or None when it is public.

    IPv6 forms that embed an IPv4 address are judged by that address as well (see the
    module docstring), so ``2002:a00:1::`` is as private as ``10.0.0.1``.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return _ipv4_reason(address)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_site_local:
        return "site-local"
    if address.is_multicast:
        return "multicast"
    if address in _UNIQUE_LOCAL:
        return "unique local"
    embedded = embedded_ipv4(address)
    for form, v4 in embedded:
        why = _ipv4_reason(v4)
        if why is not None:
            return f"{why} ({form} embedding {v4})"
    if embedded:
        # The prefixes themselves are special-purpose, but the destination is the IPv4.
        return None
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def is_internal(address: Address) -> bool:
    """True for an address outbound requests must not reach (see ``internal_reason``)."""
    return internal_reason(address) is not None
