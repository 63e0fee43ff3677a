from django.urls import path

from qtap_site.chat import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
]
