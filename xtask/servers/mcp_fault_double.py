"""A fault-injection double of an MCP server over stdio (newline-delimited JSON-RPC), stdlib only.

It is a test double, used only where a real server cannot be made to fail on demand. Its tools:
- `ok` answers `ok: <text>`; `meta` answers the request's `params._meta` as JSON;
- `hang` never answers (other requests still are);
- `crash` exits mid-call, without an answer;
- `garbage` answers with a line that is not JSON-RPC;
- `fail` answers a result with `isError: true`;
- `grow` adds the tool `extra` and sends `notifications/tools/list_changed`.
With `--crash-after N` the process exits when the N-th `tools/call` arrives.
"""

import argparse
import json
import sys

TOOLS = [
    {"name": name, "description": description, "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
    }}
    for name, description in [
        ("ok", "Answers ok and the text."),
        ("meta", "Answers the request's _meta."),
        ("hang", "Never answers."),
        ("crash", "Exits mid-call."),
        ("garbage", "Answers with malformed JSON-RPC."),
        ("fail", "Answers isError."),
        ("grow", "Adds a tool."),
    ]
]


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text_result(request_id, text, is_error=False):
    result = {"content": [{"type": "text", "text": text}]}
    if is_error:
        result["isError"] = True
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crash-after", type=int, default=0)
    args = parser.parse_args()
    calls = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        method = request.get("method")
        request_id = request.get("id")
        params = request.get("params") or {}
        if request_id is None:
            continue  # a notification
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": request_id, "result": {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "mcp-fault-double", "version": "1"},
            }})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            calls += 1
            if args.crash_after and calls >= args.crash_after:
                sys.exit(3)
            name = params.get("name")
            text = (params.get("arguments") or {}).get("text", "")
            if name == "ok" or name == "extra":
                text_result(request_id, f"ok: {text}")
            elif name == "meta":
                text_result(request_id, json.dumps(params.get("_meta") or {}))
            elif name == "hang":
                pass
            elif name == "crash":
                sys.exit(3)
            elif name == "garbage":
                sys.stdout.write('{"jsonrpc": "2.0", "id": ' + json.dumps(request_id) + ', "result": {"content": [\n')
                sys.stdout.flush()
            elif name == "fail":
                text_result(request_id, "the double failed on purpose", is_error=True)
            elif name == "grow":
                if not any(tool["name"] == "extra" for tool in TOOLS):
                    TOOLS.append({"name": "extra", "description": "Added by grow.",
                                  "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}})
                send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
                text_result(request_id, "grown")
            else:
                send({"jsonrpc": "2.0", "id": request_id,
                      "error": {"code": -32602, "message": f"unknown tool {name}"}})
        else:
            send({"jsonrpc": "2.0", "id": request_id,
                  "error": {"code": -32601, "message": f"method not found: {method}"}})


main()
