"""A tiny shop: the demo workspace for `aurora index` and `aurora search`."""
