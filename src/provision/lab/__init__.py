"""The local lab: real systemd test hosts in Docker, behind an egress allowlist.

``up(names)`` starts test hosts and returns name -> IP; ``down()`` removes
every lab container; ``status()`` reports engine, allowlist and hosts.
The Ansible inventory fragment lands in the lab state dir as ``hosts.yml``.
"""

from __future__ import annotations

from provision.lab.errors import LabError
from provision.lab.lifecycle import LabStatus, down, status, up

__all__ = ["LabError", "LabStatus", "down", "status", "up"]
