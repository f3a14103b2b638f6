"""The daemon's HTTP listener: payment webhooks, /healthz and /metrics."""
