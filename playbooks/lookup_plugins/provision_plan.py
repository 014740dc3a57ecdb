"""Lookup `provision_plan`: the planner's resolved settings for plain ansible-playbook runs.

`provision up` passes the plan as extravars. When a playbook is run without the CLI
(`ansible-playbook -i inventory/prod.yml playbooks/site.yml`), this lookup computes the same
plan from the inventory file, so the roles consume one source of truth either way.
"""

from __future__ import annotations

DOCUMENTATION = """
name: provision_plan
short_description: the provision planner's per-host settings for an inventory
description:
  - Validates and plans the inventory with provision's planner and returns the plan mapping
    (host name to resolved deployments), the same data `provision up` passes as extravars.
options:
  _terms:
    description: the inventory file path
    required: true
"""

from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        try:
            from provision.errors import InvalidInput, ProvisionError
            from provision.up import extravars, plan_for
        except ImportError as exc:
            raise AnsibleError(
                "provision is not importable by this Ansible: install it in the same Python "
                f"environment (pip install -e .) ({exc})"
            ) from exc
        results = []
        for term in terms:
            try:
                plan = plan_for(Path(term))
            except InvalidInput as exc:
                raise AnsibleError(f"the inventory is invalid:\n{exc}") from None
            except ProvisionError as exc:
                raise AnsibleError(str(exc)) from None
            results.append(extravars(plan)["provision_plan"])
        return results
