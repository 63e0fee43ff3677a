"""What the search migrations share: a ``RunSQL`` that runs on one vendor only, and 0001's PostgreSQL
expression indexes (0002's reverse puts them back). Django's loader skips ``_`` modules here."""

from django.db import migrations

EXPRESSION_INDEXES = [
    "CREATE INDEX IF NOT EXISTS search_message_content_tsv ON chat_message "
    "USING gin (to_tsvector('english'::regconfig, COALESCE(content, '')))",
    "CREATE INDEX IF NOT EXISTS search_chat_title_tsv ON chat_chat "
    "USING gin (to_tsvector('english'::regconfig, COALESCE(title, '')))",
]
EXPRESSION_INDEX_NAMES = ("search_message_content_tsv", "search_chat_title_tsv")


class RunSQLOn(migrations.RunSQL):
    """``RunSQL`` that runs only when the connection is ``vendor`` (elsewhere the migration is recorded
    and does nothing), so one migration history serves both deployments."""

    def __init__(self, vendor, sql, reverse_sql):
        super().__init__(sql, reverse_sql)
        self.vendor = vendor

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        return name, args, {"vendor": self.vendor, **kwargs}

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == self.vendor:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
