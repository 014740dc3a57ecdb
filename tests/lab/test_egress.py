from __future__ import annotations

import pytest

from provision.lab import egress


def _ruleset() -> str:
    return egress.render_ruleset(["192.0.2.80", "2001:db8::80"], ["172.18.0.0/16"])


def test_forward_hook_at_priority_minus_10() -> None:
    assert "type filter hook forward priority -10; policy accept;" in _ruleset()


def test_replaces_the_table_atomically() -> None:
    lines = _ruleset().splitlines()
    assert lines[0] == "table inet provision_lab"
    assert lines[1] == "delete table inet provision_lab"
    assert lines[2] == "table inet provision_lab {"


def test_allows_established_lab_and_mirror_only_then_rejects() -> None:
    rules = [line.strip() for line in _ruleset().splitlines()]
    body = rules[rules.index("chain forward {") + 2 : -2]
    assert body[0] == "ct state established,related accept"
    assert "ip saddr 172.18.0.0/16 ip daddr 172.18.0.0/16 accept" in body
    assert "ip daddr { 192.0.2.80 } tcp dport { 80, 443 } counter accept" in body
    assert "ip6 daddr { 2001:db8::80 } tcp dport { 80, 443 } counter accept" in body
    # Everything else forwarded is rejected, fast: tcp reset, else ICMP.
    assert body[-2] == "meta l4proto tcp counter reject with tcp reset"
    assert body[-1] == "counter reject with icmpx type admin-prohibited"
    assert all("accept" not in rule for rule in body[-2:])


def test_without_lab_subnet_only_the_mirror_is_allowed() -> None:
    text = egress.render_ruleset(["192.0.2.80"])
    assert "saddr" not in text
    assert "reject" in text


def test_rejects_garbage_addresses() -> None:
    with pytest.raises(ValueError):
        egress.render_ruleset(["not-an-ip; flush ruleset"])
    with pytest.raises(ValueError):
        egress.render_ruleset(["192.0.2.80"], ["10.0.0.0/8 accept"])
