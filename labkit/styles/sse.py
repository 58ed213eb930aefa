"""Server-Sent Events as a delivery style: each consumer holds a ``GET /stream`` and resumes by ``Last-Event-ID``.

The provider pushes down a held HTTP response (``text/event-stream``) the consumer opened.
"""

from __future__ import annotations

from labkit.config import EVENT_STREAM
from labkit.styles.stream import register_stream

SSE = INFO = register_stream("sse", "Server-Sent Events", transport=EVENT_STREAM, colour="#2ca02c", marker="^", order=30)
