"""Each engine's index, as SQL: FTS5 tables and triggers (``fts5``), tsvector columns and GIN indexes
(``postgres``), and on both the index of messages by time that newest-first results walk.

A module of its own, importing nothing, because migrations 0001 (FTS5), 0002 (PostgreSQL) and 0003 run these
statements and a migration must not import live models: change them only together with a new migration.

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
FTS5_TABLES = ("search_message_fts", "search_chat_fts")
FTS5_TRIGGERS = tuple(f"search_{table}_{event}" for table in ("message", "chat") for event in ("ai", "ad", "au"))
DROP = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in FTS5_TRIGGERS),
    *(f"DROP TABLE IF EXISTS {name}" for name in FTS5_TABLES),
]

# ---- PostgreSQL ------------------------------------------------------------------------------

# A stored generated tsvector column on each searched table, and a GIN index on it: PostgreSQL computes
# the vector in the same statement as every write (nothing to keep in step, no trigger to lose), and
# ranking reads it instead of re-parsing each match's text (measured: that re-parsing was ~0.1 ms a row,
# seconds for a common word over 100,000 messages; bench/results/search.notes.md). The chat app's models
# do not know the column; a chat migration that changes the type of ``content`` or ``title`` must drop
# it first (PostgreSQL refuses to alter a column a generated column reads) and then run these again.
CONFIG = "english"
PG_VECTOR = "search_vector"
PG_SOURCES = {"chat_message": "content", "chat_chat": "title"}
PG_INDEXES = {"search_message_vector": "chat_message", "search_chat_vector": "chat_chat"}
PG_CREATE = [
    *(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {PG_VECTOR} tsvector "
        f"GENERATED ALWAYS AS (to_tsvector('{CONFIG}'::regconfig, COALESCE({column}, ''))) STORED"
        for table, column in PG_SOURCES.items()
    ),
    *(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({PG_VECTOR})" for name, table in PG_INDEXES.items()),
]
PG_DROP = [f"ALTER TABLE {table} DROP COLUMN IF EXISTS {PG_VECTOR}" for table in PG_SOURCES]  # its index with it

# ---- both engines ----------------------------------------------------------------------------

# Results are newest first. For a word in most messages, walking messages from the newest and keeping
# those that match stops after about as many rows as a page shows, where sorting every match by time
# reads them all (bench/results/search.notes.md). The chat app declares no index on the time alone; a
# chat migration that remakes ``chat_message`` on SQLite drops this one with it (search.W001 says so).
NEWEST_INDEX = "search_message_newest"
NEWEST_CREATE = [f"CREATE INDEX IF NOT EXISTS {NEWEST_INDEX} ON chat_message (created_at, id)"]
NEWEST_DROP = [f"DROP INDEX IF EXISTS {NEWEST_INDEX}"]
