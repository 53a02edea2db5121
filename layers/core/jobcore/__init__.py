"""pipelinejobs' domain core: states, tokens, models and the service that applies events.

Shipped as the shared Lambda layer. Nothing in this package imports an AWS library except
`jobcore.adapters`, which implements the ports of `jobcore.ports`.
"""
