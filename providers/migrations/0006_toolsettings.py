"""ToolSettings: a user's settings for a tool plugin, plain values and secrets encrypted one by one."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0005_pluginstate"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ToolSettings",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("plugin", models.CharField(db_index=True, max_length=100)),
                ("values", models.JSONField(blank=True, default=dict)),
                ("encrypted_secrets", models.JSONField(blank=True, default=dict, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tool_settings",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "tool settings",
                "verbose_name_plural": "tool settings",
                "ordering": ("plugin", "id"),
                "constraints": [models.UniqueConstraint(fields=("user", "plugin"), name="providers_one_tool_settings")],
            },
        ),
    ]
