"""The PyTorch engine (engine="torch"): :mod:`lrf.pytorch.engine` is what :mod:`lrf.engine` asks of it."""
