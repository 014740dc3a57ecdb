"""Network filters shared by the engine roles (list provision_lib under their dependencies).

* ``provision_private_address(address)`` -> True for an address an engine may bind without being
  told to: private (RFC 1918, ULA), shared address space (RFC 6598, 100.64.0.0/10), loopback or
  link-local. False for public addresses, for 0.0.0.0 / :: (every interface) and for non-addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Any

SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def provision_private_address(address: Any) -> bool:
    try:
        ip = ipaddress.ip_address(str(address).strip("[]"))
    except ValueError:
        return False
    if ip.is_unspecified:
        return False
    if ip.version == 4 and ip in SHARED_ADDRESS_SPACE:
        return True
    return ip.is_private or ip.is_loopback or ip.is_link_local


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"provision_private_address": provision_private_address}
