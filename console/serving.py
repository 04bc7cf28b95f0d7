"""gunicorn's configuration for the console (``gunicorn -c python:console.serving console.wsgi ...``).

Threaded workers (gthread) keep each client's connection alive between requests, and a connection stays with the
worker that accepted it. A gthread worker accepts greedily: when twenty browsers (or agents) connect at once, the
first worker to wake takes them all, and on two cores one Python process then does the work while the others idle.
``bench_http`` showed it: all twenty connections on one of three workers, All devices at 44 requests/s with the
server using one core of two.

``pre_request`` below sheds the excess: a worker that holds more than its share of connections answers the request
and closes that connection ("Connection: close"). The client reconnects at once, and a worker with room (the idle
ones are the first to accept) takes it. Unlike ``--worker-connections``, nothing ever waits for a free slot: the
request is served either way, only its connection is not kept. The share is ``CONNECTIONS_PER_THREAD`` times the
worker's threads (8 for ``--threads 4``); sync workers (``--threads 1``) close every connection anyway.
"""

from __future__ import annotations

# Keep-alive connections one gthread worker keeps, per thread, before it closes extra ones after their request.
CONNECTIONS_PER_THREAD = 2


def connection_share(worker) -> int:
    return max(1, CONNECTIONS_PER_THREAD * int(getattr(worker.cfg, "threads", 1) or 1))


def pre_request(worker, req) -> None:
    """gunicorn hook: close this request's connection after the response if the worker holds too many."""
    held = getattr(worker, "nr_conns", None)  # gthread only: the connections this worker holds now
    if held is not None and held > connection_share(worker):
        req.must_close = True
