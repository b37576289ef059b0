"""Run under mpiexec -n 2: rank 1 raises; the whole job must stop and show the error, not hang."""

import time

from lamina import distributed

distributed.init()
if distributed.rank() == 1:
    time.sleep(0.5)
    raise ValueError("rank one broke on purpose")
distributed.barrier()  # rank 0 waits here forever unless the failure stops the job
print("rank 0 passed the barrier: the job did not stop")
