"""`mambaout serve`: a web demo (Gradio) of the paper's argument: classify with MambaOut and its SSM pair side
by side, look inside both (ERF, hidden attention, conv footprint), and the long-sequence calculator.

Layer: above ``explain`` and ``analysis`` (beside ``lab``); ``cli`` imports it. Gradio is imported only when
the app is built, so the rest of the package works without it.
"""
