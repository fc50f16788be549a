"""Start a real llama.cpp HTTP server (OpenAI-compatible API) through xllamacpp.

Used by `cargo xtask test|servers`. xllamacpp embeds llama.cpp's `llama-server`: creating an
`xllamacpp.Server(params)` starts its HTTP server in background threads, and the server lives as long
as the Python object does, so this script keeps the process alive until SIGTERM/SIGINT.

Usage: llama_server.py --model PATH --port PORT [--alias NAME] [--threads 1] [--ctx 4096]
                       [--chat-template-file chatml_tools.jinja] [--embeddings]

SmolLM2-135M-Instruct's own chat template (in the GGUF) knows nothing of tools, so llama.cpp would
drop the `tools` of a request. `chatml_tools.jinja` beside this file is the same ChatML format with the
Hermes/Qwen2.5 `<tool_call>` convention, which llama.cpp's jinja mode recognises: it renders the tools
into the system prompt, parses `<tool_call>` blocks back into OpenAI `tool_calls`, and with
`tool_choice: "required"` constrains the output with a grammar.

A 135M model rarely decides to call a tool by itself, and llama.cpp's grammar still lets it write
text before the call. For a deterministic tool call send BOTH `"tool_choice": "required"` and
`"chat_template_kwargs": {"force_tool_call": true}`: the template then opens the assistant turn
with `<tool_call>` (only when tools are offered and the last message is the user's), and the grammar
completes a valid call. (The Ollama API test double does this for every request with tools whose
last message is the user's.) Set LLAMA_SERVER_VERBOSE=1 for llama.cpp's debug log.
"""

import argparse
import os
import signal
import sys
import threading

import xllamacpp


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--alias", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument(
        "--embeddings",
        action="store_true",
        help="serve /v1/embeddings (mean pooling, L2-normalised) instead of chat (llama-server --embeddings)",
    )
    ap.add_argument(
        "--chat-template-file",
        default="",
        help="a jinja chat template replacing the GGUF's (llama-server --chat-template-file)",
    )
    args = ap.parse_args()

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    if args.alias:
        params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx * args.parallel  # the context is split between the slots
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads  # llama-server -t
    params.cpuparams_batch.n_threads = args.threads  # llama-server -tb
    params.use_jinja = True  # --jinja: the model's chat template, needed for tool calling
    if args.chat_template_file:
        with open(args.chat_template_file, encoding="utf-8") as f:
            params.chat_template = f.read()
    if args.embeddings:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    params.warmup = False
    params.endpoint_metrics = True
    if os.environ.get("LLAMA_SERVER_VERBOSE"):
        params.verbosity = 5  # debug logs: chat format, grammar, parsed messages

    print(
        f"llama_server.py: xllamacpp {xllamacpp.__version__}, model={args.model}, "
        f"host={args.host} port={args.port} ctx={params.n_ctx} threads={args.threads} jinja=on",
        flush=True,
    )
    server = xllamacpp.Server(params)
    print(f"llama_server.py: listening on {server.listening_address}", flush=True)

    stop = threading.Event()

    def on_signal(signum, _frame):
        print(f"llama_server.py: signal {signum}, stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        pass
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
