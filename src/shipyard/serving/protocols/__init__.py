"""Wire protocols the server speaks; each parses its payload and formats its answer.

- :mod:`~shipyard.serving.protocols.native`: ``POST /predict``, plain records.
- :mod:`~shipyard.serving.protocols.mlflow`: ``POST /invocations``, MLflow's scoring protocol.
- :mod:`~shipyard.serving.protocols.v2`: ``/v2/...``, the Open Inference Protocol (KServe V2).

All three hand the parsed rows to :class:`~shipyard.serving.inference.Inference`.
"""
