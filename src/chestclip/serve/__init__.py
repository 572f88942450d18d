"""``chestclip serve``: a web viewer and JSON API on a run (FastAPI app, served by uvicorn).

Typical use::

    app = create_app("runs/demo/run")  # the model is loaded here, once
    serve("runs/demo/run", port=8000)  # what the CLI runs; binds 127.0.0.1 by default
"""

from chestclip.utils.extras import require_extra

require_extra("serve", "chestclip serve")

from chestclip.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app  # noqa: E402
from chestclip.serve.server import ServerThread, serve  # noqa: E402

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "ServerThread", "create_app", "serve"]
