"""The labelling page's server: FastAPI on 127.0.0.1 only, no account.

Each label is appended to the labels table when it is posted, so a closed tab loses nothing. The
state the page reads never holds a row's score or outcome; the answer to a label does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from synthfactory.labels.sample import LabelItem, Sample
from synthfactory.labels.table import append_labels

HOST = "127.0.0.1"


class LabelPost(BaseModel):
    """What the page posts for one row."""

    row_id: str = Field(min_length=1, max_length=200)
    label: Literal["good", "bad", "skip"]
    note: str | None = Field(None, max_length=2000)


class LabelSession:
    """One labeller's pass over a sample: what is left, and the table the labels go to."""

    def __init__(self, dataset_uri: str, sample: Sample) -> None:
        self.dataset_uri = dataset_uri
        self.sample = sample
        self.by_id: dict[str, LabelItem] = {item.row_id: item for item in sample.items}
        self.counts: dict[str, int] = {"good": 0, "bad": 0, "skip": 0}
        self._lock = threading.Lock()

    @property
    def finished(self) -> bool:
        return not self.sample.remaining

    def state(self) -> dict[str, Any]:
        """The page's view: the dataset, the rubric, progress and the next row without its score."""
        remaining = self.sample.remaining
        return {"dataset": self.sample.dataset, "version": self.sample.version, "labeller": self.sample.labeller,
                "rubric": self.sample.rubric, "total": len(self.sample.items),
                "done": len(self.sample.items) - len(remaining),
                "next": remaining[0].shown() if remaining else None}

    def label(self, post: LabelPost) -> dict[str, Any]:
        """Append the label, then reveal the row's score and outcome with the next row."""
        item = self.by_id.get(post.row_id)
        if item is None:
            raise KeyError(post.row_id)
        note = (post.note or "").strip() or None
        with self._lock:
            append_labels(self.dataset_uri, [item.label_record(post.label, note, self.sample.labeller)])
            self.sample.labelled.add(item.row_id)
            self.counts[post.label] += 1
        return {**self.state(), "row_id": item.row_id, "score": item.score, "outcome": item.outcome,
                "threshold": self.sample.threshold}


def create_app(session: LabelSession, on_finished: Callable[[], None] | None = None):
    """The FastAPI app: the page, its state, and one POST per label."""
    from fastapi import FastAPI, HTTPException
    from fastapi.middleware.trustedhost import TrustedHostMiddleware
    from fastapi.responses import HTMLResponse

    from synthfactory.labels.page import PAGE_HTML

    app = FastAPI(title="synthfactory label", docs_url=None, redoc_url=None, openapi_url=None)
    # only this machine's names: a page elsewhere cannot reach the server by DNS rebinding
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE_HTML

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return session.state()

    @app.post("/api/label")
    def label(post: LabelPost) -> dict[str, Any]:  # a JSON body: a cross-site form cannot send one
        try:
            answer = session.label(post)
        except KeyError:
            raise HTTPException(404, f"row {post.row_id} is not in this sample") from None
        except (OSError, ValueError) as exc:
            raise HTTPException(500, f"label not stored: {exc}") from None
        if session.finished and on_finished:
            on_finished()
        return answer

    return app


def bind(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (`port` 0: a free one, read back from the socket)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        from synthfactory.errors import UserError

        raise UserError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); pick another port "
                        "or leave --port out for a free one") from None
    sock.listen(64)
    return sock


def serve(session: LabelSession, sock: socket.socket) -> None:
    """Serve until Ctrl-C, or until every row of the sample is labelled (then shortly after the
    last answer went out, so the page shows it)."""
    import uvicorn

    server: uvicorn.Server | None = None

    def finished() -> None:
        asyncio.get_running_loop().call_later(1.5, lambda: setattr(server, "should_exit", True))

    def finished_from_thread() -> None:
        loop.call_soon_threadsafe(finished)

    app = create_app(session, on_finished=finished_from_thread)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(server.serve(sockets=[sock]))
    finally:
        loop.close()
