"""Server-Sent Events as a delivery style: each consumer holds a ``GET /stream`` and resumes by ``Last-Event-ID``."""

from __future__ import annotations

from labkit.styles.registry import StyleInfo, register
from labkit.styles.stream import StreamStyle

INFO = StyleInfo(
    name="sse",
    label="Server-Sent Events",
    colour="#2ca02c",
    marker="^",
    direction="push",
    needs_public_endpoint=False,
    dedup_key="event id; resumes from its last id",
    order=30,
)


class Sse(StreamStyle):
    """The provider pushes down a held HTTP response (``text/event-stream``) the consumer opened."""

    info = INFO
    protocol = "sse"


SSE = register(INFO, Sse())
