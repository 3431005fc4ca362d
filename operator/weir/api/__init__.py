"""Resource models: the single source of truth for weir's CRDs and files.

Pydantic models here describe what users write (InferenceDeployment,
CapacityPool, HostedEndpoint) and the data weir reads (engine profiles). They
depend on nothing else in weir, so every layer may import them.
"""
