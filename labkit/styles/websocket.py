"""WebSocket as a delivery style: each consumer holds a ``WS /ws`` and sends its cursor when it (re)connects.

The provider pushes one text message per event down the WebSocket the consumer opened.
"""

from __future__ import annotations

from labkit.config import WS
from labkit.styles.stream import register_stream

WEBSOCKET = INFO = register_stream("websocket", "WebSocket", transport=WS, colour="#9467bd", marker="D", order=40)
