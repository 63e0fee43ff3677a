"""Search across a user's own chats: SQLite FTS5 when embedded, PostgreSQL full-text search when scaled (SPEC
§5b).
"""
