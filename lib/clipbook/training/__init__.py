"""Training tiny CLIPs with one pluggable loop (`loop.train_clip`), cached content-addressed (`loop.trained_clip`)."""
