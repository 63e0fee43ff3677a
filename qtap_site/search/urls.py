"""Routes of the search app.

May import: ``views``.
"""

from django.urls import path

from qtap_site.search import views

app_name = "search"

urlpatterns = [path("search/", views.search, name="search")]
