"""The unix-socket servers: host (operator), manager, one per agent. Identity = socket."""
