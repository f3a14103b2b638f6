"""The operator console: server-rendered pages on their own listener ([console])."""
