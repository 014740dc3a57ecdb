import pytest


@pytest.fixture(autouse=True)
def _private_fact_cache(tmp_path, monkeypatch):
    """The planner reads detected GPU facts from Ansible's fact cache: keep this machine's out."""
    monkeypatch.setenv("PROVISION_FACT_CACHE", str(tmp_path / "facts"))
