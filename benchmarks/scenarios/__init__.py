"""The scenarios of issue 10, one module each, each `async def run(ctx) -> ScenarioResult`."""
