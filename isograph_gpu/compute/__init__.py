"""The compute wing: how the statistics are computed on the device, below the pipeline
and above the tensor core (:mod:`isograph_gpu.ops`).

- :mod:`.plan`: :class:`~.plan.MemoryPlan`, every memory decision of a run (module
  blocks, chunk plans, read groups, load or stream, residency) from the byte constants of
  :mod:`isograph_gpu.memory_model`.
- :mod:`.step`: the one chunk step (:func:`~.step.chunk_statistics`) the engine, the Dask
  tasks and :class:`isograph_gpu.training.ModuleStatistics` share; :mod:`.results`: its
  statistics container; :mod:`.companions`: what the options add to each chunk (partial
  r / n / p given covariates, the running switch null), called by the same loop.
- :mod:`.residency`: where the feature columns live between module blocks;
  :mod:`.transfer`: host-to-device chunk copies; :mod:`.block_reads`: streamed reads ahead.
- :mod:`.context`: :class:`~.context.RunContext`, what the stages of a run share.

Nothing is imported here, so importing one module of the wing loads only what it needs.
"""
