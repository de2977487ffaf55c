"""dfseg: solvers."""
