"""Re-encrypt every stored API key, and every tool settings secret, with the newest key of QTAP_ENCRYPTION_KEYS.

Prepend a new key to QTAP_ENCRYPTION_KEYS, run this, then drop the old key. A secret that no configured
key opens is left untouched and reported: every other key is still rotated (one bad row must not block
the rest), and the command then fails naming the rows, so the old key is not dropped by mistake.

May import: ``providers.crypto``, ``providers.services``, ``providers.tool_services``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from providers import crypto, services
from providers.tool_services import tool_secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored API key and tool secret with the first (newest) key of QTAP_ENCRYPTION_KEYS. "
        "Secrets that no configured key can open are left as they are, the others are still rotated, and the "
        "command fails naming their rows' ids."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            crypto.multifernet()
        except crypto.InvalidEncryptionKeys as exc:
            raise CommandError(f"QTAP_ENCRYPTION_KEYS is invalid: {exc}") from None

        rotated, failed = services.api_keys_rotate()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} API key(s) with the newest encryption key."))
        tools_rotated, tools_failed = tool_secrets_rotate()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the secrets of {tools_rotated} tool settings row(s)."))
        problems = []
        if failed:
            problems.append(
                f"{len(failed)} API key(s) could not be decrypted with QTAP_ENCRYPTION_KEYS and were left as they "
                f"were: id {', '.join(str(pk) for pk in failed)}"
            )
        if tools_failed:
            problems.append(
                f"{len(tools_failed)} tool settings row(s) hold a secret QTAP_ENCRYPTION_KEYS cannot decrypt and "
                f"were left as they were: id {', '.join(str(pk) for pk in tools_failed)}"
            )
        if problems:
            raise CommandError("; ".join(problems))
