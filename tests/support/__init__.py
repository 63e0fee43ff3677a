"""Shared helpers for tests that run qtap for real: Daphne processes on loopback ports and a
websocket client that signs in with a session cookie. Used by the scaled, fault and security suites."""
