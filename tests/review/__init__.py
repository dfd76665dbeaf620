"""Review tests: the departure watch, the ASGI exchange and absolute-form targets."""
