"""serve(config): build the runtime and the app, then run uvicorn until interrupted.

Once the server answers, ``--share`` asks Gradio's share service for a public
link (offline, the page keeps serving locally and we say why there is no link)
and ``--autolaunch`` opens the system browser.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import webbrowser

import httpx
import uvicorn
from gradio import networking

from modules import script_callbacks
from modules.config import LOCAL_SERVER_NAMES, AppConfig
from modules.extensions.startup import ExtensionSet
from modules.runtime import Runtime
from webui import gradio3_compat
from webui.app import create_app



def local_url(config: AppConfig) -> str:
    host = "127.0.0.1" if config.server_name in ("0.0.0.0", "::") else config.server_name
    return f"http://{host}:{config.port}"


def security_warnings(config: AppConfig) -> list[str]:
    """What an operator should know before others can reach the server. One login (--gradio-auth
    or --api-auth) guards every route, the page, its backend and the API alike (webui/access.py)."""
    warnings = []
    server = config.server
    exposed = config.server_name not in LOCAL_SERVER_NAMES
    if exposed:
        warnings.append(f"Warning: serving on {config.server_name}: anyone on the network can reach it.")
    if (exposed or server.share) and not (server.gradio_auth or server.api_auth):
        what = "the API" if server.nowebui else ("the page and the API" if server.api_enabled else "the page")
        advice = "--api-auth" if server.nowebui else "--gradio-auth (or --api-auth)"
        warnings.append(f"Warning: {what} can be used by others without a login, including generating and "
                        f"changing settings; consider {advice} user:password.")
    return warnings


def open_share_link(config: AppConfig) -> str | None:
    """A public share URL through Gradio's tunnel, or None after printing why there is none."""
    try:
        url = networking.setup_tunnel("127.0.0.1", config.port, secrets.token_urlsafe(32), None, None)
    except (RuntimeError, OSError, httpx.HTTPError) as error:
        cause = error.__cause__ or error
        print(f"No share link: {error} ({type(cause).__name__}: {cause}). "
              f"The web UI is still served locally at {local_url(config)}", flush=True)
        return None
    print(f"Running on public URL: {url}", flush=True)
    return url


RESTART_EXIT_CODE = 75  # serve() asks its caller to start the program again
RESTART_GRACE_S = 1.0


def after_start(server: uvicorn.Server, config: AppConfig) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.1)
    if not server.started:
        return
    if config.server.share:
        open_share_link(config)
    if config.server.autolaunch:
        webbrowser.open(local_url(config))


def console_logging() -> None:
    """The engine's informational lines (one per job, model loads, backend fallbacks) on the
    console; libraries' own loggers keep their defaults, so the console is not flooded."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    engine = logging.getLogger("modules")
    if not engine.handlers:
        engine.addHandler(handler)
        engine.setLevel(logging.INFO)
        engine.propagate = False


def serve(config: AppConfig, extensions: ExtensionSet | None = None) -> int:
    console_logging()
    runtime = Runtime(config)
    gradio3_compat.install()  # before extensions' scripts are imported: some use Gradio 3 names at import
    runtime.load_extensions(extensions if extensions is not None else ExtensionSet())  # the built-in scripts too
    for path in runtime.remove_stale_temporaries():
        print(f"Removed {path}: a save that an earlier run did not finish")
    app = create_app(runtime)
    for warning in security_warnings(config):
        print(warning)
    print(f"Running on {local_url(config)} ({runtime.device_policy.describe()})", flush=True)
    if config.server.api_enabled:  # --nowebui serves only this, on port 7861 unless --port says otherwise
        print(f"API at {local_url(config)}/sdapi/v1, docs at {local_url(config)}/docs", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=config.server_name, port=config.port, log_level="warning"))
    threading.Thread(target=after_start, args=(server, config), name="after-start", daemon=True).start()
    runtime.can_restart = True
    threading.Thread(target=stop_for_restart, args=(server, runtime), name="restart-watch", daemon=True).start()
    server.run()
    if runtime.extensions.loaded:
        script_callbacks.script_unloaded_callback()  # A1111 calls it when its scripts are unloaded
    if runtime.restart_requested.is_set():
        runtime.jobs.shutdown()
        print("Restarting...", flush=True)
        return RESTART_EXIT_CODE
    return 0


def stop_for_restart(server: uvicorn.Server, runtime: Runtime) -> None:
    """Stops serving once a restart is asked for (the Extensions tab's "Apply and restart UI");
    the caller then starts the program again, extensions and all, as A1111 does."""
    runtime.restart_requested.wait()
    time.sleep(RESTART_GRACE_S)  # the click's answer reaches the page first
    server.force_exit = True  # open pages hold streaming connections: do not wait for them to close
    server.should_exit = True
