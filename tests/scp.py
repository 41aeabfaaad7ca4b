"""A pynetdicom SCP for the fast loop that stops at once.

``AE.start_server(block=False)`` polls for its stop every half second, which a test pays in
full when it stops the server; this one polls every 10 ms.
"""

from __future__ import annotations

import threading
from typing import Any


def serve(ae: Any, **options: Any) -> Any:
    """Start ``ae`` on a free loopback port in a daemon thread; stop it with ``.shutdown()``."""
    from pynetdicom.transport import ThreadedAssociationServer

    server = ae.make_server(("127.0.0.1", 0), server_class=ThreadedAssociationServer, **options)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    ae._servers.append(server)  # as start_server does: shutdown() takes it out again
    return server
