"""Prometheus metrics (`prometheus-client`): HTTP requests counted and timed by route template, and gauges read
from the database when `/metrics` is scraped.

Labels never carry personal data: the route *template* (`/api/v1/learners/{learner_id}`, never the path
itself; `<unmatched>` for a path no route knows), the method, the status, peers' node ids, job statuses.

Several processes: each `creditnode serve` process keeps its own counters, and a scrape of one process shows that
process only (scrape every worker, Prometheus sums by `instance`). With `PROMETHEUS_MULTIPROC_DIR` set (to an
empty directory, before the processes start) every process writes its counters there and a scrape of any one
of them shows the sum over all (`prometheus_client.multiprocess`); the database gauges are the node's, whichever
process answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from node.context import NodeContext
from node.ops.repository import read_gauges

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "NodeCollector", "multiprocess_dir", "render"]

log = logging.getLogger("creditnode.ops")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# request latencies of a node: a few ms (reads) to tens of seconds (uploads, a slow peer)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class HttpMetrics:
    """Requests by method, route template and status, and their latency."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter("creditnode_http_requests", "HTTP requests answered, by route template and status",
                                ("method", "route", "status"), registry=registry)
        self.latency = Histogram("creditnode_http_request_duration_seconds",
                                 "Time from a request's arrival to the end of its response, by route template",
                                 ("method", "route"), buckets=LATENCY_BUCKETS, registry=registry)

        # the labelled children, found once per (method, route, status): `labels()` validates and looks them up
        # under a lock on every call (a few µs of every request). Bounded: methods × route templates × statuses.
        self._children: dict[tuple[str, str, int], tuple[object, object]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:
            shown = method if method in METHODS else "other"
            children = (self.requests.labels(shown, route, str(status)), self.latency.labels(shown, route))
            if len(self._children) < 10_000:
                self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)


class NodeCollector(Collector):
    """Gauges computed at scrape time with cheap queries (`node.ops.repository.read_gauges`)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily("creditnode_node_info", "The node's identity", labels=("node_id", "did"))
        info.add_metric((self.ctx.node_id, self.ctx.identity.did), 1)
        yield info
        up = GaugeMetricFamily("creditnode_database_up", "1 if the database answered the scrape's queries")
        try:
            with self.ctx.engine.connect() as conn:
                gauges = read_gauges(conn)
        except Exception as exc:  # noqa: BLE001 - a scrape reports the database down rather than failing
            log.warning("metrics: the database did not answer: %s", type(exc).__name__)
            up.add_metric((), 0)
            yield up
            return
        up.add_metric((), 1)
        yield up
        yield GaugeMetricFamily("creditnode_ledger_size", "Events in the node's ledger (its Merkle log's size)",
                                value=gauges.ledger_size)
        yield GaugeMetricFamily("creditnode_ledger_checkpoint_size",
                                "Tree size of the newest signed checkpoint", value=gauges.checkpoint_size)
        outbox = GaugeMetricFamily("creditnode_outbox_messages",
                                   "Messages to a peer not yet delivered (pending) or dead-lettered (dead)",
                                   labels=("peer", "state"))
        for (peer, state), count in sorted(gauges.outbox.items()):
            outbox.add_metric((peer, state), count)
        yield outbox
        jobs = GaugeMetricFamily("creditnode_import_jobs", "Bulk import jobs by status", labels=("status",))
        for status, count in sorted(gauges.import_jobs.items()):
            jobs.add_metric((status,), count)
        yield jobs


def render(registry: CollectorRegistry | None, ctx: NodeContext) -> bytes:
    """The text exposition of one scrape: this process's HTTP metrics (or all processes' with
    `PROMETHEUS_MULTIPROC_DIR`) and the database gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(NodeCollector(ctx))
        return generate_latest(registry)
    assert registry is not None
    return generate_latest(registry)
