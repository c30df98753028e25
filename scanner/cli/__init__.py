"""The ``gate`` command. Each module here owns a few subcommands and nothing else."""
