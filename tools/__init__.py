"""dfseg: tools."""
