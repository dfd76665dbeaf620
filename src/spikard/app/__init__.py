"""Application layer: routing, handler adaptation, the callback shim."""
