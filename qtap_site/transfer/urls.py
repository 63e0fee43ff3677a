"""Routes of the transfer app.

May import: ``views``.
"""


app_name = "transfer"

urlpatterns: list = []
