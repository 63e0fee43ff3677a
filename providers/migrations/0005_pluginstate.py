# Enable/disable of each plugin, stored in the database.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("providers", "0004_remove_legacy_provider")]

    operations = [
        migrations.CreateModel(
            name="PluginState",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("enabled", models.BooleanField(default=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"verbose_name": "plugin state", "ordering": ("name",)},
        ),
    ]
