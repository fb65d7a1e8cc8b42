"""Models: encoders on keras-hub backbones and task heads."""
