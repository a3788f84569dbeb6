"""cra inside agent frameworks: adapters for the OpenAI Agents SDK
(`openai_agents`), LangChain (`langchain`), MCP (`mcp`, `mcp_proxy`) and
OpenTelemetry (`otel`). Each needs its framework (an optional extra, e.g.
`pip install 'cra[mcp]'`); `import cra` needs none of them."""
