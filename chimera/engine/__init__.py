"""Running a job: the runner (Stage 1, then every topic under one budget), a worker's loop on PostgreSQL, the
simulator's session, leases' heartbeats, outages, and a run's health, status and cost plan."""
