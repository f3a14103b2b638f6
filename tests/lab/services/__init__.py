"""One module per lab service: each starts a real server on a random loopback port."""
