"""The node agent: dials the server, runs what it is asked (and allowed) to run.

It depends on ``jobyard.wire`` and the WebSocket client only, never on the server.
"""
