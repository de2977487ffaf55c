"""dfseg: pop."""
