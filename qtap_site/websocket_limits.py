"""A websocket message over Daphne's size cap (1 MiB) closes the socket with 1009, "message too big".

Daphne leaves frames to autobahn, which enforces the cap (``maxMessagePayloadSize``,
``maxFramePayloadSize``) by failing the connection; with autobahn's default ``failByDrop=True``
failing means dropping the TCP connection without a close frame, so the browser sees 1006 and
cannot tell why. Daphne has no setting for it; the factory its server builds is replaced here by a
subclass that fails a connection the RFC 6455 way instead: a close frame with the reason's code
(1009 for a message too big, 1002 for a protocol error, 1007 for text that is not UTF-8), then the
closing handshake. Frames over ``QTAP_MAX_FRAME_BYTES`` (256 KiB) but under the cap never get here:
the consumer answers them ``error too_large`` and the socket stays open.
"""

from __future__ import annotations

from typing import Any


def close_oversized_messages() -> None:
    """Make the websocket factory of Daphne's server close failed connections with their code.

    Runs when ``qtap_site.asgi`` is imported, which Daphne (``daphne``, ``manage.py runserver``) does
    before it builds its server; doing it twice changes nothing.
    """
    try:
        from daphne import server
    except ImportError:  # served by another ASGI server
        return
    base: Any = server.WebSocketFactory
    if getattr(base, "fails_with_close_frame", False):
        return

    class WebSocketFactory(base):
        fails_with_close_frame = True

        def resetProtocolOptions(self) -> None:
            super().resetProtocolOptions()
            self.failByDrop = False  # Daphne's setProtocolOptions() leaves it as set here

    server.WebSocketFactory = WebSocketFactory
