"""ASGI entry point: ``qtap_site.asgi:application`` (Daphne or uvicorn)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qtap_site.settings")

# Django must be set up before anything imports models (routing imports consumers).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from qtap_site.origins import SameOriginValidator  # noqa: E402
from qtap_site.routing import websocket_urlpatterns  # noqa: E402
from qtap_site.websocket_limits import close_oversized_messages  # noqa: E402

close_oversized_messages()  # a message over Daphne's 1 MiB cap: close frame 1009, not a dropped connection

application = ProtocolTypeRouter(
    {
        # The site's own CSS, chat.js and htmx are served by the same process, so `make run` (one Daphne,
        # no other web server) gives a working page; a deployment behind a web server may serve
        # STATIC_ROOT itself and this handler simply sees no /static/ requests.
        "http": ASGIStaticFilesHandler(django_asgi_app),
        # Only the site's own pages (scheme, host and port) or QTAP_TRUSTED_ORIGINS may open a socket.
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far (Django, the plugins, the templates' code) lives as long as the process. Left
# to the collector, each full collection walks all of it: about 120 ms with the interpreter stopped,
# which a burst of sends triggers (measured: a 119 ms pause inside 50 sends' first 200 ms). Frozen, a
# full collection walks only what was made since.
gc.freeze()
