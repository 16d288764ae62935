"""cloudgate's fault-injecting proxy for the test ground (see proxy.py)."""
