"""The ansible-runner layer: recap from stats, events from a recorded run, the request."""

from __future__ import annotations

import json
from pathlib import Path

from provision.runner import EventTracker, RunRequest, RunResult, recap_from_stats, stage_of
from provision.up import request

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "runner"
ROOT = Path(__file__).resolve().parents[2]


def replay(name: str) -> EventTracker:
    tracker = EventTracker()
    for event in json.loads((FIX / name).read_text()):
        tracker.handle(event)
    return tracker


def test_recap_maps_runner_keys_to_recap_columns():
    stats = {
        "ok": {"a": 5, "b": 3},
        "changed": {"a": 2},
        "failures": {"b": 1},
        "dark": {"c": 1},
        "skipped": {"a": 1},
        "processed": {"a": 1, "b": 1, "c": 1},
    }
    recap = recap_from_stats(stats)
    assert set(recap) == {"a", "b", "c"}
    assert (recap["a"].ok, recap["a"].changed, recap["a"].skipped) == (5, 2, 1)
    assert recap["b"].failed == 1 and not recap["b"].healthy
    assert recap["c"].unreachable == 1 and not recap["c"].healthy
    assert recap["a"].healthy


def test_success_is_judged_from_the_recap_not_rc():
    recap = recap_from_stats({"ok": {"a": 1}, "dark": {"b": 1}, "processed": {"a": 1, "b": 1}})
    # ansible-playbook can exit 4 (unreachable) or 0 with ignore_unreachable; the recap decides
    assert not RunResult("successful", 0, recap, [], []).ok
    healthy = recap_from_stats({"ok": {"a": 1}, "processed": {"a": 1}})
    assert RunResult("successful", 0, healthy, [], []).ok
    assert not RunResult("canceled", 254, healthy, [], [], interrupted=True).ok
    assert not RunResult("successful", 0, {}, [], []).ok  # no host ran at all


def test_recorded_failed_run():
    tracker = replay("failed_preflight_events.json")
    assert [f.task for f in tracker.failures] == ["Measure the file system that will hold the models"]
    failure = tracker.failures[0]
    assert failure.host == "controller" and failure.stage == "preflight"
    assert "mutually exclusive" in failure.message  # stderr, not "non-zero return code"
    assert set(tracker.stage_times) == {"plan", "preflight"}
    recap = recap_from_stats(tracker.stats)
    assert recap["controller"].failed == 1


def test_stage_names_come_from_play_names():
    assert stage_of("engines: serving engines") == "engines"
    assert stage_of("plan: resolve each host's settings") == "plan"
    assert stage_of("something else") == "something else"


def test_request_is_typed_and_absolute(tmp_path):
    inv = ROOT / "inventory" / "lab.yml"
    from provision.up import plan_for

    req = request(inv, plan_for(inv), only="preflight", limit="lab-node1", check=True, diff=True)
    assert req.playbook == "preflight.yml"
    cmd = req.command("/tmp/x.json")
    assert cmd[2] == str(inv.resolve()) and Path(cmd[2]).is_absolute()
    assert cmd[3].endswith("playbooks/preflight.yml")
    assert (
        "--check" in cmd and "--diff" in cmd and cmd[cmd.index("--limit") :][:2] == ["--limit", "lab-node1"]
    )
    plan = req.extravars["provision_plan"]
    node = plan["lab-node1"]["deployments"][0]
    assert node["settings"]["ctx_size"] == 512 and isinstance(node["settings"]["parallel"], int)


def test_request_rejects_unknown_stage():
    import pytest

    from provision.errors import InvalidInput
    from provision.up import plan_for

    inv = ROOT / "inventory" / "lab.yml"
    with pytest.raises(InvalidInput):
        request(inv, plan_for(inv), only="engine")


def test_run_request_defaults():
    req = RunRequest(inventory=Path("x.yml"))
    assert req.playbook == "site.yml" and req.cmdline() == []


GO_TEMPLATE = "{{ if .System }}<|system|>{{ .System }}{{ end }}{# not jinja #}"


def test_template_like_inventory_text_reaches_ansible_as_data(tmp_path):
    """An Ollama Modelfile TEMPLATE is Go template text: Ansible must pass it on as written."""
    import subprocess
    import sys

    from provision.runner import as_data, write_private_json

    data = {"plan": {"h": [{"modelfile": {"template": GO_TEMPLATE, "n": 3, "plain": "x"}}]}}
    marked = as_data(data)
    assert marked["plan"]["h"][0]["modelfile"] == {
        "template": {"__ansible_unsafe": GO_TEMPLATE},
        "n": 3,
        "plain": "x",
    }
    path = write_private_json(tmp_path / "env" / "extravars", marked)
    assert path.stat().st_mode & 0o777 == 0o600
    out = tmp_path / "out.txt"
    ansible = Path(sys.executable).parent / "ansible"
    subprocess.run(
        [
            str(ansible),
            "localhost",
            "-e",
            f"@{path}",
            "-m",
            "ansible.builtin.copy",
            "-a",
            f"content={{{{ plan.h[0].modelfile.template }}}} dest={out}",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.read_text() == GO_TEMPLATE


def test_changes_are_tracked_per_host_and_stage_and_restarts_named():
    from provision.runner import EventTracker

    tracker = EventTracker()
    events = [
        {"event": "playbook_on_play_start", "event_data": {"play": "Base: packages"}},
        {
            "event": "runner_on_ok",
            "event_data": {"host": "a", "task": "Install packages", "res": {"changed": True}},
        },
        {"event": "playbook_on_play_start", "event_data": {"play": "Engines: serve"}},
        {
            "event": "runner_on_ok",
            "event_data": {"host": "b", "task": "Write the unit", "res": {"changed": True}},
        },
        {
            "event": "runner_on_ok",
            "event_data": {
                "host": "b",
                "task": "llamacpp : Restart the service (flags changed)",
                "res": {"changed": True},
            },
        },
        {
            "event": "runner_on_ok",
            "event_data": {"host": "c", "task": "Restart nothing", "res": {"changed": False}},
        },
    ]
    for e in events:
        tracker.handle(e)
    result = RunResult("successful", 0, recap_from_stats({"ok": {"a": 1, "b": 2, "c": 1}}), [], [])
    result.changes = tracker.changes
    assert result.changed_hosts() == ["a", "b"]
    assert result.changed_hosts("engines") == ["b"]
    assert result.restarts() == {"b": ["Restart the service (flags changed)"]}


def test_rolling_options_are_checked_before_any_host_is_touched():
    import pytest

    from provision.errors import InvalidInput
    from provision.up import rolling_vars

    assert rolling_vars(["n1"], "25%", 0, 60)["provision_engines_serial"] == "25%"
    assert rolling_vars(["n1"], "2", 10, 60)["provision_engines_serial"] == 2
    for batch, fail in (("0", 0), ("150%", 0), ("one", 0), ("1", 101)):
        with pytest.raises(InvalidInput):
            rolling_vars([], batch, fail, 60)
