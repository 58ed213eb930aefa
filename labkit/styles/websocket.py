"""WebSocket as a delivery style: each consumer holds a ``WS /ws`` and sends its cursor when it (re)connects."""

from __future__ import annotations

from labkit.styles.registry import StyleInfo, register
from labkit.styles.stream import StreamStyle

INFO = StyleInfo(
    name="websocket",
    label="WebSocket",
    colour="#9467bd",
    marker="D",
    direction="push",
    needs_public_endpoint=False,
    dedup_key="event id; resumes from its last id",
    order=40,
)


class WebSocket(StreamStyle):
    """The provider pushes one text message per event down a WebSocket the consumer opened."""

    info = INFO
    protocol = "websocket"


WEBSOCKET = register(INFO, WebSocket())
