"""Run playbooks/models.yml the way an operator does: the repository's ansible.cfg, none of the
ANSIBLE_* settings Molecule exports for its own runs (its config and roles path).

    python run_stage.py INVENTORY [ansible-playbook arguments...]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stage_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.update(extra)
    return env


def stage_argv(inventory: str, *args: str) -> list[str]:
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    return [playbook, "-i", inventory, str(ROOT / "playbooks/models.yml"), *args]


if __name__ == "__main__":
    sys.exit(
        subprocess.run(
            stage_argv(sys.argv[1], *sys.argv[2:]), cwd=ROOT, env=stage_env(), check=False
        ).returncode
    )
