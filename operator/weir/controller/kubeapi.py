"""The operator's Kubernetes API client: one place that decides where credentials come from."""

from __future__ import annotations

from kubernetes import client, config

from weir.controller.settings import OperatorSettings


def api_client(settings: OperatorSettings, pool_size: int = 32) -> client.ApiClient:
    """The given kubeconfig, else in-cluster credentials, else KUBECONFIG / ~/.kube/config.

    `pool_size` bounds concurrent requests (applies run in parallel, daemons share it).
    """
    if settings.kubeconfig:
        base: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=settings.kubeconfig
        )
    else:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        base = client.ApiClient()
    configuration = base.configuration
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration=configuration)
