#!/usr/bin/env python3
"""An agent served by the reference A2A SDK's server (a2a-sdk on PyPI), for Sextant's interop tests.

    python a2a_sdk_server.py PORT HEADER_LOG [--token T]

Its card is at http://127.0.0.1:PORT/.well-known/agent-card.json and it answers "weather in X:
sunny" for a text that names "weather in X" (else "echo: TEXT"), through the SDK's task events.
Every request's traceparent, tracestate, baggage and Authorization go to HEADER_LOG as a JSON line,
so a test can check what Sextant sent. With --token, a request without that bearer token is 401.
"""

import argparse
import json
import re

import uvicorn
from starlette.applications import Starlette

from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill


def answer_for(text: str) -> str:
    match = re.search(r"weather in ([^?.!,\n]+)", text, re.IGNORECASE)
    return f"weather in {match.group(1).strip()}: sunny" if match else f"echo: {text}"


class WeatherExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        answer = answer_for(context.get_user_input())
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        await updater.add_artifact([new_text_part(answer)], name="answer")
        await updater.complete(new_text_message(answer, context_id=task.context_id, task_id=task.id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


class Recorder:
    """Records each request's trace headers; refuses a wrong bearer token."""

    def __init__(self, app, log: str, token):
        self.app, self.log, self.token = app, log, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with open(self.log, "a") as f:
            f.write(json.dumps({
                "method": scope["method"],
                "path": scope["path"],
                "traceparent": headers.get("traceparent"),
                "tracestate": headers.get("tracestate"),
                "baggage": headers.get("baggage"),
                "authorization": headers.get("authorization"),
                "a2a_version": headers.get("a2a-version"),
            }) + "\n")
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
            return
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("header_log")
    parser.add_argument("--token")
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/"
    card = AgentCard(
        name="weather",
        description="Tells the weather for a city.",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="weather", name="Weather", description="Tells the weather for a city.",
                           tags=["weather"], examples=["What is the weather in Paris?"])],
    )
    handler = DefaultRequestHandler(
        agent_executor=WeatherExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    app = Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/")])
    uvicorn.run(Recorder(app, args.header_log, args.token), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
