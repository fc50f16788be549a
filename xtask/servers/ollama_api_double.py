"""TEST DOUBLE of the Ollama HTTP API -- this is not Ollama.

No Ollama server can be installed on the test machines, so `cargo xtask test|servers` runs this
stand-in. It serves the subset of the Ollama REST API that the Rust crate `ollama-rs` 0.3.6 uses for
chat, and answers every chat request by translating it to the OpenAI-compatible API of the real
llama.cpp server that xtask starts beside it (`--upstream http://127.0.0.1:PORT/v1`), then
translating the answer back. The model really runs; only the wire format is translated here.

Endpoints:
  GET  /                 "Ollama is running"
  GET  /api/version      {"version": ...}
  GET  /api/tags         the one model this double serves
  POST /api/show         model details and capabilities
  POST /api/chat         non-streaming (one JSON object) and streaming (NDJSON, one object a line)
                         with `tools`, `tool_calls` in the answer message
                         (`{"function": {"name": ..., "arguments": {object}}}`), `done`,
                         `done_reason`, `prompt_eval_count`, `eval_count` and the four durations (ns)
  POST /api/embed        `{"model", "input": str | [str]}` -> `{"model", "embeddings", "prompt_eval_count"}`,
                         computed by the llama.cpp embeddings server given as `--embed-upstream`
Anything else answers 404 (or 501 for known Ollama endpoints outside this subset).

Deliberate difference from Ollama, for deterministic tests with a 135M model: when a request offers
`tools` and its last message is the user's, the double asks llama.cpp for a forced tool call
(`tool_choice: "required"` plus the chat-template switch `force_tool_call`, see chatml_tools.jinja),
so the first answer of an agent turn is a tool call and the answer after the tool results is text.
`--no-force-tool-call` (or OLLAMA_DOUBLE_FORCE_TOOL_CALL=0) turns that off (plain `auto`).

Python standard library only. Usage:
  ollama_api_double.py --port PORT --upstream http://127.0.0.1:Q/v1 --upstream-model ID
                       [--model-name smollm2:135m] [--model-file PATH.gguf]
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OLLAMA_VERSION = "0.12.6"
ARGS = None


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def ms_to_ns(ms) -> int:
    try:
        return int(float(ms) * 1_000_000)
    except (TypeError, ValueError):
        return 0


def model_matches(name: str) -> bool:
    if not name:
        return True
    served = ARGS.model_name
    strip = lambda n: n[: -len(":latest")] if n.endswith(":latest") else n
    return strip(name) == strip(served) or name == ARGS.upstream_model


# ---------------------------------------------------------------- Ollama -> OpenAI request


def to_openai_messages(messages):
    out = []
    pending_ids = []  # ids of the last assistant message's tool calls, consumed by tool messages
    counter = 0
    for m in messages:
        role = m.get("role", "user")
        content = m.get("content") or ""
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            pending_ids = []
            for tc in m["tool_calls"]:
                fn = tc.get("function", {})
                args = fn.get("arguments", fn.get("parameters", {}))
                counter += 1
                call_id = tc.get("id") or f"call_{counter}"
                pending_ids.append(call_id)
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": fn.get("name", ""),
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                )
            out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        elif role == "tool":
            call_id = m.get("tool_call_id") or (pending_ids.pop(0) if pending_ids else f"call_{counter}")
            out.append({"role": "tool", "tool_call_id": call_id, "content": content})
        else:
            out.append({"role": role, "content": content})
    return out


def to_openai_request(req, stream: bool):
    body = {
        "model": ARGS.upstream_model,
        "messages": to_openai_messages(req.get("messages", [])),
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    opts = req.get("options") or {}
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("seed", "seed"),
        ("stop", "stop"),
        ("num_predict", "max_tokens"),
        ("repeat_penalty", "repeat_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
        ("min_p", "min_p"),
    ):
        if opts.get(src) is not None:
            body[dst] = opts[src]
    if body.get("max_tokens") is not None and body["max_tokens"] < 0:
        del body["max_tokens"]
    fmt = req.get("format")
    if fmt == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": fmt},
        }
    tools = req.get("tools") or []
    if tools:
        body["tools"] = [
            {"type": t.get("type", "function"), "function": t.get("function", {})} for t in tools
        ]
        msgs = req.get("messages") or []
        if ARGS.force_tool_call and msgs and msgs[-1].get("role") == "user":
            body["tool_choice"] = "required"
            body["parallel_tool_calls"] = False
            body["chat_template_kwargs"] = {"force_tool_call": True}
    return body


# ---------------------------------------------------------------- OpenAI -> Ollama answer


def ollama_tool_calls(openai_calls):
    out = []
    for tc in openai_calls or []:
        fn = tc.get("function", {})
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            args = {"_raw": raw}
        out.append({"function": {"name": fn.get("name", ""), "arguments": args}})
    return out


def done_reason(finish_reason) -> str:
    return "length" if finish_reason == "length" else "stop"


def final_fields(usage, timings, started_ns, finish_reason):
    usage = usage or {}
    timings = timings or {}
    prompt_ns = ms_to_ns(timings.get("prompt_ms"))
    eval_ns = ms_to_ns(timings.get("predicted_ms"))
    return {
        "done": True,
        "done_reason": done_reason(finish_reason),
        "total_duration": max(time.monotonic_ns() - started_ns, prompt_ns + eval_ns),
        "load_duration": 0,
        "prompt_eval_count": int(usage.get("prompt_tokens", 0)),
        "prompt_eval_duration": prompt_ns,
        "eval_count": int(usage.get("completion_tokens", 0)),
        "eval_duration": eval_ns,
    }


# ---------------------------------------------------------------- upstream HTTP


def upstream_post(path, body, base=None):
    u = urllib.parse.urlparse(base or ARGS.upstream)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=ARGS.upstream_timeout)
    conn.request(
        "POST",
        u.path.rstrip("/") + path,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return conn, conn.getresponse()


def sse_events(resp):
    """Yield the JSON payloads of an OpenAI server-sent-event stream."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        yield json.loads(data)


# ---------------------------------------------------------------- HTTP server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ollama-api-double/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, status, message):
        self.send_json(status, {"error": message})

    def read_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw or b"{}")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        if path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/api/version":
            self.send_json(200, {"version": OLLAMA_VERSION})
        elif path == "/api/tags":
            self.send_json(200, {"models": [model_entry()]})
        elif path == "/api/ps":
            self.send_json(200, {"models": []})
        else:
            self.send_error_json(404, "404 page not found")

    def do_POST(self):
        path = urllib.parse.urlparse(self.path).path
        try:
            req = self.read_json()
        except json.JSONDecodeError as e:
            return self.send_error_json(400, f"invalid JSON: {e}")
        if path == "/api/chat":
            return self.chat(req)
        if path == "/api/show":
            name = req.get("model") or req.get("name") or ""
            if not model_matches(name):
                return self.send_error_json(404, f"model '{name}' not found")
            return self.send_json(200, show_entry())
        if path == "/api/embed" and ARGS.embed_upstream:
            return self.embed(req)
        if path in ("/api/generate", "/api/embed", "/api/embeddings", "/api/pull", "/api/create"):
            return self.send_error_json(501, f"{path} is not implemented by the Ollama API test double")
        self.send_error_json(404, "404 page not found")

    # -- /api/embed

    def embed(self, req):
        model = req.get("model", "")
        texts = req.get("input", "")
        if isinstance(texts, str):
            texts = [texts]
        try:
            conn, resp = upstream_post(
                "/embeddings", {"model": ARGS.embed_upstream_model, "input": texts}, ARGS.embed_upstream
            )
        except OSError as e:
            return self.send_error_json(502, f"upstream llama.cpp embeddings server unreachable: {e}")
        try:
            text = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        if resp.status != 200:
            return self.send_error_json(resp.status, f"upstream: {text}")
        answer = json.loads(text)
        data = sorted(answer["data"], key=lambda d: d["index"])
        self.send_json(
            200,
            {
                "model": model,
                "embeddings": [d["embedding"] for d in data],
                "prompt_eval_count": (answer.get("usage") or {}).get("prompt_tokens", 0),
            },
        )

    # -- /api/chat

    def chat(self, req):
        model = req.get("model", "")
        if not model_matches(model):
            return self.send_error_json(404, f"model '{model}' not found, try pulling it first")
        if not req.get("messages"):
            # Ollama answers an empty chat with a "load" response
            return self.send_json(
                200,
                {
                    "model": model,
                    "created_at": now_rfc3339(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "load",
                    "done": True,
                },
            )
        stream = req.get("stream", True)  # Ollama streams unless told otherwise
        body = to_openai_request(req, stream)
        started = time.monotonic_ns()
        try:
            conn, resp = upstream_post("/chat/completions", body)
        except OSError as e:
            return self.send_error_json(502, f"upstream llama.cpp server unreachable: {e}")
        try:
            if resp.status != 200:
                text = resp.read().decode(errors="replace")
                return self.send_error_json(resp.status, f"upstream: {text}")
            if stream:
                self.chat_stream(model, resp, started)
            else:
                self.chat_once(model, json.loads(resp.read()), started)
        finally:
            conn.close()

    def chat_once(self, model, answer, started):
        choice = (answer.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        out = {
            "model": model,
            "created_at": now_rfc3339(),
            "message": {"role": "assistant", "content": msg.get("content") or ""},
        }
        calls = ollama_tool_calls(msg.get("tool_calls"))
        if calls:
            out["message"]["tool_calls"] = calls
        if msg.get("reasoning_content"):
            out["message"]["thinking"] = msg["reasoning_content"]
        out.update(final_fields(answer.get("usage"), answer.get("timings"), started, choice.get("finish_reason")))
        self.send_json(200, out)

    def write_chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def chat_stream(self, model, resp, started):
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        calls = {}  # index -> {"name", "arguments"(str)}
        finish = None
        usage = None
        timings = None
        for ev in sse_events(resp):
            if ev.get("usage"):
                usage = ev["usage"]
            if ev.get("timings"):
                timings = ev["timings"]
            for choice in ev.get("choices") or []:
                delta = choice.get("delta") or {}
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(tc.get("index", 0), {"name": "", "arguments": ""})
                    fn = tc.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                piece = delta.get("content")
                thinking = delta.get("reasoning_content")
                if piece or thinking:
                    message = {"role": "assistant", "content": piece or ""}
                    if thinking:
                        message["thinking"] = thinking
                    self.write_chunk(
                        {"model": model, "created_at": now_rfc3339(), "message": message, "done": False}
                    )
        if calls:
            # Ollama sends the complete tool calls in one chunk before the final one
            openai_calls = [
                {"function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())
            ]
            self.write_chunk(
                {
                    "model": model,
                    "created_at": now_rfc3339(),
                    "message": {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": ollama_tool_calls(openai_calls),
                    },
                    "done": False,
                }
            )
        final = {
            "model": model,
            "created_at": now_rfc3339(),
            "message": {"role": "assistant", "content": ""},
        }
        final.update(final_fields(usage, timings, started, finish))
        self.write_chunk(final)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def model_size() -> int:
    try:
        return os.path.getsize(ARGS.model_file) if ARGS.model_file else 0
    except OSError:
        return 0


def details():
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "135M",
        "quantization_level": "Q4_1",
    }


def model_entry():
    name = ARGS.model_name
    return {
        "name": name,
        "model": name,
        "modified_at": now_rfc3339(),
        "size": model_size(),
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": details(),
    }


def show_entry():
    return {
        "license": "",
        "modelfile": f"# Ollama API test double\nFROM {ARGS.model_file or ARGS.upstream_model}\n",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": details(),
        "model_info": {"general.architecture": "llama", "llama.context_length": 4096},
        "capabilities": ["completion", "tools"],
        "modified_at": now_rfc3339(),
    }


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser(description="Ollama API test double in front of a llama.cpp server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="OpenAI base URL, e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--upstream-model", required=True, help="model id the upstream server reports")
    ap.add_argument("--model-name", default="smollm2:135m", help="the Ollama model name served")
    ap.add_argument("--model-file", default="", help="the GGUF, for the size in /api/tags")
    ap.add_argument("--upstream-timeout", type=float, default=600.0)
    ap.add_argument("--embed-upstream", default="", help="OpenAI base URL of a llama.cpp embeddings server")
    ap.add_argument("--embed-upstream-model", default="", help="model id of the embeddings server")
    ap.add_argument(
        "--no-force-tool-call",
        dest="force_tool_call",
        action="store_false",
        default=os.environ.get("OLLAMA_DOUBLE_FORCE_TOOL_CALL", "1") not in ("0", "false", "no"),
    )
    ARGS = ap.parse_args()

    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    server.daemon_threads = True

    def stop(signum, _frame):
        print(f"ollama_api_double.py: signal {signum}, stopping", file=sys.stderr, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"ollama_api_double.py (TEST DOUBLE, not Ollama): http://{ARGS.host}:{ARGS.port} "
        f"model={ARGS.model_name} -> {ARGS.upstream} ({ARGS.upstream_model}), "
        f"force_tool_call={ARGS.force_tool_call}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
