"""Explaining trained models: effective receptive fields, class activation maps, the hidden attention of
selective SSMs and the matching maps of conv and attention mixers (``mambaout explain``)."""
