"""The HTTP routes, one module per resource; `cra.server.app.ROUTERS` lists them."""
