"""Channels that carry notifications out of jobyard: email (SMTP) and signed webhooks.

In-app delivery needs no channel: the relay writes the inbox row in the database.
"""
