"""Request and response models of the HTTP APIs, one module per area."""
