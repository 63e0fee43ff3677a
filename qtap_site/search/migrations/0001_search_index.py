"""The search index: FTS5 tables and triggers on SQLite, GIN expression indexes on PostgreSQL.

Each statement runs only on its own vendor (the other vendor's ``migrate`` records the migration and does
nothing), so one migration history serves both deployments.
"""

from django.db import migrations

from qtap_site.search import schema


class RunSQLOn(migrations.RunSQL):
    """``RunSQL`` that runs only when the connection is ``vendor``."""

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


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_tools")]

    operations = [
        RunSQLOn("sqlite", schema.CREATE, schema.DROP),
        RunSQLOn("postgresql", schema.PG_CREATE, schema.PG_DROP),
    ]
