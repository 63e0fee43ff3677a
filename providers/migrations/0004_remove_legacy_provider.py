# The legacy `provider` column goes; `plugin` (validated against the plugin registry) replaces it.
# The column first gets a default so that reversing this migration can re-add it to existing rows;
# reversing 0003 then fills it in again.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("providers", "0003_legacy_providers_to_plugins")]

    operations = [
        migrations.AlterModelOptions(
            name="apikey", options={"verbose_name": "API key", "ordering": ("plugin", "label", "id")}
        ),
        *(
            op
            for model_name in ("apikey", "connectionprofile", "imageprofile")
            for op in (
                migrations.AlterField(
                    model_name=model_name,
                    name="provider",
                    field=models.CharField(blank=True, default="", max_length=100),
                ),
                migrations.RemoveField(model_name=model_name, name="provider"),
            )
        ),
    ]
