"""Training: Lightning modules and the pipeline stages that train (pretrain, ...)."""
