"""Training as one process of N: joining a job, sharding the data, one writer, `kzoo launch`.

Keras' `keras.distribution.DataParallel` over JAX's distributed runtime does the work (a global
device mesh, gradients all-reduced inside the compiled step); this package decides which process
this is, joins the job before JAX starts, and keeps the run directory to one writer. Importing it
starts neither Keras nor JAX (the CLI parses its flags first). docs/distributed.md.

Example:
    >>> from kzoo import distributed
    >>> distributed.initialize()  # one process unless flags or the environment say otherwise
    Cluster(num_processes=1, process_id=0, coordinator=None, source='single process')
"""

from kzoo.distributed.cluster import Cluster, resolve
from kzoo.distributed.runtime import (broadcast, check_same, initialize, is_chief, leave, on_chief, process_count,
                                      process_index, shard, undistributed)

__all__ = ["Cluster", "broadcast", "check_same", "initialize", "is_chief", "leave", "on_chief", "process_count",
           "process_index", "resolve", "shard", "undistributed"]
