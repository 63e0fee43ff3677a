# The first schema: providers were built in, named by a `provider` column with fixed choices.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

LEGACY_PROVIDERS = [
    ("OPENAI", "OpenAI"),
    ("ANTHROPIC", "Anthropic"),
    ("GOOGLE", "Google"),
    ("GROK", "Grok"),
    ("GAB_AI", "Gab AI"),
    ("OLLAMA", "Ollama"),
    ("OPENROUTER", "OpenRouter"),
    ("OPENAI_COMPATIBLE", "OpenAI-compatible"),
]
LEGACY_IMAGE_PROVIDERS = [*LEGACY_PROVIDERS, ("GOOGLE_IMAGEN", "Google Imagen")]


class Migration(migrations.Migration):
    initial = True

    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="ApiKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("provider", models.CharField(choices=LEGACY_IMAGE_PROVIDERS, max_length=100)),
                ("label", models.CharField(max_length=100)),
                ("encrypted_secret", models.TextField(editable=False)),
                ("last4", models.CharField(blank=True, editable=False, max_length=4)),
                ("is_active", models.BooleanField(default=True)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_keys",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "API key", "ordering": ("provider", "label", "id")},
        ),
        migrations.CreateModel(
            name="ConnectionProfile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("provider", models.CharField(choices=LEGACY_PROVIDERS, max_length=100)),
                ("base_url", models.CharField(blank=True, default="", max_length=500)),
                ("model", models.CharField(max_length=200)),
                ("parameters", models.JSONField(blank=True, default=dict)),
                ("is_default", models.BooleanField(default=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "api_key",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="connection_profiles",
                        to="providers.apikey",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="connection_profiles",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "connection profile", "ordering": ("name", "id")},
        ),
        migrations.CreateModel(
            name="ImageProfile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("provider", models.CharField(choices=LEGACY_IMAGE_PROVIDERS, max_length=100)),
                ("base_url", models.CharField(blank=True, default="", max_length=500)),
                ("model", models.CharField(max_length=200)),
                ("parameters", models.JSONField(blank=True, default=dict)),
                ("is_default", models.BooleanField(default=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "api_key",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="image_profiles",
                        to="providers.apikey",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="image_profiles",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "image profile", "ordering": ("name", "id")},
        ),
        migrations.AddConstraint(
            model_name="connectionprofile",
            constraint=models.UniqueConstraint(
                condition=models.Q(is_default=True), fields=("user",), name="providers_one_default_profile"
            ),
        ),
        migrations.AddConstraint(
            model_name="imageprofile",
            constraint=models.UniqueConstraint(
                condition=models.Q(is_default=True), fields=("user",), name="providers_one_default_image_profile"
            ),
        ),
    ]
