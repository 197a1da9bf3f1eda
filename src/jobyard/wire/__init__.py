"""Request/response and agent-protocol models shared by server, agent and client."""
