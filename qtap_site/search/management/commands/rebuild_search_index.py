"""``manage.py rebuild_search_index``: re-read every message and chat title into the search index.

May import: ``services``.
"""

from typing import Any

from django.core.management.base import BaseCommand

from qtap_site.search.services import rebuild_index


class Command(BaseCommand):
    help = (
        "Rebuild the search index from the chat tables: SQLite FTS5's 'rebuild' (reinstalling missing "
        "triggers first), or PostgreSQL's REINDEX of the text-search indexes (recreating a missing one)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(self.style.SUCCESS(rebuild_index().summary()))
