"""HTTP routes, one router per resource; `server.create_app` only wires them. Handlers stay thin: they
take typed dependencies (`deps.py`) and call the domain objects."""
