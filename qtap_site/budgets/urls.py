"""Routes of the budgets app.

May import: ``views``.
"""


app_name = "budgets"

urlpatterns: list = []
