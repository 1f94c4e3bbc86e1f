"""Metrics and health of the services (docs/OBSERVABILITY.md).

- :mod:`.metrics`: the Prometheus metric objects and the one-line calls that count
  into them (``prometheus_client`` only, so the broker and the handlers import it
  freely);
- :mod:`.server`: a service's HTTP endpoint (``/metrics``, ``/healthz``,
  ``/readyz``), its readiness probes, and the collectors that read the broker and the
  database when it is scraped.

Nothing is imported here, so importing :mod:`.metrics` loads neither the database nor
the broker code.
"""
