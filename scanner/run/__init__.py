"""The daemon's machinery: workers, their supervisor, the job scheduler and sd_notify."""
