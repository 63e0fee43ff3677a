# Providers become plugins: every row gets a `plugin` (a plugin name such as qtap-plugin-openai), filled in
# by 0003. `migrated_from` keeps whatever 0003 changes beyond the mapping, so that it can be undone exactly.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]

    operations = [
        *(
            migrations.AddField(
                model_name=model_name,
                name="plugin",
                field=models.CharField(db_index=True, default="", max_length=100),
                preserve_default=False,
            )
            for model_name in ("apikey", "connectionprofile", "imageprofile")
        ),
        *(
            migrations.AddField(
                model_name=model_name,
                name="migrated_from",
                field=models.JSONField(blank=True, editable=False, null=True),
            )
            for model_name in ("apikey", "connectionprofile", "imageprofile")
        ),
    ]
