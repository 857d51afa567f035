"""``POST /v1/batches`` without the framework: the same ingest, its answer sent as the route sends it.

Why: a kiosk's batch is the request a storm is made of, and over FastAPI about a third of the
worker's CPU for one went to the framework around :func:`server_stub.ingest.receive`: routing,
dependencies, request and response objects, and anyio's hop to its thread pool (a py-spy ``--gil``
profile of 1,000 kiosks x 50 records: fastapi + starlette ~9% of the worker's CPU, the anyio hop
~8%, where ``loop.run_in_executor`` costs about half as much a hop).

This ASGI middleware sits inside the body guard (the body arrives decompressed, the SHA-256 of the
body as sent in the scope) and inside metrics, admission and compression, which treat its answers
like any other. For the usual request it parses the body in one pass (pydantic's JSON parser, as
the route does), then runs :func:`~server_stub.ingest.receive` in a thread of its own pool and
answers with the route's JSON, a :class:`~server_stub.errors.ServerError` or a failing database as
the error handlers answer them (:mod:`server_stub.routes.handlers`).

Everything else goes to the FastAPI route (the body replayed), which answers exactly as before: a
query string, a body the schema refuses (FastAPI's 422 or 400), a client gone before its body
arrived. Both backends take this path.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError
from starlette.datastructures import Headers

from server_stub.auth import ADMITTED_KEY, SignedCall
from server_stub.bodies import WIRE_DIGEST_KEY, ASGIApp, Receive, Scope, Send
from server_stub.errors import ServerError
from server_stub.ingest import Trust, receive
from server_stub.metrics import Metrics, Timer
from server_stub.rawpath import Answer, error_answer, post_to, read_body, replay, send_json
from server_stub.routes.deps import EMPTY_SHA256, AppState
from server_stub.routes.handlers import db_unavailable
from sync.wire.protocol import BatchRequest

PATH = "/v1/batches"


class BatchFastPath:
    """ASGI middleware in front of the FastAPI route (see the module docstring); ``threads`` run
    the ingest (as many as the worker has database connections: see ``app.pool_size``)."""

    def __init__(self, app: ASGIApp, state: AppState, metrics: Metrics, threads: ThreadPoolExecutor) -> None:
        self.app, self.state, self.metrics, self.threads = app, state, metrics, threads

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        if not post_to(scope, PATH):  # a query string goes on to the route
            await self.app(scope, receive_, send)
            return
        messages, body = await read_body(receive_)
        if body is not None:
            try:
                batch = BatchRequest.model_validate_json(body)
            except ValidationError:  # the route's parse names what is wrong
                pass
            else:
                call = SignedCall(
                    Headers(scope=scope),
                    "POST",
                    PATH,
                    scope.get(WIRE_DIGEST_KEY, EMPTY_SHA256),
                    scope.get(ADMITTED_KEY),
                )
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(self.threads, self._answer, call, batch)
                await send_json(scope, send, PATH, answer)
                return
        await self.app(scope, replay(messages, receive_), send)

    def _answer(self, call: SignedCall, batch: BatchRequest) -> Answer:
        """In a thread: the batch received, and the answer the route would give."""
        st = self.state
        try:
            with Timer() as t:
                answer = receive(st.engine, st.auth, call, batch, st.clock(), Trust.of(st.config))
        except ServerError as exc:
            return error_answer(exc)
        except Exception as exc:  # a failing database as the handlers answer it; anything else is a 500
            unavailable = db_unavailable(exc)
            if unavailable is None:
                raise
            return error_answer(unavailable)
        self.metrics.acks(answer.acks, t.seconds)
        # no "reason": null, "final_token": null per record (the route's response_model_exclude_none)
        return 200, answer.model_dump_json(exclude_none=True).encode(), {}
