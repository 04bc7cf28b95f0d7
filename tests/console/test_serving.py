"""gunicorn as production runs it (console/serving.py): keep-alive connections are shared by the workers.

A gthread worker accepts greedily: twenty clients connecting at once all landed on one of three workers, and on two
cores All devices then ran on one (bench_http: 44 requests/s, the server using one core of two). The pre_request
hook closes the connections a worker holds beyond its share after their request; the clients reconnect elsewhere.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from console import serving
from console.testbed import (
    established_connections,
    process_tree,
    run_coroutine,
    serve_production,
    stop_server,
)


def test_a_worker_over_its_share_closes_the_connection_after_the_request():
    worker = SimpleNamespace(cfg=SimpleNamespace(threads=4), nr_conns=9)
    request = SimpleNamespace(must_close=False)
    serving.pre_request(worker, request)
    assert request.must_close is True

    worker.nr_conns = 8
    request = SimpleNamespace(must_close=False)
    serving.pre_request(worker, request)
    assert request.must_close is False


def test_a_sync_worker_is_left_alone():
    request = SimpleNamespace(must_close=False)
    serving.pre_request(SimpleNamespace(cfg=SimpleNamespace(threads=1)), request)  # no nr_conns: not gthread
    assert request.must_close is False


async def _count_connections(server, url: str, clients: int, requests: int) -> dict[int, int]:
    """``clients`` keep-alive clients make ``requests`` each at once; then, with every client still connected,
    the established connections each gunicorn process holds."""
    import httpx

    async def lane(client):
        for _ in range(requests):
            response = await client.get("/login/")
            assert response.status_code == 200

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    headers = {"X-Forwarded-Proto": "https"}  # as the TLS proxy in front says
    opened = [
        httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=30) for _ in range(clients)
    ]
    try:
        await asyncio.gather(*(lane(client) for client in opened))
        return established_connections(process_tree(server.pid), urlsplit(url).port)
    finally:
        await asyncio.gather(*(client.aclose() for client in opened))


@pytest.mark.postgres
def test_twenty_keep_alive_clients_are_spread_over_the_workers(transactional_db):
    server, url = serve_production(3, 4)
    try:
        # on a thread of its own: the browser tests leave an event loop in this one
        held = run_coroutine(_count_connections(server, url, clients=20, requests=15), "serving-test")
    finally:
        stop_server(server)
    assert sum(held.values()) >= 12, held  # most clients kept their connection
    assert len(held) >= 2, f"one worker holds every connection: {held}"
    assert max(held.values()) <= serving.CONNECTIONS_PER_THREAD * 4, held
