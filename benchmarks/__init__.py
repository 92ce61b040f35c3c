"""`make bench`: Conduit's throughput, latency and memory, measured against the raw Redis limit."""
