"""Websocket routes."""

from qtap_site.chat.routing import websocket_urlpatterns

__all__ = ["websocket_urlpatterns"]
