def provision(cfg) -> None:
    pass
