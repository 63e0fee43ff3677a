# Legacy provider names -> plugin names, on keys, connection profiles and image profiles.
#
# The mapping table lives here on purpose: a migration must give the same answer forever, whatever the
# plugin registry says later. Rules:
# - every legacy value maps to its plugin; an unknown value is kept verbatim in `plugin` (the profile then
#   shows "provider unavailable") and is never dropped;
# - an OPENAI_COMPATIBLE connection profile whose base URL host is openrouter.ai (or a subdomain) becomes
#   qtap-plugin-openrouter with the base URL cleared (the plugin knows its own URL). Its key moves along
#   when no other profile uses it; a key shared with other profiles is copied for the OpenRouter profiles;
# - whatever the reverse mapping alone could not restore (the original name, the cleared base URL, the
#   original key) is recorded in `migrated_from`, so backwards is exact;
# - only rows without a plugin are touched, so running it twice changes nothing.

from urllib.parse import urlsplit

from django.db import migrations
from django.db.models import Q

LEGACY_TO_PLUGIN = {
    "OPENAI": "qtap-plugin-openai",
    "ANTHROPIC": "qtap-plugin-anthropic",
    "GOOGLE": "qtap-plugin-google",
    "GOOGLE_IMAGEN": "qtap-plugin-google",
    "GROK": "qtap-plugin-grok",
    "GAB_AI": "qtap-plugin-gab-ai",
    "OLLAMA": "qtap-plugin-ollama",
    "OPENROUTER": "qtap-plugin-openrouter",
    "OPENAI_COMPATIBLE": "qtap-plugin-openai-compatible",
}
# The canonical legacy name of each plugin (GOOGLE_IMAGEN rows are restored through migrated_from).
PLUGIN_TO_LEGACY = {plugin: legacy for legacy, plugin in LEGACY_TO_PLUGIN.items() if legacy != "GOOGLE_IMAGEN"}
OPENROUTER = "qtap-plugin-openrouter"


def plugin_for(provider):
    return LEGACY_TO_PLUGIN.get(provider, provider)


def legacy_for(plugin):
    return PLUGIN_TO_LEGACY.get(plugin, plugin)


def is_openrouter_url(url):
    try:
        host = (urlsplit((url or "").strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def record(row, provider, extra=None):
    """Keep in migrated_from what the reverse mapping alone would not restore."""
    changes = dict(extra or {})
    if legacy_for(row.plugin) != provider:
        changes["provider"] = provider
    row.migrated_from = changes or None


def forwards(apps, schema_editor):
    alias = schema_editor.connection.alias
    ApiKey = apps.get_model("providers", "ApiKey")
    ConnectionProfile = apps.get_model("providers", "ConnectionProfile")
    ImageProfile = apps.get_model("providers", "ImageProfile")

    for key in ApiKey.objects.using(alias).filter(plugin="").order_by("pk"):
        key.plugin = plugin_for(key.provider)
        record(key, key.provider)
        key.save(update_fields=["plugin", "migrated_from"])

    pending = ConnectionProfile.objects.using(alias).filter(plugin="").order_by("pk")
    to_openrouter = {p.pk for p in pending if p.provider == "OPENAI_COMPATIBLE" and is_openrouter_url(p.base_url)}
    copies = {}
    for profile in pending:
        extra = {}
        if profile.pk in to_openrouter:
            profile.plugin = OPENROUTER
            extra["base_url"] = profile.base_url
            profile.base_url = ""
            key = ApiKey.objects.using(alias).filter(pk=profile.api_key_id).first()
            if key is not None and key.plugin != OPENROUTER:
                shared = (
                    ConnectionProfile.objects.using(alias)
                    .filter(api_key_id=key.pk)
                    .exclude(pk__in=to_openrouter)
                    .exists()
                    or ImageProfile.objects.using(alias).filter(api_key_id=key.pk).exists()
                )
                if not shared:
                    key.plugin = OPENROUTER
                    record(key, key.provider)
                    key.save(update_fields=["plugin", "migrated_from"])
                else:
                    if key.pk not in copies:
                        copies[key.pk] = ApiKey.objects.using(alias).create(
                            user_id=key.user_id,
                            provider=key.provider,
                            plugin=OPENROUTER,
                            label=key.label,
                            encrypted_secret=key.encrypted_secret,
                            last4=key.last4,
                            is_active=key.is_active,
                            last_used_at=key.last_used_at,
                            migrated_from={"copy_of": key.pk, "provider": key.provider},
                        )
                    extra["api_key"] = key.pk
                    profile.api_key_id = copies[key.pk].pk
        else:
            profile.plugin = plugin_for(profile.provider)
        record(profile, profile.provider, extra)
        profile.save(update_fields=["plugin", "base_url", "api_key", "migrated_from"])

    for profile in ImageProfile.objects.using(alias).filter(plugin="").order_by("pk"):
        profile.plugin = plugin_for(profile.provider)
        record(profile, profile.provider)
        profile.save(update_fields=["plugin", "migrated_from"])


def backwards(apps, schema_editor):
    alias = schema_editor.connection.alias
    ApiKey = apps.get_model("providers", "ApiKey")
    ConnectionProfile = apps.get_model("providers", "ConnectionProfile")
    ImageProfile = apps.get_model("providers", "ImageProfile")

    for model in (ConnectionProfile, ImageProfile):
        for profile in model.objects.using(alias).filter(~Q(plugin="")).order_by("pk"):
            changes = profile.migrated_from or {}
            profile.provider = changes.get("provider", legacy_for(profile.plugin))
            if "base_url" in changes:
                profile.base_url = changes["base_url"]
            if "api_key" in changes and ApiKey.objects.using(alias).filter(pk=changes["api_key"]).exists():
                profile.api_key_id = changes["api_key"]
            profile.plugin = ""
            profile.migrated_from = None
            profile.save(update_fields=["provider", "plugin", "base_url", "api_key", "migrated_from"])

    for key in ApiKey.objects.using(alias).filter(~Q(plugin="")).order_by("pk"):
        changes = key.migrated_from or {}
        original = changes.get("copy_of")
        if original is not None and ApiKey.objects.using(alias).filter(pk=original).exists():
            # A copy made for OpenRouter profiles: anything still using it goes back to the original.
            for model in (ConnectionProfile, ImageProfile):
                model.objects.using(alias).filter(api_key_id=key.pk).update(api_key_id=original)
            key.delete()
            continue
        key.provider = changes.get("provider", legacy_for(key.plugin))
        key.plugin = ""
        key.migrated_from = None
        key.save(update_fields=["provider", "plugin", "migrated_from"])


class Migration(migrations.Migration):
    dependencies = [("providers", "0002_plugin_reference")]

    operations = [migrations.RunPython(forwards, backwards)]
