"""``manage.py recover_interrupted``: replies a stopped process left "streaming" become "interrupted".

May import: ``services``.
"""

from typing import Any

from django.core.management.base import BaseCommand

from qtap_site.chat.services import recover_stale_messages, stale_after


class Command(BaseCommand):
    help = (
        "Mark replies left 'streaming' by a stopped server process as 'interrupted', keeping their last "
        "checkpointed text. Replies whose process is still alive (fresh heartbeat) are not touched."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = recover_stale_messages()
        seconds = int(stale_after().total_seconds())
        self.stdout.write(
            self.style.SUCCESS(
                f"{count} interrupted repl{'y' if count == 1 else 'ies'} recovered (heartbeat older than {seconds} s)."
            )
        )
