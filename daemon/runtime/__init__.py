"""The daemon process: the composition root (app), the service loop, the scheduler,
systemd notifications, logging and the HTTP listener. Only the CLI sits above it."""
