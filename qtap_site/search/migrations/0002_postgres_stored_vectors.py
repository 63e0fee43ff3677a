"""PostgreSQL: a stored generated tsvector column and a GIN index on it, in place of 0001's expression
indexes, so ranking reads each match's vector instead of re-parsing its text. Nothing changes on SQLite."""

from django.db import migrations

from qtap_site.search import schema
from qtap_site.search.migrations._vendor import EXPRESSION_INDEX_NAMES, EXPRESSION_INDEXES, RunSQLOn


class Migration(migrations.Migration):
    dependencies = [("search", "0001_search_index")]

    operations = [
        RunSQLOn(
            "postgresql",
            [*(f"DROP INDEX IF EXISTS {name}" for name in EXPRESSION_INDEX_NAMES), *schema.PG_CREATE],
            [*schema.PG_DROP, *EXPRESSION_INDEXES],
        ),
    ]
