"""``mobexport profile``: time per operator type of several models on one runtime."""
