"""gunicorn's settings for Muster: ``make serve``, or
``gunicorn -c gunicorn.conf.py wsgi:app``. Every value comes from the environment
through ``config.server_settings`` (the variables are in the README's Configuration)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gunicorn runs this file by path

from config import server_settings  # noqa: E402 - needs the line above

_settings = server_settings()

bind = _settings.bind
workers = _settings.workers
threads = _settings.threads  # more than one: gunicorn's threaded worker
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive
# Proxies (load balancers) whose X-Forwarded-Proto and -For are believed.
forwarded_allow_ips = _settings.forwarded_allow_ips
accesslog = "-"
errorlog = "-"
if _settings.log_format == "json":
    # gunicorn's own messages (start, stop, worker timeouts) as the app's JSON lines on
    # standard error. The root logger gets no handler here: each worker's app installs
    # its own (lessons.logs), which a second one here would double. gunicorn's access
    # log keeps its combined format on standard output (README, Logs); the app writes
    # its own JSON access line, with the request id and user, to standard error.
    logconfig_dict = {
        "root": {"level": "INFO", "handlers": []},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["json"],
                                       "propagate": False}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json",
                              "stream": "ext://sys.stderr"}},
        "formatters": {"json": {"()": "lessons.logs.JsonFormatter"}},
    }
# Each worker imports the app itself: forked from a preloaded master, workers would share
# its database connections and its open index files.
preload_app = False
# Managed with signals (HUP, TTIN, TTOU, TERM); no control socket in the home folder
# for two servers on one host to fight over.
control_socket_disable = True


def post_worker_init(worker) -> None:
    """Each worker, once it has loaded the app, starts its standby search indexer: the
    one holding the host's indexer lock (unless `flask search worker` holds it) rebuilds
    a missing or lagging index and applies the change log, in the background (every
    worker serves at once)."""
    from lessons import search

    search.on_worker_start(worker.wsgi)
