"""Measures what `sextant serve` does with its spans when the OTLP collector stalls.

The harness starts, all on 127.0.0.1:

* an instant OpenAI-compatible model (every chat completion is a fixed "ok"),
* an OTLP/HTTP collector it controls: `stall` accepts connections and never answers, `accept`
  answers 200 and records every span id it receives (decoding the protobuf itself), `down` is
  a port nothing listens on,
* `sextant serve` with one agent on that model, exporting to the collector over http/protobuf.

It drives N turns (`POST /v1/agents/instant/invoke`) at C concurrent, counts the spans in the
local trace store (`<data>/traces.db`) right after the turns and again `--settle` seconds later
(the store is written in batches), and then, with `--recover`, lets the collector answer and
waits until it has received every span id the local store holds (reporting ids missing and ids
received more than once). With `--kill`, sextant is SIGKILLed right after the turns instead
(before the second count), the collector comes up, and sextant restarts on the same data
directory: what reaches the collector then is what survived the crash. With
`--status-before-recover`, `sextant telemetry status` runs on the same data directory just
before the recovery, and its output is in the report.

Run from the repository root (stdlib only; build the binary first):

    python3 scripts/telemetry_stall.py --turns 3000 --collector stall --recover 120
    python3 scripts/telemetry_stall.py --turns 200 --collector accept
    python3 scripts/telemetry_stall.py --turns 3000 --collector down --kill --recover 120 --json

The binary is `--binary`, else `$CARGO_TARGET_DIR` (default ~/.cache/sextant-ci/target) +
/release/sextant, else /debug/sextant. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import concurrent.futures
import gzip
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

AGENT = "instant"
AGENT_FILE = f"""\
name = "{AGENT}"
description = "Answers at once, from the harness's scripted model."
system_prompt = "You are a test agent."
tools = []
max_steps = 1

[model]
provider = "openai"
name = "{AGENT}"
temperature = 0.0
"""

# The colours of sextant's log lines.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# How often blocked sockets look at the collector's mode and the harness polls.
POLL_SECONDS = 0.5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- The instant model -----------------------------------------------------------------------


def completion() -> dict:
    return {
        "id": "chatcmpl-instant",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": AGENT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }


class InstantModelHandler(http.server.BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` and `GET /v1/models`, answered at once."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            models = {"object": "list", "data": [{"id": AGENT, "object": "model", "created": 0, "owned_by": "harness"}]}
            self.send_json(200, models)
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") == "/v1/chat/completions":
            self.send_json(200, completion())
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def start_instant_model() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), InstantModelHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="instant-model", daemon=True).start()
    return server


# --- OTLP protobuf, by its wire format --------------------------------------------------------


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def protobuf_fields(data: bytes):
    """Yields (field number, wire type, value) of a message; value is an int or bytes."""
    at = 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, at = read_varint(data, at)
        elif wire_type == 1:
            value, at = data[at : at + 8], at + 8
        elif wire_type == 2:
            length, at = read_varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire_type == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if at > len(data):
            raise ValueError("truncated protobuf message")
        yield number, wire_type, value


def embedded(message: bytes, number: int) -> list[bytes]:
    """The length-delimited values of field `number`."""
    return [value for field, wire_type, value in protobuf_fields(message) if field == number and wire_type == 2]


def span_ids_of_export(request: bytes) -> list[str]:
    """The span ids (hex) of an ExportTraceServiceRequest: resource_spans (1) > scope_spans (2)
    > spans (2) > span_id (2)."""
    return [
        span_id.hex()
        for resource_spans in embedded(request, 1)
        for scope_spans in embedded(resource_spans, 2)
        for span in embedded(scope_spans, 2)
        for span_id in embedded(span, 2)
    ]


# --- The controllable collector --------------------------------------------------------------


class ConnectionClosed(Exception):
    pass


class HttpRequestReader:
    """Reads HTTP/1.1 requests off a socket whose reads time out every POLL_SECONDS."""

    def __init__(self, conn: socket.socket, collector: Collector):
        self.conn = conn
        self.collector = collector
        self.buffer = b""

    def receive(self) -> bool:
        """One read: whether it got bytes (False: it timed out)."""
        try:
            data = self.conn.recv(65536)
        except TimeoutError:
            if not self.collector.listening:
                raise ConnectionClosed from None
            return False
        if not data:
            raise ConnectionClosed
        self.buffer += data
        return True

    def fill(self) -> None:
        while not self.receive():
            pass

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self.fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_chunked(self) -> bytes:
        body = b""
        while size := int(self.read_until(b"\r\n").split(b";")[0], 16):
            body += self.read_exact(size)
            self.read_exact(2)
        while self.read_until(b"\r\n"):  # trailers, up to the empty line
            pass
        return body

    def read_request(self) -> tuple[str, str, dict[str, str], bytes]:
        head = self.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self.read_chunked()
        else:
            body = self.read_exact(int(headers.get("content-length", 0)))
        if headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return method, path, headers, body


class CollectorServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, collector: Collector):
        self.collector = collector
        super().__init__(("127.0.0.1", port), CollectorConnection)


class CollectorConnection(socketserver.BaseRequestHandler):
    """One connection, a thread each. Stalling, it reads and discards and never answers; once the
    collector answers again, a connection that stalled is closed (its client gave up on it) and
    new ones are answered."""

    def handle(self) -> None:
        collector: Collector = self.server.collector
        self.request.settimeout(POLL_SECONDS)
        reader = HttpRequestReader(self.request, collector)
        stalled = False
        try:
            while collector.listening:
                if collector.mode == "stall":
                    if not stalled:
                        collector.count("stalled_connections")
                    stalled = True
                    reader.receive()
                    reader.buffer = b""
                    continue
                if stalled:
                    return
                request = reader.read_request()
                if collector.mode == "stall":
                    continue
                self.answer(collector, *request)
        except (ConnectionClosed, ConnectionError):
            pass

    def answer(self, collector: Collector, method: str, path: str, headers: dict, body: bytes) -> None:
        status = "200 OK"
        if method == "POST" and path.startswith("/v1/traces"):
            try:
                collector.record(span_ids_of_export(body))
            except (ValueError, IndexError, OSError):
                collector.count("decode_errors")
                status = "400 Bad Request"
        elif method == "POST" and path.startswith("/v1/metrics"):
            collector.count("metric_requests")
        else:
            status = "404 Not Found"
        self.request.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n".encode()
        )


class Collector:
    """An OTLP/HTTP collector whose mode (`stall` or `accept`) the harness switches at runtime."""

    def __init__(self, mode: str):
        self.mode = mode
        self.listening = False
        self.server: CollectorServer | None = None
        self.lock = threading.Lock()
        self.span_counts: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()

    def listen(self, port: int) -> int:
        self.server = CollectorServer(port, self)
        self.listening = True
        threading.Thread(target=self.server.serve_forever, name="collector", daemon=True).start()
        return self.server.server_address[1]

    def close(self) -> None:
        self.listening = False
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def record(self, span_ids: list[str]) -> None:
        with self.lock:
            self.span_counts.update(span_ids)
            self.counters["trace_requests"] += 1

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] += 1

    def received(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(self.span_counts)


def answer_from_now_on(collector: Collector, port: int) -> None:
    """Switches the collector to `accept`, listening on `port` if it was down."""
    collector.mode = "accept"
    if not collector.listening:
        collector.listen(port)


def reserve_port() -> int:
    """A free port, closed again: nothing listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- sextant serve ---------------------------------------------------------------------------


def default_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/sextant-ci/target")
    release = target / "release/sextant"
    return release if release.exists() else target / "debug/sextant"


def write_workdir(root: Path) -> None:
    (root / "agents").mkdir()
    (root / "agents" / f"{AGENT}.toml").write_text(AGENT_FILE)
    # An empty user file, so that no ./sextant.toml or ~/.config/sextant/sextant.toml applies.
    (root / "sextant.toml").write_text("")


def serve_environment(root: Path, model_port: int, collector_port: int, concurrency: int) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SEXTANT_", "OTEL_"))}
    return inherited | {
        "SEXTANT_DATA_DIR": str(root / "data"),
        "SEXTANT_PROVIDERS__OPENAI__BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "OPENAI_API_KEY": "unused",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "SEXTANT_SERVE__AGENTS_DIR": str(root / "agents"),
        "SEXTANT_SERVE__DEFAULT_AGENT": AGENT,
        "SEXTANT_SERVE__MAX_CONCURRENT_REQUESTS": str(max(8, concurrency)),
    }


class Serve:
    """One `sextant serve` process, its stdout and stderr in a log file."""

    running: list[subprocess.Popen] = []

    def __init__(self, binary: Path, root: Path, env: dict[str, str], port: int, log_path: Path):
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        command = [str(binary), "--config", str(root / "sextant.toml"), "serve", "--addr", f"127.0.0.1:{port}"]
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        Serve.running.append(self.process)

    def log_tail(self, lines: int = 30) -> list[str]:
        text = ANSI_ESCAPE.sub("", self.log_path.read_text(errors="replace"))
        return text.splitlines()[-lines:]

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sextant serve exited with {self.process.returncode}:\n" + "\n".join(self.log_tail())
                )
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=5):
                    return
            except urllib.error.HTTPError as error:
                if json.load(error).get("status") == "failed":
                    raise RuntimeError("sextant serve failed to load its agent:\n" + "\n".join(self.log_tail()))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"sextant serve not ready after {timeout:.0f} s:\n" + "\n".join(self.log_tail()))

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then its exit code; None if it had to be killed after `timeout`."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.finish(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> int:
        """SIGKILL, then its exit code."""
        self.process.kill()
        return self.finish(None)

    def finish(self, timeout: float | None) -> int:
        code = self.process.wait(timeout)
        Serve.running.remove(self.process)
        return code


def telemetry_status(binary: Path, root: Path, env: dict[str, str]) -> dict:
    """`sextant telemetry status` on the data directory of `env`: its exit code and output."""
    command = [str(binary), "--config", str(root / "sextant.toml"), "telemetry", "status"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    return {
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - started, 2),
        "stdout": ANSI_ESCAPE.sub("", done.stdout),
        "stderr": ANSI_ESCAPE.sub("", done.stderr),
    }


def kill_running_serves() -> None:
    for process in Serve.running:
        process.kill()
        process.wait()
    Serve.running.clear()


# --- Turns -----------------------------------------------------------------------------------


def invoke(base: str, number: int) -> tuple[str | None, str | None]:
    """One turn: (its trace id, the error if it failed)."""
    body = json.dumps({"input": f"turn {number}: say ok"}).encode()
    request = urllib.request.Request(
        f"{base}/v1/agents/{AGENT}/invoke", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response).get("trace_id"), None
    except urllib.error.HTTPError as error:
        return error.headers.get("x-trace-id"), f"HTTP {error.code}"
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return None, type(error).__name__


def drive_turns(base: str, turns: int, concurrency: int) -> dict:
    trace_ids: set[str] = set()
    errors: collections.Counter[str] = collections.Counter()
    started = time.monotonic()
    step = max(1, turns // 10)
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(invoke, base, n) for n in range(turns)]
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            trace_id, error = future.result()
            if trace_id:
                trace_ids.add(trace_id)
            if error:
                errors[error] += 1
            if done % step == 0:
                elapsed = time.monotonic() - started
                log(f"turns {done}/{turns}  {done / elapsed:.1f}/s  failed {sum(errors.values())}")
    seconds = time.monotonic() - started
    return {
        "turns": turns,
        "failed": sum(errors.values()),
        "errors": dict(errors),
        "seconds": round(seconds, 2),
        "turns_per_s": round(turns / seconds, 1),
        "trace_ids": trace_ids,
    }


# --- Counting --------------------------------------------------------------------------------


def stored_spans(store: Path) -> list[tuple[str, str]]:
    """(trace id, span id) of every span in the local trace store."""
    if not store.exists():
        return []
    with sqlite3.connect(store, timeout=30) as db:
        return db.execute("SELECT trace_id, span_id FROM spans").fetchall()


def store_counts(spans: list[tuple[str, str]], turn_trace_ids: set[str]) -> dict:
    per_trace = collections.Counter(trace_id for trace_id, _ in spans if trace_id in turn_trace_ids)
    sizes = collections.Counter(per_trace.values())
    spans_per_turn = sizes.most_common(1)[0][0] if sizes else 0
    turn_spans = sum(per_trace.values())
    return {
        "spans": len(spans),
        "distinct_span_ids": len({span_id for _, span_id in spans}),
        "turn_traces_stored": len(per_trace),
        "turn_traces": len(turn_trace_ids),
        "spans_per_turn": spans_per_turn,
        "spans_per_turn_range": [min(per_trace.values(), default=0), max(per_trace.values(), default=0)],
        "other_spans": len(spans) - turn_spans,
        # What the turns produced if each made as many spans as most stored turns have.
        "turn_spans_produced_estimate": spans_per_turn * len(turn_trace_ids),
    }


def delivery(store_ids: set[str], received: collections.Counter[str]) -> dict:
    return {
        "distinct_ids_received": len(received),
        "spans_received": sum(received.values()),
        "missing": len(store_ids - received.keys()),
        "not_in_store": len(received.keys() - store_ids),
        "duplicates": sum(count - 1 for count in received.values() if count > 1),
        "ids_received_more_than_once": sum(1 for count in received.values() if count > 1),
    }


def wait_for_delivery(store: Path, collector: Collector, seconds: float) -> float | None:
    """Polls every second until the collector holds every span id of the local store; the
    seconds it took, or None when `seconds` ran out first."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        store_ids = {span_id for _, span_id in stored_spans(store)}
        state = delivery(store_ids, collector.received())
        log(
            f"recover {elapsed:5.0f} s: collector has {len(store_ids) - state['missing']}/{len(store_ids)} "
            f"store span ids (missing {state['missing']}, duplicates {state['duplicates']})"
        )
        if store_ids and state["missing"] == 0:
            return round(elapsed, 1)
        if elapsed >= seconds:
            return None
        time.sleep(1)


NUMBER_BEFORE = re.compile(r"(\d+)\s+(?:[\w()-]+\s+){0,4}?(dropped|spool\w*)", re.IGNORECASE)
NUMBER_AFTER = re.compile(r"(dropped|spool\w*)\s*[=:]\s*(\d+)", re.IGNORECASE)


def dropped_and_spooled(logs: list[Path]) -> dict:
    """The lines of sextant's stderr that mention dropped or spooled spans, and the number each
    gives (the first number next to the word)."""
    lines, numbers = [], collections.defaultdict(list)
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            line = ANSI_ESCAPE.sub("", line).strip()
            if not re.search(r"dropped|spool", line, re.IGNORECASE):
                continue
            lines.append(line)
            found = {}
            for match in NUMBER_BEFORE.finditer(line):
                found.setdefault(match[2].lower()[:4], int(match[1]))
            for match in NUMBER_AFTER.finditer(line):
                found.setdefault(match[1].lower()[:4], int(match[2]))
            for word, number in found.items():
                numbers["dropped" if word == "drop" else "spooled"].append(number)
    return {"numbers": dict(numbers), "lines": lines}


# --- The run ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=default_binary(), help="the sextant binary")
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--collector", choices=["stall", "accept", "down"], default="stall", help="the collector during the turns"
    )
    parser.add_argument(
        "--recover",
        type=float,
        metavar="SECONDS",
        help="after the turns, let the collector answer and wait up to SECONDS for every stored span id",
    )
    parser.add_argument(
        "--kill", action="store_true", help="SIGKILL sextant after the turns and restart it (implies --recover 60)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="count the local store again this long after the turns (after the kill with --kill), before any recovery",
    )
    parser.add_argument(
        "--status-before-recover",
        action="store_true",
        help="run `sextant telemetry status` on the data directory after the turns, before any recovery",
    )
    parser.add_argument("--ready-timeout", type=float, default=120, help="seconds to wait for /readyz")
    parser.add_argument("--stop-timeout", type=float, default=180, help="seconds SIGTERM may take before SIGKILL")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if args.kill and args.recover is None:
        args.recover = 60.0
    return args


def run(args: argparse.Namespace, root: Path) -> dict:
    write_workdir(root)
    store = root / "data" / "traces.db"
    model = start_instant_model()
    collector = Collector("accept" if args.collector == "down" else args.collector)
    collector_port = reserve_port() if args.collector == "down" else collector.listen(0)
    env = serve_environment(root, model.server_address[1], collector_port, args.concurrency)
    serve_port = reserve_port()
    logs = [root / "serve.log"]
    report: dict = {"binary": str(args.binary), "collector": args.collector, "workdir": str(root)}
    try:
        serve = Serve(args.binary, root, env, serve_port, logs[0])
        serve.wait_ready(args.ready_timeout)
        log(f"sextant serve ready on {serve.base}; collector ({args.collector}) on port {collector_port}")

        turns = drive_turns(serve.base, args.turns, args.concurrency)
        turn_trace_ids = turns.pop("trace_ids")
        report["turns"] = turns
        report["store_after_turns"] = store_counts(stored_spans(store), turn_trace_ids)
        if args.kill:
            report["killed_exit_code"] = serve.kill()
            log("sextant serve killed")
        time.sleep(args.settle)
        report["store_settled"] = store_counts(stored_spans(store), turn_trace_ids)
        if args.status_before_recover:
            report["status_before_recover"] = telemetry_status(args.binary, root, env)
            log("telemetry status before the recovery:\n" + report["status_before_recover"]["stdout"].rstrip())

        recover_started = time.monotonic()
        if args.kill:
            log("restarting sextant serve with the collector answering")
            answer_from_now_on(collector, collector_port)
            logs.append(root / "serve-restarted.log")
            serve = Serve(args.binary, root, env, serve_port, logs[-1])
            serve.wait_ready(args.ready_timeout)
            report["restart_ready_seconds"] = round(time.monotonic() - recover_started, 2)
        elif args.recover is not None:
            log("collector answering now")
            answer_from_now_on(collector, collector_port)
        if args.recover is not None:
            report["delivered_all_after_s"] = wait_for_delivery(store, collector, args.recover)
            report["recover_seconds"] = round(time.monotonic() - recover_started, 2)

        log("stopping sextant serve (SIGTERM)")
        stop_started = time.monotonic()
        report["exit_code"] = serve.stop(args.stop_timeout)
        report["stop_seconds"] = round(time.monotonic() - stop_started, 2)
        report["stderr_tail"] = serve.log_tail()
    finally:
        kill_running_serves()
        collector.close()
        model.shutdown()

    spans = stored_spans(store)
    report["store_final"] = store_counts(spans, turn_trace_ids)
    report["collector_received"] = delivery({span_id for _, span_id in spans}, collector.received())
    report["collector_requests"] = dict(collector.counters)
    report["stderr_dropped_spooled"] = dropped_and_spooled(logs)
    return report


def print_report(report: dict) -> None:
    turns = report["turns"]
    print(f"binary:              {report['binary']}")
    print(f"collector:           {report['collector']} during the turns")
    print(
        f"turns:               {turns['turns']} in {turns['seconds']} s = {turns['turns_per_s']}/s, "
        f"failed {turns['failed']} {turns['errors'] or ''}"
    )
    for name in ("store_after_turns", "store_settled", "store_final"):
        store = report[name]
        print(
            f"{name + ':':<21}{store['spans']} spans, {store['distinct_span_ids']} distinct span ids; "
            f"turn traces {store['turn_traces_stored']}/{store['turn_traces']}, {store['spans_per_turn']} spans/turn "
            f"(range {store['spans_per_turn_range']}), other spans {store['other_spans']}; "
            f"turn spans produced ≈ {store['turn_spans_produced_estimate']}"
        )
    if "killed_exit_code" in report:
        print(
            f"killed:              exit code {report['killed_exit_code']}, restarted, "
            f"ready after {report['restart_ready_seconds']} s"
        )
    if "status_before_recover" in report:
        status = report["status_before_recover"]
        print(f"telemetry status:    exit code {status['exit_code']} after {status['seconds']} s")
        for line in (status["stdout"] + status["stderr"]).splitlines():
            print(f"    {line}")
    if "delivered_all_after_s" in report:
        seconds = report["delivered_all_after_s"]
        print(
            f"delivered all:       {'after ' + str(seconds) + ' s' if seconds is not None else 'no, not in time'} "
            f"(recovery phase {report['recover_seconds']} s)"
        )
    received = report["collector_received"]
    print(
        f"collector:           {received['distinct_ids_received']} distinct ids ({received['spans_received']} spans), "
        f"missing {received['missing']}, duplicates {received['duplicates']} "
        f"(on {received['ids_received_more_than_once']} ids), not in store {received['not_in_store']}; "
        f"requests {report['collector_requests']}"
    )
    print(f"serve exit:          {report['exit_code']} after {report['stop_seconds']} s")
    print(f"dropped/spooled:     {report['stderr_dropped_spooled']['numbers'] or 'none mentioned'}")
    for line in report["stderr_dropped_spooled"]["lines"]:
        print(f"    {line}")
    print("stderr of the last sextant serve (last lines):")
    for line in report["stderr_tail"]:
        print(f"    {line}")


def main() -> int:
    args = parse_args()
    if not args.binary.exists():
        log(f"no sextant binary at {args.binary}; build it or pass --binary")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(kill_running_serves)
    root = Path(tempfile.mkdtemp(prefix="telemetry-stall-"))
    try:
        report = run(args, root)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
