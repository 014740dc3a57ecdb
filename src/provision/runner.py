"""Run playbooks through ansible-runner and judge the outcome from the per-host recap.

- the inventory path is absolute (a relative string would be taken as inventory text);
- a fresh temporary private_data_dir per run (artifacts are kept, and their path printed,
  only when the run fails or is interrupted);
- typed extravars (the planner's resolved settings), never "k=v" strings;
- success comes from the recap (failed/unreachable per host), not from rc alone.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# A checkout (editable install) carries playbooks/ and roles/; PROVISION_HOME points elsewhere.
ROOT = Path(os.environ.get("PROVISION_HOME") or Path(__file__).resolve().parents[2])
PLAYBOOKS = ROOT / "playbooks"
ROLES = ROOT / "roles"
ANSIBLE_CFG = ROOT / "ansible.cfg"
STAGES = ("preflight", "base", "gpu", "models", "engines", "gateway", "monitoring", "validate")
FAILURE_EVENTS = {"runner_on_failed", "runner_on_unreachable", "runner_item_on_failed"}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "provision"


def facts_dir() -> Path:
    """Ansible's fact cache (jsonfile): the planner reads detected GPU facts from it."""
    override = os.environ.get("PROVISION_FACT_CACHE")
    return Path(override) if override else cache_dir() / "facts"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "provision"


@dataclass
class RunRequest:
    inventory: Path
    playbook: str = "site.yml"
    extravars: dict[str, Any] = field(default_factory=dict)
    limit: str | None = None
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    check: bool = False
    diff: bool = False
    forks: int | None = None
    verbosity: int = 0

    def cmdline(self) -> list[str]:
        args = []
        if self.check:
            args.append("--check")
        if self.diff:
            args.append("--diff")
        return args

    def command(self, extravars_file: str = "EXTRAVARS.json") -> list[str]:
        """The equivalent plain ansible-playbook command line."""
        cmd = ["ansible-playbook", "-i", str(self.inventory.resolve()), str(PLAYBOOKS / self.playbook)]
        if self.extravars:
            cmd += ["-e", f"@{extravars_file}"]
        if self.limit:
            cmd += ["--limit", self.limit]
        if self.tags:
            cmd += ["--tags", ",".join(self.tags)]
        if self.skip_tags:
            cmd += ["--skip-tags", ",".join(self.skip_tags)]
        if self.forks:
            cmd += ["--forks", str(self.forks)]
        cmd += self.cmdline()
        if self.verbosity:
            cmd.append("-" + "v" * self.verbosity)
        return cmd


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @property
    def healthy(self) -> bool:
        return not self.failed and not self.unreachable


RECAP_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def recap_from_stats(stats: dict[str, Any]) -> dict[str, HostRecap]:
    hosts: set[str] = set()
    for key in (*RECAP_KEYS, "processed"):
        hosts.update((stats.get(key) or {}).keys())
    recap = {h: HostRecap() for h in sorted(hosts)}
    for key, attr in RECAP_KEYS.items():
        for host, count in (stats.get(key) or {}).items():
            setattr(recap[host], attr, int(count))
    return recap


@dataclass
class Failure:
    host: str
    stage: str
    task: str
    message: str
    unreachable: bool = False


@dataclass
class Warning_:
    host: str
    stage: str
    message: str


@dataclass
class Change:
    """A task that changed (or, in check mode, would change) something on a host."""

    host: str
    stage: str
    task: str

    @property
    def restarts(self) -> bool:
        """Engine and service restarts are tasks named 'Restart ...' (roles' naming rule)."""
        return self.task.split(" : ")[-1].lower().startswith("restart")


@dataclass
class StageTime:
    stage: str
    seconds: float


@dataclass
class RunResult:
    status: str
    rc: int
    recap: dict[str, HostRecap]
    failures: list[Failure]
    stages: list[StageTime]
    artifacts: Path | None = None
    interrupted: bool = False
    in_progress: dict[str, str] = field(default_factory=dict)  # host -> "stage / task"
    warnings: list[Warning_] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def changed_hosts(self, stage: str | None = None) -> list[str]:
        return sorted({c.host for c in self.changes if stage is None or c.stage == stage})

    def restarts(self) -> dict[str, list[str]]:
        """host -> the restart tasks that ran (or would run, in check mode)."""
        out: dict[str, list[str]] = {}
        for c in self.changes:
            if c.restarts:
                out.setdefault(c.host, []).append(c.task.split(" : ")[-1])
        return out

    @property
    def ok(self) -> bool:
        if self.interrupted or not self.recap:
            return False
        return all(r.healthy for r in self.recap.values()) and self.status in ("successful", "failed")

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.recap.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "rc": self.rc,
            "interrupted": self.interrupted,
            "hosts": {h: asdict(r) for h, r in self.recap.items()},
            "failures": [asdict(f) for f in self.failures],
            "stages": [asdict(s) for s in self.stages],
            "artifacts": str(self.artifacts) if self.artifacts else None,
            "in_progress": self.in_progress,
            "warnings": [asdict(w) for w in self.warnings],
            "changes": [asdict(c) for c in self.changes],
        }


def stage_of(play_name: str) -> str:
    """Plays are named 'STAGE: what it does'."""
    head = play_name.split(":", 1)[0].strip().lower()
    return head if head in (*STAGES, "plan") else (play_name or "?")


def _failure_message(res: dict[str, Any]) -> str:
    if res.get("_ansible_no_log"):
        return "(output hidden: no_log)"
    msg = res.get("msg") or ""
    if not msg or msg == "non-zero return code":
        msg = res.get("stderr") or res.get("stdout") or res.get("reason") or msg
    if not msg and "results" in res:
        for item in res["results"]:
            if item.get("failed"):
                msg = item.get("msg") or item.get("stderr") or ""
                break
    return str(msg).strip().splitlines()[0][:400] if msg else "failed"


class EventTracker:
    """Follows runner events: current stage/task per host, failures, stage timings."""

    def __init__(self) -> None:
        self.stage = ""
        self.stage_started = 0.0
        self.stage_times: dict[str, float] = {}
        self.task = ""
        self.current: dict[str, str] = {}
        self.failures: list[Failure] = []
        self.warnings: list[Warning_] = []
        self.changes: list[Change] = []
        self.stats: dict[str, Any] = {}

    def close_stage(self, now: float) -> None:
        if self.stage:
            self.stage_times[self.stage] = self.stage_times.get(self.stage, 0.0) + now - self.stage_started

    def handle(self, event: dict[str, Any]) -> None:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        now = time.monotonic()
        if name == "playbook_on_play_start":
            stage = stage_of(data.get("play", ""))
            if stage != self.stage:
                self.close_stage(now)
                self.stage, self.stage_started = stage, now
        elif name == "playbook_on_task_start":
            self.task = data.get("task", "")
        elif name == "runner_on_start":
            self.current[data.get("host", "?")] = f"{self.stage} / {data.get('task', '')}"
        elif name in FAILURE_EVENTS and not data.get("ignore_errors"):
            if name == "runner_item_on_failed":
                return  # the task's own runner_on_failed follows
            res = data.get("res") or {}
            self.failures.append(
                Failure(
                    host=data.get("host", "?"),
                    stage=self.stage,
                    task=data.get("task", ""),
                    message=_failure_message(res),
                    unreachable=name == "runner_on_unreachable",
                )
            )
        elif name == "playbook_on_stats":
            self.close_stage(now)
            self.stage = ""
            self.stats = data
            self.current.clear()
        if name == "runner_on_ok" and str(data.get("task", "")).lower().startswith("warn:"):
            msg = (data.get("res") or {}).get("msg", "")
            self.warnings.append(Warning_(data.get("host", "?"), self.stage, str(msg).strip()))
        if name == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            self.changes.append(Change(data.get("host", "?"), self.stage, str(data.get("task", ""))))
        if name in ("runner_on_ok", "runner_on_skipped", "runner_on_failed", "runner_on_unreachable"):
            self.current.pop(data.get("host"), None)


def strategy_env() -> dict[str, str]:
    """Mitogen's strategy when it is installed (`pip install provision[fast]`) and not turned
    off with PROVISION_STRATEGY=linear: it reuses one Python per host instead of starting a
    fresh one for every task."""
    wanted = os.environ.get("PROVISION_STRATEGY", "auto")
    if wanted == "linear":
        return {}
    try:
        import ansible_mitogen
    except ImportError:
        if wanted == "mitogen":
            from provision.errors import ProvisionError

            raise ProvisionError(
                "PROVISION_STRATEGY=mitogen but mitogen is not installed: pip install 'provision[fast]'"
            ) from None
        return {}
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}


def ansible_playbook_binary() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if not found:
        from provision.errors import ProvisionError

        raise ProvisionError("ansible-playbook is not installed: pip install provision (it pulls ansible)")
    return found


def run_playbook(
    req: RunRequest,
    on_event: Callable[[dict[str, Any], EventTracker], None] | None = None,
) -> RunResult:
    import ansible_runner

    tracker = EventTracker()
    cancel = {"requested": False}

    def handler(event: dict[str, Any]) -> bool:
        try:
            tracker.handle(event)
            if on_event:
                on_event(event, tracker)
        except Exception as exc:  # never let display code kill a provisioning run
            print(f"provision: event display failed: {exc}", file=sys.stderr)
        return True

    def on_sigint(signum: int, frame: Any) -> None:
        cancel["requested"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    bindir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
        # ansible-runner would point these at its throwaway artifacts dir / turn checking off
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts_dir()),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
    }
    env.update(strategy_env())
    ansible_playbook_binary()  # a clear error now rather than rc 127 in an artifact
    pdd = tempfile.mkdtemp(prefix="provision-run-")
    started = time.strftime("%Y%m%d-%H%M%S")
    if req.extravars:
        # A file (0600 in the 0700 private data dir), never the command line: a dict given to
        # ansible-runner becomes one `-e '{...}'` argument, visible in ps and limited to 128 KiB.
        write_private_json(Path(pdd) / "env" / "extravars", as_data(req.extravars))
    try:
        r = ansible_runner.run(
            private_data_dir=pdd,
            project_dir=str(PLAYBOOKS),
            playbook=req.playbook,
            inventory=str(req.inventory.resolve()),
            limit=req.limit,
            tags=",".join(req.tags) or None,
            skip_tags=",".join(req.skip_tags) or None,
            cmdline=" ".join(shlex.quote(a) for a in req.cmdline()) or None,
            forks=req.forks,
            verbosity=req.verbosity or None,
            envvars=env,
            quiet=True,
            event_handler=handler,
            cancel_callback=lambda: cancel["requested"],
            settings={"suppress_ansible_output": True, "job_timeout": 0},
        )
        status, rc = r.status, r.rc if r.rc is not None else -1
        stats = tracker.stats or (r.stats or {})
    finally:
        signal.signal(signal.SIGINT, previous)
    in_progress = dict(tracker.current)
    if tracker.stage:  # interrupted mid-stage: count its time too
        tracker.close_stage(time.monotonic())
    result = RunResult(
        status=status,
        rc=rc,
        recap=recap_from_stats(stats),
        failures=tracker.failures,
        stages=[StageTime(s, round(t, 2)) for s, t in tracker.stage_times.items()],
        interrupted=cancel["requested"] or status == "canceled",
        in_progress=in_progress,
        warnings=tracker.warnings,
        changes=tracker.changes,
    )
    if not result.ok:
        keep = state_dir() / "runs" / started
        keep.parent.mkdir(parents=True, exist_ok=True)
        src = Path(pdd) / "artifacts"
        if src.exists():
            shutil.copytree(src, keep, dirs_exist_ok=True)
            # extravars may hold secrets: keep them private
            for p in keep.rglob("*"):
                os.chmod(p, 0o700 if p.is_dir() else 0o600)
            result.artifacts = keep
    shutil.rmtree(pdd, ignore_errors=True)
    return result


_TEMPLATE_MARKS = ("{{", "{%", "{#")


def as_data(value: Any) -> Any:
    """Mark strings that look like Jinja as data (Ansible's JSON `__ansible_unsafe`): inventory
    text such as an Ollama Modelfile TEMPLATE (Go templates use `{{ }}` too) reaches hosts as
    written instead of being templated by Ansible."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value} if any(m in value for m in _TEMPLATE_MARKS) else value
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    return value


def write_private_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return path


def write_extravars(extravars: dict[str, Any]) -> Path:
    """For --print-command: the extravars as a private file the command line can name."""
    return write_private_json(state_dir() / "extravars.json", as_data(extravars))
