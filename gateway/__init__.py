"""The servers agents, programs and people reach Warden through: the HTTP API (`gateway.http_api`),
the MCP server (`gateway.mcp_server`) and the web console (`gateway.console`). Each acts as a
client of the bus does, through `sdk`, and holds no key an agent's money moves with."""
