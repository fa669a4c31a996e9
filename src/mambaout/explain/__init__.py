"""Explaining trained models: effective receptive fields, class activation maps, SSM hidden attention."""
