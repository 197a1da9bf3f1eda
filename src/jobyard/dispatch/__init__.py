"""Long-running loops: dispatcher, timeouts, heartbeats, scheduler, outbox relay."""
