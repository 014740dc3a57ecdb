"""provision bench without a server: options, URLs, the inventory's gateway (resolved by
Ansible itself), statistics from fixed samples, and the exit codes of bad input and of a
target that is not there. The real load run is in test_bench_llamacpp.py."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from provision.bench import (
    DEFAULT_PROMPT,
    Level,
    Sample,
    Target,
    _chunk_tokens,
    gateway_from_inventory,
    make_settings,
    parse_base_url,
    parse_concurrency,
    percentile,
    resolve_target,
)
from provision.cli import app
from provision.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventory" / "lab.yml"
KEY = "bench-test-key-0123456789"


# --- options -----------------------------------------------------------------------------------


def test_concurrency_list_is_parsed_in_order():
    assert parse_concurrency("1,4,8,16,32,64") == (1, 4, 8, 16, 32, 64)
    assert parse_concurrency(" 8, 2 ") == (8, 2)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a list"),
        ("1,,4", "not a list"),
        ("0", "'0' is not a positive integer"),
        ("1,x", "'x' is not a positive integer"),
        ("-4", "'-4' is not a positive integer"),
        ("2.5", "'2.5' is not a positive integer"),
        ("4,4", "given twice"),
        ("5000", "above 1024"),
    ],
)
def test_bad_concurrency_lists_are_invalid_input(text, reason):
    with pytest.raises(InvalidInput) as info:
        parse_concurrency(text)
    (problem,) = info.value.problems
    assert problem.file == "--concurrency"
    assert reason in problem.message
    assert problem.fix


def test_settings_defaults_and_requests_per_level():
    s = make_settings()
    assert s.concurrency == (1, 4, 8, 16, 32, 64)
    assert s.prompt == DEFAULT_PROMPT and s.max_tokens == 128 and s.model is None
    assert [s.requests_at(c) for c in s.concurrency] == [16, 16, 32, 64, 128, 256]
    fixed = make_settings("1,4", requests=5)
    assert [fixed.requests_at(c) for c in fixed.concurrency] == [5, 5]


def test_every_bad_option_is_reported_at_once():
    with pytest.raises(InvalidInput) as info:
        make_settings("1,0", requests=0, max_tokens=0, prompt=" ", model="", timeout_s=-1, duration_cap_s=0)
    assert [p.file for p in info.value.problems] == [
        "--concurrency",
        "--requests",
        "--max-tokens",
        "--prompt",
        "--model",
        "--timeout",
        "--duration-cap",
    ]
    with pytest.raises(InvalidInput):
        make_settings(timeout_s=float("nan"))


# --- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
        ("http://gw.internal", "http://gw.internal/v1"),
        ("https://gw.internal:8443/", "https://gw.internal:8443/v1"),
        ("http://10.0.0.5/v1/fast", "http://10.0.0.5/v1/fast"),
        ("http://[fd00::5]:8080/v1", "http://[fd00::5]:8080/v1"),
    ],
)
def test_base_urls(text, base):
    assert parse_base_url(text) == base


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ftp://host/v1", "scheme"),
        ("http:///v1", "names no host"),
        ("http://host:99999/v1", "not a valid URL"),
        ("http://host:port/v1", "not a valid URL"),
        ("http://user:secret@host/v1", "credentials"),
        ("http://host/v1?x=1", "query"),
    ],
)
def test_malformed_urls_are_invalid_input(text, reason):
    with pytest.raises(InvalidInput) as info:
        parse_base_url(text)
    (problem,) = info.value.problems
    assert reason in problem.message
    assert "secret" not in problem.message


def test_a_path_that_is_no_file_and_no_url_is_invalid(tmp_path):
    with pytest.raises(InvalidInput) as info:
        resolve_target(str(tmp_path / "missing.yml"))
    assert "neither a URL nor an inventory" in info.value.problems[0].message
    with pytest.raises(InvalidInput):
        resolve_target("http://127.0.0.1/v1", api_key_env="NOT-A-NAME")


def test_the_key_comes_from_the_named_variable_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("MY_BENCH_KEY", KEY)
    target = resolve_target("http://127.0.0.1:9/v1", api_key_env="MY_BENCH_KEY")
    assert target.api_key == KEY
    assert target.as_dict() == {
        "base_url": "http://127.0.0.1:9/v1",
        "source": "url",
        "api_key_sent": True,
        "api_key_source": "env MY_BENCH_KEY",
    }
    assert KEY not in repr(target)
    monkeypatch.delenv("PROVISION_API_KEY", raising=False)
    assert resolve_target("http://127.0.0.1:9/v1").api_key is None


# --- the inventory's gateway ----------------------------------------------------------------


def fake_lab(tmp_path: Path, gateway_address: str) -> Path:
    """A lab state dir as `provision lab up` leaves it (hosts.yml from render_inventory)."""
    from provision.lab.state import render_inventory

    lab = tmp_path / "lab"
    lab.mkdir()
    hosts = {"lab-node1": "172.30.9.2", "lab-node2": "172.30.9.3", "lab-gw": gateway_address}
    (lab / "hosts.yml").write_text(render_inventory(hosts, lab / "id_ed25519", "-o X=y"))
    return lab


def test_the_lab_inventory_resolves_to_its_gateway(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_LAB_DIR", str(fake_lab(tmp_path, "172.30.9.44")))
    # ansible_host is a lookup of the lab state dir's hosts.yml: Ansible's templating ran
    assert gateway_from_inventory(LAB) == ("http://172.30.9.44/v1", None)


def test_a_lab_that_was_never_started_is_invalid_input(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVISION_LAB_DIR", str(tmp_path / "never-started"))
    with pytest.raises(InvalidInput) as info:
        gateway_from_inventory(LAB)
    (problem,) = info.value.problems
    assert problem.path == "lab-gw.ansible_host"
    assert "hosts.yml" in problem.message
    assert "provision lab up" in problem.fix


def test_tls_port_and_the_first_gateway_key_from_templated_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TEST_GW_KEY", KEY)
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        """
all:
  vars:
    gw_port: 8443
    provision_gateway: {port: "{{ gw_port }}", tls: {certificate: /etc/c.pem, key: /etc/k.pem}}
    gateway_api_keys:
      - {name: bench, key: "{{ lookup('ansible.builtin.env', 'BENCH_TEST_GW_KEY') }}"}
      - {name: other, key: other-key-0123456789}
  children:
    gateway:
      hosts:
        gw1: {ansible_host: "{{ '10.1.2.' ~ (3 + 4) }}"}
        gw2: {ansible_host: 10.1.2.8}
"""
    )
    assert gateway_from_inventory(inventory) == ("https://10.1.2.7:8443/v1", KEY)
    monkeypatch.delenv("PROVISION_API_KEY", raising=False)
    from_inventory = resolve_target(str(inventory))
    assert (from_inventory.api_key, from_inventory.key_source) == (KEY, "inventory gateway_api_keys[0]")
    monkeypatch.setenv("PROVISION_API_KEY", "env-key-wins-0123456789")
    assert resolve_target(str(inventory)).key_source == "env PROVISION_API_KEY"


def test_a_gateway_without_ansible_host_is_its_name_and_port_443_is_implied(tmp_path):
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        "all:\n  vars:\n    provision_gateway: {port: 443, tls: {certificate: c, key: k}}\n"
        "  children:\n    gateway:\n      hosts:\n        gw.example.internal:\n"
    )
    assert gateway_from_inventory(inventory) == ("https://gw.example.internal/v1", None)


def test_an_inventory_without_a_gateway_is_invalid_input(tmp_path):
    inventory = tmp_path / "fleet.yml"
    inventory.write_text("all:\n  hosts:\n    node1: {ansible_host: 10.0.0.9}\n")
    with pytest.raises(InvalidInput) as info:
        gateway_from_inventory(inventory)
    assert "no host in group 'gateway'" in info.value.problems[0].message
    assert "http://HOST:PORT/v1" in info.value.problems[0].fix


# --- statistics ----------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks():
    values = [float(v) for v in range(10, 0, -1)]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile(values, 100) == 10.0
    assert percentile([0.2, 0.4], 95) == pytest.approx(0.39)
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_level_statistics_from_fixed_samples():
    samples = [
        Sample(True, latency_s=1.0, ttft_s=0.2, output_tokens=81, usage_reported=True),
        Sample(True, latency_s=2.0, ttft_s=0.4, output_tokens=33, usage_reported=True),
        Sample(True, latency_s=3.0, ttft_s=0.6, output_tokens=1, usage_reported=True),
        Sample(False, latency_s=0.1, error="HTTP 503"),
        Sample(False, latency_s=5.0, error="timeout (5s)"),
        Sample(False, latency_s=0.1, error="HTTP 503"),
    ]
    level = Level(concurrency=4, planned=8, samples=samples, wall_s=2.3, cut=2)
    assert level.errors == 3
    assert level.error_kinds == {"HTTP 503": 2, "timeout (5s)": 1}
    assert level.output_tokens == 115
    assert level.total_tps == pytest.approx(50.0)  # 115 tokens / 2.3 s
    assert samples[0].decode_tps == pytest.approx(100.0)  # 80 tokens after the first in 0.8 s
    assert samples[1].decode_tps == pytest.approx(20.0)
    assert samples[2].decode_tps is None  # one token: no decode rate
    assert level.stat("tps", 50) == pytest.approx(60.0)
    assert level.stat("ttft", 50) == pytest.approx(0.4)
    assert level.stat("ttft", 95) == pytest.approx(0.58)
    assert level.stat("latency", 95) == pytest.approx(2.9)
    assert level.token_count == "usage"
    data = level.as_dict()
    assert (data["requests"], data["completed"], data["errors"], data["cut_by_duration_cap"]) == (8, 3, 3, 2)
    assert data["total_tokens_per_s"] == 50.0


def test_token_count_says_where_the_numbers_came_from():
    usage = Sample(True, 1.0, 0.1, 10, usage_reported=True)
    chunks = Sample(True, 1.0, 0.1, 10, usage_reported=False)
    assert Level(1, 2, [chunks, chunks], 1.0).token_count == "chunks"
    assert Level(1, 2, [usage, chunks], 1.0).token_count == "mixed"
    failed = Level(1, 1, [Sample(False, 0.1, error="HTTP 500")], 1.0)
    assert failed.total_tps is None and failed.as_dict()["token_count"] is None


def test_content_and_reasoning_deltas_count_role_and_empty_ones_do_not():
    assert _chunk_tokens({"choices": [{"delta": {"role": "assistant", "content": None}}]}) == 0
    assert _chunk_tokens({"choices": [{"delta": {"content": ""}}]}) == 0
    assert _chunk_tokens({"choices": [{"delta": {"content": " c"}}]}) == 1
    assert _chunk_tokens({"choices": [{"delta": {"reasoning_content": "hm"}}]}) == 1
    assert _chunk_tokens({"choices": [], "usage": {"completion_tokens": 9}}) == 0


# --- the command: bad input (2) and a target that is not there (1) -------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_options_exit_2_and_name_every_problem():
    result = CliRunner().invoke(
        app, ["bench", "http://127.0.0.1:9/v1", "--concurrency", "1,0", "--requests", "0"]
    )
    assert result.exit_code == 2
    assert "--concurrency: '0' is not a positive integer" in result.stderr
    assert "--requests" in result.stderr and "fix:" in result.stderr
    assert "Traceback" not in result.output


def test_bad_input_as_json_and_a_chart_that_is_not_png():
    result = CliRunner().invoke(app, ["bench", "ftp://x/v1", "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and "scheme" in data["errors"][0]["message"]
    result = CliRunner().invoke(app, ["bench", "http://127.0.0.1:9/v1", "--chart", "out.svg"])
    assert result.exit_code == 2 and "not a .png file" in result.stderr


def test_an_unreachable_target_exits_1_with_the_fix(monkeypatch):
    monkeypatch.setenv("PROVISION_API_KEY", KEY)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    result = CliRunner().invoke(app, ["bench", url, "--concurrency", "1", "--timeout", "5"])
    assert result.exit_code == 1
    assert f"cannot reach {url}" in result.stderr
    assert "fix: check that the server runs" in result.stderr
    assert "Traceback" not in result.output and KEY not in result.output
    as_json = CliRunner().invoke(app, ["bench", url, "--concurrency", "1", "--timeout", "5", "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["target"]["api_key_sent"] is True
    assert "cannot reach" in data["error"]["message"] and KEY not in as_json.stdout


def test_target_repr_hides_the_key():
    assert "s3cr3t" not in repr(Target("http://h/v1", "url", "s3cr3t-key-0123456789", "env X"))


def test_the_table_keeps_brackets_of_ipv6_hosts_and_model_names():
    from rich.console import Console

    from provision.bench import BenchResult, make_settings, print_result

    target = Target("http://[fd00::5]:8080/v1", "url")
    level = Level(1, 2, [Sample(True, 1.0, 0.25, 9, True), Sample(False, 0.1, error="HTTP 500 [x]")], 1.0)
    result = BenchResult(target, "qwen[awq]", make_settings("1"), [level])
    console = Console(record=True, width=200)
    print_result(console, result)
    text = console.export_text()
    assert "qwen[awq] @ [fd00::5]:8080" in text
    assert "HTTP 500 [x] x1" in text
    assert "250 ms" in text and "9.0" in text  # TTFT and total t/s of the one good request


# --- the protocol edge cases, against a scripted OpenAI-style server on loopback -------------
# llama.cpp (test_bench_llamacpp.py) always sends usage and never fails; this server plays the
# other servers: one that rejects stream_options (tokens then counted from chunks), one that
# fails every other request with 503.


class _Scripted(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted"}]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Scripted.calls.append(body)
        if "stream_options" in body:
            self._send(400, b'{"error": {"message": "unknown field stream_options"}}')
            return
        if body["max_tokens"] > 1 and len(_Scripted.calls) % 2 == 0:
            self._send(503, b'{"error": {"message": "busy"}}')
            return
        chunks = [{"choices": [{"delta": {"role": "assistant"}}]}]
        chunks += [{"choices": [{"delta": {"content": f"t{i}"}}]} for i in range(3)]
        text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self._send(200, text.encode(), "text/event-stream")


@pytest.fixture
def scripted_server():
    _Scripted.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_without_usage_tokens_are_counted_from_chunks_and_503s_are_errors(scripted_server, monkeypatch):
    monkeypatch.delenv("PROVISION_API_KEY", raising=False)
    argv = ["bench", scripted_server, "--concurrency", "1", "--requests", "6", "--json"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1  # some requests failed
    data = json.loads(result.stdout)
    assert data["model"] == "scripted" and data["usage_requested"] is False
    (level,) = data["levels"]
    assert level["errors"] + level["completed"] == 6 and level["errors"] >= 2
    assert level["error_kinds"] == {"HTTP 503": level["errors"]}
    assert level["token_count"] == "chunks"
    assert level["output_tokens"] == 3 * level["completed"]  # the role-only chunk is no token
    # the preflight tried stream_options once, then every request went without it
    assert "stream_options" in _Scripted.calls[0]
    assert all("stream_options" not in call for call in _Scripted.calls[1:])


class _ClosesKeptAlive(BaseHTTPRequestHandler):
    """Keep-alive (HTTP/1.1), but the second POST on a connection is dropped without an answer,
    as llama.cpp's server sometimes does to a connection a client kept alive."""

    protocol_version = "HTTP/1.1"
    dropped: ClassVar[int] = 0

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.posts = 0

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(json.dumps({"object": "list", "data": [{"id": "keepalive"}]}).encode(), "application/json")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.posts += 1
        if self.posts == 2:
            _ClosesKeptAlive.dropped += 1
            self.close_connection = True  # nothing sent: the client sees the connection close
            return
        chunk = {"choices": [{"delta": {"content": "t"}}], "usage": {"completion_tokens": 1}}
        self._send(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(), "text/event-stream")


def test_a_request_on_a_closed_kept_alive_connection_is_resent_and_counted(monkeypatch):
    monkeypatch.delenv("PROVISION_API_KEY", raising=False)
    _ClosesKeptAlive.dropped = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosesKeptAlive)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        result = CliRunner().invoke(app, ["bench", url, "--concurrency", "1", "--requests", "4", "--json"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert result.exit_code == 0, result.output
    (level,) = json.loads(result.stdout)["levels"]
    assert level["completed"] == 4 and level["errors"] == 0
    # requests the server dropped unanswered were sent again (httpx itself notices some closed
    # connections before sending on them, so not every drop costs a resend)
    assert 1 <= level["resent"] <= _ClosesKeptAlive.dropped
