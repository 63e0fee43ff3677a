"""Websocket routes of the chat app."""

from django.urls import path

websocket_urlpatterns: list = []
