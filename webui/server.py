"""serve(config): build the runtime and the app, then run uvicorn until interrupted."""

from __future__ import annotations

import uvicorn

from modules.config import AppConfig
from modules.runtime import Runtime
from webui.app import create_app


def serve(config: AppConfig) -> int:
    runtime = Runtime(config)
    app = create_app(runtime)
    if config.server_name not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning: serving on {config.server_name}: anyone on the network can use it.")
    print(f"Running on http://{config.server_name}:{config.port} ({runtime.device_policy.describe()})", flush=True)
    uvicorn.run(app, host=config.server_name, port=config.port, log_level="warning")
    return 0
