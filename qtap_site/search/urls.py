"""Routes of the search app.

May import: ``views``.
"""


app_name = "search"

urlpatterns: list = []
