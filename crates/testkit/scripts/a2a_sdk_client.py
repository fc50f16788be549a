#!/usr/bin/env python3
"""The reference A2A SDK's client (a2a-sdk on PyPI) calling an agent, for Sextant's interop tests.

    python a2a_sdk_client.py BASE_URL TEXT [--token T] [--traceparent TP] [--stream]
                             [--context-id C]

Fetches BASE_URL/.well-known/agent-card.json, sends TEXT (SendMessage, or SendStreamingMessage with
--stream) and prints one line of JSON: {"text", "state", "task_id", "context_id", "events"}.
"""

import argparse
import asyncio
import json
import uuid

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import Message, Part, Role, SendMessageRequest, TaskState


async def run(args) -> dict:
    headers = {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    if args.traceparent:
        headers["traceparent"] = args.traceparent
    async with httpx.AsyncClient(headers=headers, timeout=600.0) as http:
        config = ClientConfig(
            httpx_client=http, streaming=args.stream, supported_protocol_bindings=["JSONRPC"]
        )
        client = await ClientFactory(config).create_from_url(args.base_url)
        message = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=args.text)])
        if args.context_id:
            message.context_id = args.context_id
        pieces, events = [], []
        state = task_id = context_id = None
        final_task = None
        async for event in client.send_message(SendMessageRequest(message=message)):
            kind = event.WhichOneof("payload")
            events.append(kind)
            if kind == "message":
                pieces.append(get_message_text(event.message))
                context_id = event.message.context_id or None
            elif kind == "task":
                final_task = event.task
                task_id, context_id = event.task.id, event.task.context_id
                state = event.task.status.state
            elif kind == "status_update":
                state = event.status_update.status.state
                task_id, context_id = event.status_update.task_id, event.status_update.context_id
            elif kind == "artifact_update":
                pieces.append(get_artifact_text(event.artifact_update.artifact))
        if final_task is not None and not pieces:
            pieces = [get_artifact_text(a) for a in final_task.artifacts]
            if not any(pieces) and final_task.status.HasField("message"):
                pieces = [get_message_text(final_task.status.message)]
        await client.close()
    return {
        "text": "".join(p for p in pieces if p),
        "state": TaskState.Name(state) if state is not None else None,
        "task_id": task_id,
        "context_id": context_id,
        "events": events,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("text")
    parser.add_argument("--token")
    parser.add_argument("--traceparent")
    parser.add_argument("--context-id")
    parser.add_argument("--stream", action="store_true")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
