"""Model factories for configs (image models come straight from ``timm.create_model``)."""
