"""Agents' lifecycle: names, ports, container backends, crash watch."""
