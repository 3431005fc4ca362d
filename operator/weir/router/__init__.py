"""weir's router: the fast loop between clients and the GPUs.

One router runs per InferenceDeployment. It serves the OpenAI API
(`POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`) plus
`/healthz` and `/readyz`, and `/metrics` on a port of its own; it sends each request to the
least-loaded ready engine pod, spills to the hosted endpoint when the pods
are at their SLO concurrency (within the plan's share and a hard $/hour
cap), and judges every request's tokens useful or wasted as the client saw
them. Start at `proxy` (the ASGI app), `spill` (admission), `accounting`
(useful tokens) and `metrics` (the names the operator's PromQL uses).

Interfaces for the operator:

- command line: `weir router --help` (`cli`);
- policy: a YAML/JSON file of `config.RouterPolicy` (camelCase), normally a
  mounted ConfigMap key, re-read when it changes;
- draining: EndpointSlice conditions (`ready: false` or `terminating:
  true`) or the endpoint leaving the slice; the pod gets no new request and
  its open streams finish;
- metrics: listed in `weir.router.metrics`, served on `--metrics-port`
  (9091; `--metrics-on-api-port` serves them on the API port too);
- trust: clients need a bearer token from `--client-tokens-file` unless
  `--allow-anonymous`; a plain-http hosted `baseUrl` needs
  `--allow-insecure-hosted HOST`; upstream error bodies and provider headers
  never reach clients (`forward`); server limits in `weir.serving`.
"""
