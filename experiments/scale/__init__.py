"""The scale study: a room of many members on one machine, latency at a steady rate."""
