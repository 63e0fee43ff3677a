from django.urls import path

from providers import views

app_name = "providers"

urlpatterns = [
    path("plugins/", views.plugin_list, name="plugins"),
]
