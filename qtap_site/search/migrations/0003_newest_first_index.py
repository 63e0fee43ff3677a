"""An index of messages by creation time, on both engines, so newest-first results for a common word walk
the newest messages instead of sorting every match."""

from django.db import migrations

from qtap_site.search import schema
from qtap_site.search.migrations._vendor import RunSQLOn


class Migration(migrations.Migration):
    dependencies = [("search", "0002_postgres_stored_vectors")]

    operations = [
        RunSQLOn("sqlite", schema.NEWEST_CREATE, schema.NEWEST_DROP),
        RunSQLOn("postgresql", schema.NEWEST_CREATE, schema.NEWEST_DROP),
    ]
