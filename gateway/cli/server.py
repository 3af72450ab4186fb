"""Running the WSGI app under gunicorn, with a report worker thread per process if asked."""

import gc
from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway.wire.app import create_app

        return create_app(self.settings)


def _post_worker_init(settings: Settings) -> Any:
    def hook(_worker: Any) -> None:
        # The loaded app is ~100k long-lived objects; a full collection over them took
        # ~70 ms and made most of the p99. Freeze them out of the collector's sight.
        gc.collect()
        gc.freeze()
        if settings.embedded_worker:
            from gateway.background.worker import start_background_threads

            start_background_threads(settings)

    return hook


def _child_exit(_server: Any, worker: Any) -> None:
    from gateway.wire.metrics import process_exited

    process_exited(worker.pid)


def _has_setting(name: str) -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == name for setting in KNOWN_SETTINGS)


def run_gunicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    from gateway.cli.http_worker import BufferingWorker

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        # threads, each request read whole before a thread takes it: see http_worker
        "worker_class": BufferingWorker,
        "threads": settings.threads,
        "keepalive": settings.keep_alive,
        "worker_connections": settings.max_connections,
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": "-",
        "post_worker_init": _post_worker_init(settings),
        "child_exit": _child_exit,
    }
    if _has_setting("control_socket_disable"):
        options["control_socket_disable"] = True  # gunicorn >= 23: one shared socket per user
    _Gunicorn(settings, options).run()
