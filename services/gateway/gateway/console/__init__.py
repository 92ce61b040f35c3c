"""The web console at `/console`: static pages that drive the public REST API and WebSocket."""
