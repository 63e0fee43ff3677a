"""Routes of the presets app.

May import: ``views``.
"""


app_name = "presets"

urlpatterns: list = []
