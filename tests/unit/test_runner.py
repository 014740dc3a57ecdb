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
