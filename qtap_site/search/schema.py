"""Each engine's index, as SQL: FTS5 tables and triggers (``fts5``), GIN expression indexes (``postgres``).

A module of its own, importing nothing, because migration 0001 runs these statements and a migration must
not import live models: change them only together with a new migration.

May import: nothing of qtap's.
"""

from __future__ import annotations

# ---- SQLite FTS5 ----------------------------------------------------------------------------

TOKENIZE = "porter unicode61 remove_diacritics 2"
CREATE = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS search_message_fts USING fts5("
    f"content, content='chat_message', content_rowid='id', tokenize='{TOKENIZE}')",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS search_chat_fts USING fts5("
    f"title, content='chat_chat', content_rowid='id', tokenize='{TOKENIZE}')",
    """CREATE TRIGGER IF NOT EXISTS search_message_ai AFTER INSERT ON chat_message BEGIN
        INSERT INTO search_message_fts(rowid, content) VALUES (new.id, new.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS search_message_ad AFTER DELETE ON chat_message BEGIN
        INSERT INTO search_message_fts(search_message_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END""",
    # A checkpoint saves every field: only a change of text is worth re-indexing.
    """CREATE TRIGGER IF NOT EXISTS search_message_au AFTER UPDATE OF content ON chat_message
    WHEN old.content IS NOT new.content BEGIN
        INSERT INTO search_message_fts(search_message_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO search_message_fts(rowid, content) VALUES (new.id, new.content);
    END""",
    """CREATE TRIGGER IF NOT EXISTS search_chat_ai AFTER INSERT ON chat_chat BEGIN
        INSERT INTO search_chat_fts(rowid, title) VALUES (new.id, new.title);
    END""",
    """CREATE TRIGGER IF NOT EXISTS search_chat_ad AFTER DELETE ON chat_chat BEGIN
        INSERT INTO search_chat_fts(search_chat_fts, rowid, title) VALUES ('delete', old.id, old.title);
    END""",
    """CREATE TRIGGER IF NOT EXISTS search_chat_au AFTER UPDATE OF title ON chat_chat
    WHEN old.title IS NOT new.title BEGIN
        INSERT INTO search_chat_fts(search_chat_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO search_chat_fts(rowid, title) VALUES (new.id, new.title);
    END""",
    # Rows that were there before the index (an existing data directory being migrated).
    "INSERT INTO search_message_fts(search_message_fts) VALUES ('rebuild')",
    "INSERT INTO search_chat_fts(search_chat_fts) VALUES ('rebuild')",
]
DROP = [
    *(
        f"DROP TRIGGER IF EXISTS {name}"
        for name in (
            "search_message_ai",
            "search_message_ad",
            "search_message_au",
            "search_chat_ai",
            "search_chat_ad",
            "search_chat_au",
        )
    ),
    "DROP TABLE IF EXISTS search_message_fts",
    "DROP TABLE IF EXISTS search_chat_fts",
]

# ---- PostgreSQL ------------------------------------------------------------------------------

# The text search configuration, and the two indexes. Each indexed expression is written exactly as
# Django's ``SearchVector(field, config=CONFIG)`` compiles it, which is what lets the planner use the index.
CONFIG = "english"
PG_INDEXES = {
    "search_message_content_tsv": "chat_message USING gin (to_tsvector('english'::regconfig, COALESCE(content, '')))",
    "search_chat_title_tsv": "chat_chat USING gin (to_tsvector('english'::regconfig, COALESCE(title, '')))",
}
PG_CREATE = [f"CREATE INDEX IF NOT EXISTS {name} ON {target}" for name, target in PG_INDEXES.items()]
PG_DROP = [f"DROP INDEX IF EXISTS {name}" for name in PG_INDEXES]
