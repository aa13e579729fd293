"""Process tuning: time slicing, GC pacing, parent-death signal, logging."""
