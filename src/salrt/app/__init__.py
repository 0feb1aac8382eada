"""Use cases as library calls: one module per use case, each taking a :class:`~salrt.spec.RunSpec`
(where a model runs) plus its own options and returning typed results. The CLI (:mod:`salrt.cli`)
only parses flags into these calls and prints what they return.

- :mod:`salrt.app.run`: saliency maps for files and streams; :mod:`salrt.app.encode`: ROI encoding;
- :mod:`salrt.app.evaluate`: scores on saliency datasets; :mod:`salrt.app.export`: ONNX, TensorRT, Triton;
- :mod:`salrt.app.bench`: latency, throughput, FLOPs, memory; :mod:`salrt.app.train`: training;
- :mod:`salrt.app.demo`: the synthetic demo; :mod:`salrt.app.info`: parameters and cost;
- :mod:`salrt.app.serve`: a Triton server; :mod:`salrt.app.embed`: the C embedding's session;
- :mod:`salrt.app.jobs`: any of run/encode/evaluate as a Ray job.
"""
