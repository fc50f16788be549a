"""The official Python MCP SDK (`mcp` on PyPI) as a client of an MCP server, for Sextant's tests.

Connects over stdio (`--command` and its `--arg`s, spawned with `--env` variables) or Streamable
HTTP (`--url`, with `--token` as a bearer key), then lists the tools, calls `--tool` with
`{"question": --question}` and, with `--traceparent`, that trace context in `params._meta`;
with `--prompt`, lists the prompts and gets that one with `--prompt-args` (JSON). Prints one JSON
object with what the server answered, in its wire form.
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def wire(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def exercise(read, write, args):
    async with ClientSession(read, write) as session:
        initialized = await session.initialize()
        out = {"initialize": wire(initialized)}
        tools = await session.list_tools()
        out["tools"] = [wire(tool) for tool in tools.tools]
        meta = {"traceparent": args.traceparent} if args.traceparent else None
        result = await session.call_tool(args.tool, {"question": args.question}, meta=meta)
        out["call"] = wire(result)
        if args.prompt:
            prompts = await session.list_prompts()
            out["prompts"] = [wire(prompt) for prompt in prompts.prompts]
            got = await session.get_prompt(args.prompt, json.loads(args.prompt_args))
            out["prompt"] = wire(got)
        return out


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--command")
    parser.add_argument("--arg", action="append", default=[])
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--cwd")
    parser.add_argument("--tool", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--traceparent")
    parser.add_argument("--prompt")
    parser.add_argument("--prompt-args", default="{}")
    args = parser.parse_args()
    if args.url:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=300) as http:
            async with streamable_http_client(args.url, http_client=http) as (read, write):
                out = await exercise(read, write, args)
    else:
        env = dict(item.split("=", 1) for item in args.env)
        server = StdioServerParameters(command=args.command, args=args.arg, env=env, cwd=args.cwd)
        async with stdio_client(server) as (read, write):
            out = await exercise(read, write, args)
    json.dump(out, sys.stdout)
    print()


asyncio.run(main())
