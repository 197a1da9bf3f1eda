"""The internal-address rule, including every IPv6 form that carries an IPv4 address."""

from __future__ import annotations

import ipaddress

import pytest

from jobyard.domain.addresses import embedded_ipv4, internal_reason, is_internal

# Teredo: server 65.54.227.120 (public); the client is the last 32 bits XORed with 1s.
TEREDO_10_0_0_1 = "2001:0:4136:e378:8000:63bf:f5ff:fffe"
TEREDO_8_8_8_8 = "2001:0:4136:e378:8000:63bf:f7f7:f7f7"
TEREDO_PRIVATE_SERVER = "2001:0:a00:1:8000:63bf:f7f7:f7f7"


@pytest.mark.parametrize(
    ("address", "why"),
    [
        # Plain IPv4.
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared (CGNAT 100.64.0.0/10)"),
        ("100.127.255.254", "shared (CGNAT 100.64.0.0/10)"),
        ("0.0.0.0", "unspecified (0.0.0.0/8)"),
        ("0.1.2.3", "unspecified (0.0.0.0/8)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("192.0.2.1", "private"),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        # Plain IPv6.
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
        # IPv4-mapped and IPv4-translated.
        ("::ffff:10.0.0.1", "private (IPv4-mapped embedding 10.0.0.1)"),
        ("::ffff:127.0.0.1", "loopback (IPv4-mapped embedding 127.0.0.1)"),
        ("::ffff:169.254.169.254", "link-local (IPv4-mapped embedding 169.254.169.254)"),
        ("::ffff:0.0.0.0", "unspecified (0.0.0.0/8) (IPv4-mapped embedding 0.0.0.0)"),
        ("::ffff:8.8.8.8", None),
        ("::ffff:0:10.0.0.1", "private (IPv4-translated embedding 10.0.0.1)"),
        ("::ffff:0:8.8.8.8", None),
        # IPv4-compatible (deprecated).
        ("::10.0.0.1", "private (IPv4-compatible embedding 10.0.0.1)"),
        ("::127.0.0.2", "loopback (IPv4-compatible embedding 127.0.0.2)"),
        ("::8.8.8.8", None),
        # 6to4.
        ("2002:a00:1::", "private (6to4 embedding 10.0.0.1)"),
        ("2002:7f00:1::1", "loopback (6to4 embedding 127.0.0.1)"),
        ("2002:a9fe:a9fe::", "link-local (6to4 embedding 169.254.169.254)"),
        ("2002:6440:1::", "shared (CGNAT 100.64.0.0/10) (6to4 embedding 100.64.0.1)"),
        ("2002:e000:1::", "multicast (6to4 embedding 224.0.0.1)"),
        ("2002::", "unspecified (0.0.0.0/8) (6to4 embedding 0.0.0.0)"),
        ("2002:808:808::", None),
        ("2002:808:808:1:2:3:4:5", None),
        # NAT64, the well-known prefix.
        ("64:ff9b::a00:1", "private (NAT64 embedding 10.0.0.1)"),
        ("64:ff9b::7f00:1", "loopback (NAT64 embedding 127.0.0.1)"),
        ("64:ff9b::c0a8:101", "private (NAT64 embedding 192.168.1.1)"),
        ("64:ff9b::808:808", None),
        # NAT64, the local-use prefix: every RFC 6052 reading must be public.
        ("64:ff9b:1::a00:1", "unspecified (0.0.0.0/8) (local-use NAT64 embedding 0.0.0.0)"),
        ("64:ff9b:1:a0a:a:a0a:a0a:a0a", "private (local-use NAT64 embedding 10.10.10.10)"),
        ("64:ff9b:1:808:8:808:808:808", None),
        # Teredo: the client (XORed) and the server.
        (TEREDO_10_0_0_1, "private (Teredo client embedding 10.0.0.1)"),
        (TEREDO_PRIVATE_SERVER, "private (Teredo server embedding 10.0.0.1)"),
        (TEREDO_8_8_8_8, None),
    ],
)
def test_internal_addresses(address: str, why: str | None) -> None:
    parsed = ipaddress.ip_address(address)
    assert internal_reason(parsed) == why
    assert is_internal(parsed) is (why is not None)


def test_embedded_ipv4_reads_each_form() -> None:
    def read(address: str) -> list[tuple[str, str]]:
        return [(form, str(v4)) for form, v4 in embedded_ipv4(ipaddress.IPv6Address(address))]

    assert read("::ffff:10.0.0.1") == [("IPv4-mapped", "10.0.0.1")]
    assert read("2002:a00:1::") == [("6to4", "10.0.0.1")]
    assert read("64:ff9b::a00:1") == [("NAT64", "10.0.0.1")]
    assert read(TEREDO_10_0_0_1) == [
        ("Teredo server", "65.54.227.120"),
        ("Teredo client", "10.0.0.1"),
    ]
    assert read("64:ff9b:1:808:8:808:808:808") == [("local-use NAT64", "8.8.8.8")]
    assert read("2606:4700:4700::1111") == []
