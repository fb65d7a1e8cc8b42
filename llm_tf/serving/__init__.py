"""TF Serving configs, the embedded TF-Serving-compatible server and its client."""
