"""A typed Python client of jobyard's native API.

from jobyard.client import Client
with Client("http://127.0.0.1:8400", token) as jy:
    job = jy.create_job(command="uptime", nodes=["web1"])
    job = jy.wait(job["id"])
"""

from jobyard.client.http import ApiError, Client
from jobyard.client.profile import Profile, resolve

__all__ = ["ApiError", "Client", "Profile", "resolve"]
