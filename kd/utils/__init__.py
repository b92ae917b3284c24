"""Support code with no kd dependencies: content hashes, secret redaction, OmegaConf resolvers, the
torchvision compatibility step."""
