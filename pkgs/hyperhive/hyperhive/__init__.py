"""hyperhive: a swarm of Claude Code agents on one host, steered by one operator."""

__version__ = "0.1.0"
