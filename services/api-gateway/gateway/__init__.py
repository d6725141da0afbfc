"""The public REST API: people and programs in, calls to the services' internal APIs out."""
