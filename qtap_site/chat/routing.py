"""Websocket routes of the chat app.

May import: ``consumers``.
"""

from django.urls import path

from qtap_site.chat.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chats/<int:chat_id>/", ChatConsumer.as_asgi()),
]
