"""The search index: FTS5 tables and triggers on SQLite, GIN expression indexes on PostgreSQL (which 0002
replaces with stored tsvector columns). Each statement runs only on its own vendor."""

from django.db import migrations

from qtap_site.search import schema
from qtap_site.search.migrations._vendor import EXPRESSION_INDEX_NAMES, EXPRESSION_INDEXES, RunSQLOn


class Migration(migrations.Migration):
    dependencies = [("chat", "0003_tools")]

    operations = [
        RunSQLOn("sqlite", schema.CREATE, schema.DROP),
        RunSQLOn("postgresql", EXPRESSION_INDEXES, [f"DROP INDEX IF EXISTS {name}" for name in EXPRESSION_INDEX_NAMES]),
    ]
