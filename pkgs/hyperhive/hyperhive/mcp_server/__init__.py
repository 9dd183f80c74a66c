"""The hyperhive MCP stdio server (FastMCP): one socket request per tool call."""
