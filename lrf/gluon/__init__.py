"""MXNet Gluon engine for lrf (imported only at the edges: the core never imports MXNet)."""
