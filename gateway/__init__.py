"""The request/reply gateway (``deepcredit gateway``): an HTTP service that takes one loan post,
puts it through the live flow (the clicks topic) and answers with the score the flow writes to
the risk topic, matched by event id. A floor beside ``dataflow``: it talks to the flow only
through Kafka and the flow's health endpoint, and neither imports the other.

config  how a gateway runs (``GatewayConfig``), free of the web stack for ``--help``
risk    the risk topic's records to answers (one decoding function), the bounded book of
        recent answers and waiting requests, the reader thread that fills it
health  the flow's readiness, polled in the background
app     the Starlette application: routes, OpenAPI document, start-up and shut-down
serve   uvicorn with one or more gateway processes
loadgen the load generator of ``deepcredit bench gateway`` (asyncio, httpx)

The risk-operations dashboard (``deepcredit dashboard``), its own app on its own port:

watch     the topics it shows, followed from their beginning (a reader thread per topic)
panels    its figures from the records: pure functions
charts    its charts, drawn as SVG (matplotlib)
dashboard the page and the Starlette app
"""
