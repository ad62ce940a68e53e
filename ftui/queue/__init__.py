"""The job queue: the SQLite store of jobs (store, model, transitions, db), the worker daemon that runs them
(worker, with launching, procs, gpus, heartbeat, wakeup) and the executors that start them (local, slurm)."""
