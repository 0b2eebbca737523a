"""The MCP server's tools before anything reaches a broker: their schemas, their fixed
descriptions, the refusal of admin actions, requests the schema refuses field by field, and the
agent without an intent key. tests/stack/test_mcp_server.py drives it through a real client."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.server import MCPServer
from mcp.types import CallToolResult

from gateway.mcp_server.server import TOOLS, AgentNotProvisioned, agent_server
from runtime.config import Settings
from sdk.client import load_or_create_agent_key

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture
def server(tmp_path: Path) -> MCPServer:
    settings = dataclasses.replace(Settings(), home=tmp_path / "home")
    load_or_create_agent_key(settings.home, "agent-unit")
    return agent_server(settings, "agent-unit")


def test_every_tool_has_an_input_and_an_output_schema_and_a_fixed_description(server: MCPServer) -> None:
    tools = {tool.name: tool for tool in asyncio.run(server.list_tools())}
    assert tuple(tools) == TOOLS
    for tool in tools.values():
        output_schema = tool.output_schema
        assert tool.input_schema["type"] == "object" and output_schema is not None, tool.name
        assert output_schema["type"] == "object", tool.name
        assert tool.description and "{" not in tool.description, tool.name
    submit = tools["submit_transaction"].input_schema
    assert submit["required"] == ["chain", "to", "value"]
    assert (submit["properties"]["simulate_first"]["default"], submit["properties"]["data"]["default"]) == (True, "0x")
    reading, submitting = tools["get_policy"].annotations, tools["submit_transaction"].annotations
    assert reading is not None and submitting is not None
    assert reading.read_only_hint and not submitting.read_only_hint


def test_provisioning_a_key_is_refused_with_the_admins_command(server: MCPServer) -> None:
    result = asyncio.run(server.call_tool("provision_signing_key", {"chain": "ethereum"}))
    assert isinstance(result, CallToolResult)
    assert result.is_error and result.structured_content["refused"] is True
    assert "warden keys provision --agent agent-unit --chain ethereum" in result.structured_content["how"]


@pytest.mark.parametrize(
    "tool, arguments, field",
    [
        ("submit_transaction", {"chain": "anvil", "to": DEST, "value": "0.1.2"}, "value"),
        ("sign_transaction", {"chain": "anvil", "to": "0x1234", "value": "1"}, "to"),
        ("sign_transaction", {"chain": "no-such-chain", "to": DEST, "value": "1"}, "chain"),
        ("sign_typed_data", {"chain": "anvil", "typed_data": {"primaryType": "Mail"}}, "types"),
    ],
)
def test_a_request_the_schema_refuses_names_the_field_before_anything_is_sent(
    server: MCPServer, tool: str, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(ToolError, match=rf"not a valid intent:\n  {field}: "):
        asyncio.run(server.call_tool(tool, arguments))


def test_an_agent_without_an_intent_key_is_told_how_to_provision_it(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path / "home")
    with pytest.raises(AgentNotProvisioned, match="warden agents create --agent nobody"):
        agent_server(settings, "nobody")
    assert not (tmp_path / "home" / "agents" / "nobody").exists()


def test_pay_x402_fetches_only_http_urls(server: MCPServer) -> None:
    with pytest.raises(ToolError, match=r"'file:///etc/passwd' is not http:// or https://"):
        asyncio.run(server.call_tool("pay_x402", {"url": "file:///etc/passwd"}))
