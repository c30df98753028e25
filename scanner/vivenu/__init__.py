"""The vivenu access-users API: the client the gate uses (``client``) and its helpers."""
