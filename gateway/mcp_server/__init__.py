"""`warden mcp`: the Model Context Protocol server acting for one agent (docs/mcp.md), over stdio or
streamable HTTP with its bearer-token and OAuth authorization."""
