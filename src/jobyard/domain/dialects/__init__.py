"""Each platform's words for jobyard's states, and its id format, as pure data.

A dialect router (``api/compat``) translates with these tables and nothing else:
one table per platform, so a status word exists in exactly one place.
"""
