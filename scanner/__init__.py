"""gate-scanner: offline-first access control for vivenu events.

The pipeline, as the packages are named:

    read (payload) -> decide -> journal -> actuate + upload
                 sync fills the store beside it; vivenu is the remote

The version is the installed package's (``scanner.build.version``).
"""
