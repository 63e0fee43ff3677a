from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", include("providers.urls")),
    path("", include("qtap_site.search.urls")),
    path("", include("qtap_site.transfer.urls")),
    path("", include("qtap_site.budgets.urls")),
    path("settings/", include("qtap_site.presets.urls")),
    path("", include("qtap_site.chat.api_urls")),
    path("", include("qtap_site.chat.urls")),
]
